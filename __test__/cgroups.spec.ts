import test from 'ava'
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

import { cgroupLayout, cgroupOf, LifewatchError, Monitor, type LifewatchEvent } from '../src/index.js'
import { lines } from './cli-lines.js'
import { addedFds, cli, fdTable, reaped, sh } from './helpers.js'

const layout = cgroupLayout()
const unified = layout.unified?.mount
const memory = layout.v1.memory?.mount
let seq = 0

// Skips are declared (and said) at load: these tests create cgroups in the named hierarchy.
const isRoot = process.getuid?.() === 0
const lacking = (mount: string | undefined, what: string) => (!mount ? `no ${what}` : !isRoot ? 'not root: cannot create cgroups' : undefined)
const noUnified = lacking(unified, 'unified hierarchy')
const noMemory = lacking(memory, 'v1 memory hierarchy')
if (noUnified) console.log(`cgroups.spec: SKIPPED: the cgroup v2 event tests and the CLI cgroup test: ${noUnified}`)
if (noMemory) console.log(`cgroups.spec: SKIPPED: the v1 OOM test: ${noMemory}`)
const withUnified = noUnified ? test.serial.skip : test.serial
const withMemory = noMemory ? test.serial.skip : test.serial

/** A fresh cgroup directory in each given mount (same relative name). */
function makeCgroup(mounts: (string | undefined)[]): { rel: string; dirs: string[]; remove(): void } {
  const rel = `lifewatch-test-ts-${process.pid}-${seq++}`
  const dirs = mounts.map((m) => join(m!, rel))
  for (const d of dirs) mkdirSync(d)
  return {
    rel,
    dirs,
    remove() {
      for (const d of dirs) {
        for (let i = 0; i < 100 && existsSync(d); i++) {
          try {
            rmdirSync(d)
          } catch {
            Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20)
          }
        }
      }
    },
  }
}

async function until(monitor: Monitor, pred: (e: LifewatchEvent) => boolean, ms = 10_000): Promise<LifewatchEvent[]> {
  const got: LifewatchEvent[] = []
  const timer = setTimeout(() => monitor.close(), ms)
  for await (const ev of monitor) {
    got.push(ev)
    if (pred(ev)) break
  }
  clearTimeout(timer)
  return got
}

test('cgroupOf and cgroupLayout describe this machine', (t) => {
  t.true(['v1', 'v2', 'hybrid'].includes(layout.mode))
  const mine = cgroupOf(process.pid)
  t.true(mine.unifiedPath !== undefined || Object.keys(mine.v1).length > 0)
  t.throws(() => cgroupOf(0), { code: 'ERR_INVALID_ARGUMENT' })
})

withUnified('watchCgroup: populated 1 -> 0, then removed; waitFor; fds back to baseline', async (t) => {
  const cg = makeCgroup([unified])
  const before = fdTable()
  const monitor = new Monitor()
  try {
    const child = sh(`echo $$ > ${cg.dirs[0]}/cgroup.procs && exec sleep 0.3`)
    while (!readFileSync(join(cg.dirs[0], 'cgroup.procs'), 'utf8').trim()) await new Promise((r) => setTimeout(r, 5))
    const w = monitor.watchCgroup(cg.rel, { events: true, oom: false })
    const empty = await w.waitFor((e) => e.type === 'populated' && !e.value)
    t.like(empty, { type: 'populated', cgroup: `/${cg.rel}`, value: false, watch: w.id })
    await reaped(child)
    cg.remove()
    const removed = await w.removed()
    t.is(removed.cgroup, `/${cg.rel}`)
    t.false(w.active)
    const seen = await until(monitor, (e) => e.type === 'removed')
    t.deepEqual(
      seen.map((e) => e.type),
      ['populated', 'removed'],
    )
    t.is(monitor.stats.inotifyOverflows, 0, 'a quiet monitor never overflowed its inotify queue')
  } finally {
    monitor.close()
    cg.remove()
  }
  t.deepEqual(addedFds(before), [], 'no fd left open')
})

