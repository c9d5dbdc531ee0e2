// Host-wide streams through the addon, on real processes and a real OOM kill: a host watch sees
// the exit of a process nobody watched by PID, a tree watch follows forks made after it began,
// an OOM-kill watch names its victim and cgroup, and an unprivileged user gets ERR_PERMISSION
// naming what is missing with nothing left registered.
import test from 'ava'
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs'

import { Cgroup, Monitor, monotonicTime, type ExitEvent, type LifewatchEvent } from '../src/index.js'
import { fixture, reaped, run, sh } from './helpers.js'
import { tool } from './reliability/helpers.js'

const isRoot = process.getuid?.() === 0

test('a host watch reports the exit of a process nobody watched by PID: code, signal, ppid, comm, cgroup', async (t) => {
  const monitor = new Monitor()
  const host = monitor.watchHost()
  const seen = new Map<number, ExitEvent>()
  host.onEvent((ev) => {
    if (ev.type === 'exit') seen.set(ev.pid, ev)
  })
  const coded = sh('exit 7')
  const killed = sh('kill -9 $$')
  const wanted = [coded.pid!, killed.pid!]
  await host.waitFor(() => wanted.every((p) => seen.has(p)), { signal: AbortSignal.timeout(10_000) })
  await Promise.all([reaped(coded), reaped(killed)])
  const a = seen.get(coded.pid!)!
  const b = seen.get(killed.pid!)!
  t.like(a, { type: 'exit', source: 'connector', exitCode: 7, ppid: process.pid, comm: 'sh' })
  t.like(b, { type: 'exit', source: 'connector', signal: 'SIGKILL', ppid: process.pid, comm: 'sh' })
  t.is(a.signal, undefined)
  t.is(b.exitCode, undefined)
  t.is(a.remaining, undefined, 'remaining is a tree watch field')
  const mine = readFileSync('/proc/self/cgroup', 'utf8')
  t.true(typeof a.cgroup === 'string' && mine.includes(`:${a.cgroup}\n`), `${a.cgroup} is where this process (its parent) is`)
  t.true(host.active)
  t.is(monitor.stats.watches, 1)
  t.true(monitor.unwatch(host))
  t.false(host.active)
  t.is(monitor.stats.watches, 0)
  const released = monitor.close()
  t.is(released.netlink, 0, 'the socket closed with the last host watch, before close()')
})

const noCc = spawnSync('cc', ['--version']).status !== 0 ? 'needs a C compiler for tools/leader-exits.c' : undefined
if (noCc) console.log(`host.spec: SKIPPED: threads folded into their process: ${noCc}`)
;(noCc ? test.skip : test)('threads are folded into their process: a leader that exits first is no exit; one exit, when the last thread ends', async (t) => {
  const monitor = new Monitor()
  const host = monitor.watchHost()
  const exits: ExitEvent[] = []
  let pid = 0
  host.onEvent((ev) => {
    if (ev.type === 'exit' && ev.pid === pid) exits.push(ev)
  })
  const started = monotonicTime()
  // Its leader calls pthread_exit at once; another thread ends the process 600 ms later.
  const child = spawn(tool('leader-exits'), ['600'], { stdio: ['ignore', 'ignore', 'ignore'] })
  pid = child.pid!
  const ev = await host.waitFor((e) => e.type === 'exit' && e.pid === child.pid, { signal: AbortSignal.timeout(10_000) })
  await reaped(child)
  await new Promise((r) => setTimeout(r, 200))
  monitor.close()
  const ms = Number(ev.time - started) / 1e6
  t.is(exits.length, 1, 'one exit for the process')
  t.like(ev, { exitCode: 42, ppid: process.pid })
  t.true(ms >= 600, `seen ${ms} ms after the start: when the last thread ended`)
})

