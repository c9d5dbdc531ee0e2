// Reliability part 6: the no-pidfd fallback for real (a seccomp filter makes pidfd_open and
// the other 5.3+ pidfd syscalls ENOSYS before exec) and an unprivileged user (setpriv),
// each alone and combined, on the same process scenarios.
import test from 'ava'

import { fixture, have, isRoot, lastJson, nodeArgv, nopidfd, report, run } from './helpers.js'

const users = [
  { name: 'root', wrap: [] as string[] },
  { name: 'nobody (uid 65534, no groups)', wrap: ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'] },
]
const kernels = [
  { name: 'pidfd', nopidfd: false },
  { name: 'no pidfd (seccomp ENOSYS)', nopidfd: true },
]

for (const user of users) {
  for (const kernel of kernels) {
    const why = user.wrap.length && (!isRoot || !have('setpriv'))
      ? 'needs root and setpriv(1) to drop to an unprivileged user'
      : kernel.nopidfd && !have('cc') ? 'needs a C compiler for tools/nopidfd.c' : undefined
    const title = `${kernel.name}, as ${user.name}: exits, statuses, kills, permissions`
    if (why) console.log(`kernels.spec: SKIPPED: ${title}: ${why}`)
    const declared = why ? test.skip : test
    declared(title, async (t) => {
      const argv = [...user.wrap, ...(kernel.nopidfd ? [nopidfd()] : []), ...nodeArgv(fixture('kernel-check.ts'), String(process.pid))]
      const r = await run(argv, { env: { HOME: '/tmp' }, timeoutMs: 60_000 })
      t.is(r.code, 0, r.stderr)
      const out = lastJson<Record<string, unknown>>(r.stdout)
      t.log(JSON.stringify(out))
      t.is(out.usesPidfd, !kernel.nopidfd)
      const pidfdSources = ['pidfd', 'waitid']
      const sourceOk = (s: unknown) => (kernel.nopidfd ? s === 'fallback' : pidfdSources.includes(s as string))
      for (const k of ['child', 'zombieNonChild', 'killedChild']) {
        t.true(sourceOk((out[k] as { source: string }).source), `${k}: source ${(out[k] as { source: string }).source}`)
      }
      // Node reaps its own children at once: without pidfd their status may be gone first.
      if (!kernel.nopidfd) t.like(out.child, { exitCode: 7 })
      t.like(out.zombieNonChild, { exitCode: 5 })
      if (!kernel.nopidfd) t.like(out.killedChild, { signal: 'SIGTERM' })
      if (user.wrap.length) {
        t.is(out.uid, 65534)
        t.is(out.signalRootPid, 'ERR_PERMISSION', 'signal() to a root process')
        t.is(out.watchRootPid, 'ok', 'watching a root process is allowed')
        t.is(out.signalRootWatch, 'ERR_PERMISSION', 'signal through that watch')
      }
      t.true(out.anonFdsMatchCounters, 'counters match /proc/self/fd')
      t.is(out.inUseAfterClose, 0)
      report({ section: 'kernels & users', case: `${kernel.name} as ${user.name.split(' ')[0]}`, fdsLeaked: out.inUseAfterClose as number, eventsLost: 0 })
    })
  }
}