test.serial('bad input is typed', (t) => {
  const monitor = new Monitor()
  const before = fdTable()
  t.throws(() => monitor.watchCgroup('lifewatch-no-such-cgroup-ts'), { instanceOf: LifewatchError, code: 'ERR_NO_SUCH_CGROUP' })
  t.throws(() => monitor.watchCgroup('../etc'), { code: 'ERR_INVALID_ARGUMENT' })
  t.throws(() => monitor.watchCgroup('/tmp'), { code: 'ERR_INVALID_ARGUMENT' })
  t.throws(() => monitor.watchCgroup('', {}), { code: 'ERR_INVALID_ARGUMENT' })
  t.throws(() => monitor.watchCgroup('x', { oom: 'yes' as unknown as boolean }), { code: 'ERR_INVALID_ARGUMENT' })
  t.throws(() => monitor.watchCgroup('x', { psi: [{ stallUs: 0, windowUs: 1_000_000 }] }), { code: 'ERR_INVALID_ARGUMENT' })
  t.throws(() => monitor.watchCgroup('x', { pressure: 'extreme' as 'low' }), { code: 'ERR_INVALID_ARGUMENT' })
  t.deepEqual(addedFds(before), [], 'no fd left open')
  monitor.close()
  t.throws(() => monitor.watchCgroup('x'), { code: 'ERR_CLOSED' })
})

withMemory('v1: OOM kill in a 32 MiB memory cgroup arrives before the hog exit (SIGKILL)', async (t) => {
  const cg = makeCgroup([memory])
  writeFileSync(join(cg.dirs[0], 'memory.limit_in_bytes'), '33554432')
  const monitor = new Monitor()
  try {
    const cw = monitor.watchCgroup(cg.rel, { oom: true })
    const hog = sh(`echo $$ > ${cg.dirs[0]}/cgroup.procs && x=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa; while :; do x=$x$x; done`)
    const pw = monitor.watchPid(hog.pid!)
    const got = await until(monitor, (e) => e.type === 'exit' && e.watch === pw.id, 30_000)
    const oom = got.findIndex((e) => e.type === 'oom' && e.watch === cw.id)
    const exit = got.findIndex((e) => e.type === 'exit')
    t.true(oom >= 0 && oom < exit, JSON.stringify(got, (_k, v) => (typeof v === 'bigint' ? String(v) : v)))
    const ev = got[oom]!
    if (ev.type !== 'oom') return t.fail()
    t.true(ev.kills >= 1)
    t.true((ev.counters.oom_kill ?? 0) >= 1)
    t.is(ev.stats.memoryMax, 33554432)
    t.like(got[exit], { type: 'exit', signal: 'SIGKILL' })
    await reaped(hog)
  } finally {
    monitor.close()
    cg.remove()
  }
})

withUnified('CLI: lifewatch watch --cgroup streams JSON until the cgroup is removed', async (t) => {
  const cg = makeCgroup([unified])
  const dir = cg.dirs[0]!
  // A member that outlives the CLI's start-up (slow under load), then leaves; the cgroup is
  // removed once it is empty. Only changes are reported: populated 0, then removed.
  const member = sh(`echo $$ > ${dir}/cgroup.procs && exec sleep 4`)
  member.on('exit', () => setTimeout(() => cg.remove(), 100))
  while (!readFileSync(join(dir, 'cgroup.procs'), 'utf8').trim()) await new Promise((r) => setTimeout(r, 5))
  const r = await cli(['watch', '--cgroup', cg.rel, '--json'], { timeoutMs: 20_000 })
  await reaped(member)
  cg.remove()
  t.is(r.code, 0, r.stderr)
  const got = lines(t, r.stdout)
  t.deepEqual(
    got.map((l) => [l.type, l.value]),
    [
      ['populated', false],
      ['removed', undefined],
    ],
  )
})