test('a host watch with a cgroup keeps only that subtree; forks and execs on request', async (t) => {
  const monitor = new Monitor()
  const mine = monitor.watchHost({ forks: true, execs: true })
  const elsewhere = monitor.watchHost({ cgroup: '/lifewatch-no-such-subtree' })
  const other: LifewatchEvent[] = []
  elsewhere.onEvent((ev) => other.push(ev))
  const got: LifewatchEvent[] = []
  mine.onEvent((ev) => got.push(ev))
  const child = spawn('sh', ['-c', 'exec true'], { stdio: 'ignore' })
  await mine.waitFor((ev) => ev.type === 'exit' && ev.pid === child.pid, { signal: AbortSignal.timeout(10_000) })
  await reaped(child)
  const of = got.filter((ev) => 'pid' in ev && ev.pid === child.pid).map((ev) => ev.type)
  // Node's child execs sh, which execs true.
  t.deepEqual(of, ['fork', 'exec', 'exec', 'exit'])
  const exec = got.filter((ev) => ev.type === 'exec' && ev.pid === child.pid).at(-1)
  t.like(exec, { comm: 'true', ppid: process.pid })
  t.false(other.some((ev) => 'pid' in ev && ev.pid === child.pid), 'not in the filtered cgroup: not reported there')
  monitor.close()
  t.false(mine.active)
})

test('a tree watch follows forks made after it began, each exit with its ppid, and ends with the last member', async (t) => {
  const monitor = new Monitor()
  // The root waits for a line on stdin before it forks: every descendant comes after the watch.
  const root = spawn('sh', ['-c', 'read go; (sh -c "sleep 0.2; exit 3" & wait) & (exit 4) & wait; exit 5'], { stdio: ['pipe', 'ignore', 'ignore'] })
  const tree = monitor.watchTree(root.pid!, { forks: true })
  const events: LifewatchEvent[] = []
  tree.onEvent((ev) => events.push(ev))
  root.stdin!.end('go\n')
  const last = await tree.wait({ signal: AbortSignal.timeout(10_000) })
  await reaped(root)
  const forks = events.filter((ev) => ev.type === 'fork')
  const exits = events.filter((ev): ev is ExitEvent => ev.type === 'exit')
  t.true(forks.length >= 3, `three forks at least: ${events.map((e) => `${e.type} ${'pid' in e ? e.pid : ''}`).join(', ')}`)
  // Every member that was forked exited, and the root last of all.
  const sorted = (pids: number[]) => [...pids].sort((a, b) => a - b)
  t.deepEqual(sorted(exits.map((e) => e.pid)), sorted([root.pid!, ...forks.map((f) => (f as { pid: number }).pid)]))
  for (const f of forks) {
    const e = exits.find((x) => x.pid === (f as { pid: number }).pid)!
    t.is(e.ppid, (f as { ppid: number }).ppid, `${e.pid}: exited with the parent it was forked by`)
  }
  t.is(last, exits[exits.length - 1])
  t.like(last, { pid: root.pid!, exitCode: 5, remaining: 0, ppid: process.pid })
  // `remaining`: the members alive after each exit, as the forks and exits before it tell.
  let members = 1
  const counted = events.flatMap((ev) => (ev.type === 'fork' ? (members++, []) : ev.type === 'exit' ? [--members] : []))
  t.deepEqual(exits.map((e) => e.remaining), counted)
  t.true(exits.some((e) => e.exitCode === 3) && exits.some((e) => e.exitCode === 4))
  t.false(tree.active)
  t.is(monitor.stats.watches, 0)
  t.is(tree.exit, last, 'the last exit stays available')
  t.is((await tree.wait()).pid, root.pid!)
  t.is(monitor.close().netlink, 0)
})

;(isRoot ? test : test.skip)('a host watch with a cgroup reports the exits in that cgroup and below it, and no other', async (t) => {
  const cg = Cgroup.create(`lifewatch-test/host-filter-${process.pid}/inner`)
  t.teardown(() => cg.delete({ kill: true }))
  const monitor = new Monitor()
  t.teardown(() => monitor.close())
  const parent = cg.path.slice(0, cg.path.lastIndexOf('/'))
  const host = monitor.watchHost({ cgroup: parent })
  const seen: ExitEvent[] = []
  host.onEvent((ev) => {
    if (ev.type === 'exit') seen.push(ev)
  })
  const outside = sh('exit 1')
  // It lives a moment: its cgroup is read from /proc when it execs (see docs/host.md).
  const inside = cg.spawn('sh', ['-c', 'sleep 0.2; exit 6'], { monitor, stdio: 'ignore' })
  const reported = host.waitFor((e) => e.type === 'exit' && e.pid === inside.pid, { signal: AbortSignal.timeout(10_000) })
  await inside.wait()
  await reported
  await reaped(outside)
  await new Promise((r) => setTimeout(r, 100))
  monitor.close()
  t.like(seen.find((e) => e.pid === inside.pid), { exitCode: 6, cgroup: cg.path })
  t.deepEqual(seen.filter((e) => !e.cgroup?.startsWith(`${parent}/`) && e.cgroup !== parent), [], 'only exits in the subtree')
})

test('a tree watch refuses a PID that does not exist', async (t) => {
  const monitor = new Monitor()
  const gone = sh('exit 0')
  await reaped(gone)
  t.throws(() => monitor.watchTree(gone.pid!), { code: 'ERR_NO_SUCH_PROCESS' })
  t.is(monitor.stats.watches, 0)
  monitor.close()
})

/** A v1 or v2 memory cgroup with a 16 MiB limit; undefined (with why) where none can be made. */
function memoryCgroup(name: string): { dir: string; rel: string; remove(): void } | string {
  if (!isRoot) return 'needs root to create a memory cgroup'
  const v2 = existsSync('/sys/fs/cgroup/cgroup.subtree_control') && readFileSync('/sys/fs/cgroup/cgroup.subtree_control', 'utf8').split(/\s/).includes('memory')
  const mount = v2 ? '/sys/fs/cgroup' : '/sys/fs/cgroup/memory'
  if (!v2 && !existsSync(`${mount}/memory.limit_in_bytes`)) return 'no memory controller'
  const dir = `${mount}/${name}`
  mkdirSync(dir)
  const limit = String(16 << 20)
  if (v2) {
    writeFileSync(`${dir}/memory.max`, limit)
    if (existsSync(`${dir}/memory.swap.max`)) writeFileSync(`${dir}/memory.swap.max`, '0')
  } else {
    writeFileSync(`${dir}/memory.limit_in_bytes`, limit)
    if (existsSync(`${dir}/memory.memsw.limit_in_bytes`)) writeFileSync(`${dir}/memory.memsw.limit_in_bytes`, limit)
  }
  return { dir, rel: `/${name}`, remove: () => rmdirSync(dir) }
}

const oomCgroup = memoryCgroup(`lifewatch-test-${process.pid}-oomkill`)
if (typeof oomCgroup === 'string') console.log(`host.spec: SKIPPED: the OOM kill: ${oomCgroup}`)
;(typeof oomCgroup === 'string' ? test.skip : test)('an OOM-kill watch names the victim of a real OOM kill: pid, comm, cgroup, the limit hit, its memory', async (t) => {
  const cg = oomCgroup as Exclude<typeof oomCgroup, string>
  t.teardown(() => cg.remove())
  const monitor = new Monitor()
  const kills = monitor.watchOomKills()
  // A cgroup OOM watch on the same monitor names the victims its kills count.
  const cgroupWatch = monitor.watchCgroup(cg.rel, { oom: true })
  const oom = cgroupWatch.waitFor((e) => e.type === 'oom', { signal: AbortSignal.timeout(60_000) })
  const hog = spawn('sh', ['-c', `echo $$ > ${cg.dir}/cgroup.procs && exec tail /dev/zero`], { stdio: 'ignore' })
  const ev = await kills.waitFor((e) => e.type === 'oomKill' && e.pid === hog.pid, { signal: AbortSignal.timeout(60_000) })
  await reaped(hog)
  const counted = await oom
  t.true(counted.type === 'oom' && (counted.victims ?? []).some((v) => v.pid === hog.pid && v.comm === 'tail' && v.cgroup === cg.rel), JSON.stringify(counted, (_k, v) => (typeof v === 'bigint' ? String(v) : v)))
  t.is(hog.signalCode, 'SIGKILL')
  t.like(ev, { type: 'oomKill', pid: hog.pid!, comm: 'tail', cgroup: cg.rel, oomCgroup: cg.rel, constraint: 'memcg', uid: 0 })
  if (ev.type !== 'oomKill') return
  t.true(ev.anonRss! > 8 << 20, `anon-rss ${ev.anonRss} near the 16 MiB limit`)
  t.true(ev.totalVm! >= ev.anonRss!)
  t.is(monitor.close().kmsg, 1)
})

const onPath = (cmd: string): boolean => (process.env.PATH ?? '').split(':').some((d) => existsSync(`${d}/${cmd}`))
const noUnpriv = !isRoot || !onPath('setpriv') ? 'needs root and setpriv(1) to drop to an unprivileged user' : undefined
if (noUnpriv) console.log(`host.spec: SKIPPED: unprivileged: ${noUnpriv}`)
;(noUnpriv ? test.skip : test)('unprivileged: ERR_PERMISSION naming the capability, nothing half-registered, no fd left', async (t) => {
  const r = await run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '--import', 'tsx', fixture('host-unprivileged.ts')], {
    env: { HOME: '/tmp' },
  })
  t.is(r.code, 0, r.stderr)
  const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as {
    oomKills: { code: string; message: string }
    host: { code: string; message: string }
    watches: number
    inUse: { netlink: number; kmsg: number }
    unhandled: string[]
  }
  t.log(JSON.stringify(out))
  const restricted = readFileSync('/proc/sys/kernel/dmesg_restrict', 'utf8').trim() === '1'
  if (restricted) {
    t.is(out.oomKills.code, 'ERR_PERMISSION')
    t.regex(out.oomKills.message, /CAP_SYSLOG/)
    t.regex(out.oomKills.message, /dmesg_restrict/)
  } else {
    t.is(out.oomKills.code, 'ok', 'kernel.dmesg_restrict is 0: anyone may read the log')
  }
  // Linux 6.6 and later let any user listen; before, the kernel asks for CAP_NET_ADMIN.
  if (out.host.code !== 'ok') {
    t.is(out.host.code, 'ERR_PERMISSION')
    t.regex(out.host.message, /CAP_NET_ADMIN|namespaces/)
  }
  t.is(out.watches, out.host.code === 'ok' ? 1 : 0, 'only a watch that succeeded is registered')
  t.deepEqual(out.inUse, { netlink: out.host.code === 'ok' ? 1 : 0, kmsg: 0 })
  t.deepEqual(out.unhandled, [])
})

test('a host stream is queued for the iterator only once the monitor is iterated: listening on the watch alone builds no queue', async (t) => {
  const monitor = new Monitor()
  t.teardown(() => monitor.close())
  const host = monitor.watchHost()
  const before = sh('exit 3')
  await host.waitFor((ev) => ev.type === 'exit' && ev.pid === before.pid, { signal: AbortSignal.timeout(10_000) })
  await reaped(before)
  // Iterated from here on: the next exit comes through the iterator, the earlier one never does.
  const it = monitor.events()[Symbol.asyncIterator]()
  const after = sh('exit 4')
  let first: LifewatchEvent | undefined
  for (;;) {
    const r = await it.next()
    if (r.done) break
    if (r.value.type === 'exit' && (r.value.pid === before.pid || r.value.pid === after.pid)) {
      first = r.value
      break
    }
  }
  await reaped(after)
  t.like(first, { type: 'exit', pid: after.pid, exitCode: 4 }, 'the exit before the iteration was the watch listeners\' alone')
  await it.return!()
})
