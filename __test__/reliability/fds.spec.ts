// Reliability parts 1 and 2 (Node side): fdStats() agrees with /proc/self/fd after every
// scenario, and 1,000 (10,000 with LIFEWATCH_CYCLES) create/watch/close cycles of every
// kind end with fds and counters at baseline and RSS within a stated bound.
import test from 'ava'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, rmdirSync } from 'node:fs'
import { join } from 'node:path'

import { Cgroup, cgroupLayout, fdStats, Monitor, type CgroupWatchOptions } from '../../src/index.js'
import { reaped, sh } from '../helpers.js'
import { addedFds, baseline, mismatch, procKinds, report, rssKiB } from './helpers.js'

const sleeper = () => spawn('sleep', ['30'], { stdio: 'ignore' })
const gc = (globalThis as { gc?: () => void }).gc

type Check = (label: string) => void

/** One line per scenario; the cgroup kinds add theirs (v1 OOM, v1 pressure, v2 events, PSI). */
const scenarios: Array<[string, (check: Check) => Promise<void> | void]> = [
  ['idle monitor', (check) => {
    const m = new Monitor()
    check('open')
    m.close()
    check('closed')
  }],
  ['pidfd watch, unwatch, close', async (check) => {
    const c = sleeper()
    const m = new Monitor()
    const w = m.watchPid(c.pid!)
    check('watching')
    m.unwatch(w)
    check('unwatched')
    m.close()
    check('closed')
    c.kill()
    await reaped(c)
  }],
  ['fallback watch', async (check) => {
    const c = sleeper()
    const m = new Monitor({ forceFallback: true })
    m.watchPid(c.pid!)
    check('watching')
    m.close()
    check('closed')
    c.kill()
    await reaped(c)
  }],
  ['watch retired by its exit', async (check) => {
    const c = sh('exit 3')
    const m = new Monitor()
    await m.watchPid(c.pid!).wait()
    check('exit delivered')
    m.close()
    check('closed')
    await reaped(c)
  }],
  ['failed watch of a dead pid', async (check) => {
    const c = sh('exit 0')
    await reaped(c)
    const m = new Monitor()
    try {
      m.watchPid(c.pid!)
    } catch {
      // expected: ERR_NO_SUCH_PROCESS
    }
    check('after the error')
    m.close()
    check('closed')
  }],
  ['200 watches, closed with exits undelivered', async (check) => {
    const cs = Array.from({ length: 200 }, sleeper)
    const m = new Monitor()
    for (const c of cs) m.watchPid(c.pid!)
    check('200 watching')
    for (const c of cs) c.kill('SIGKILL')
    await Promise.all(cs.map(reaped))
    m.close()
    check('closed')
  }],
  ['await using', async (check) => {
    {
      await using m = new Monitor()
      m.watchPid(process.pid)
      check('in scope')
    }
    check('scope left')
  }],
]

test.serial('fdStats() equals /proc/self/fd, kind by kind, after every scenario', async (t) => {
  const b = baseline()
  let tried = 0
  for (const [name, scenario] of scenarios) {
    await scenario((label) => t.deepEqual(mismatch(b), {}, `${name}: ${label}`))
    t.deepEqual(addedFds(b.table), [], `${name}: no fd left open`)
    tried++
  }
  report({ section: 'fd accounting', case: 'node: fdStats vs /proc/self/fd', fdsLeaked: addedFds(b.table).length, eventsLost: 0, scenarios: tried })
})

test.serial("an exit's pidfd is closed by the end of the loop turn that delivered the exit, fdStats() asked or not", async (t) => {
  const pidfds = () => procKinds().pidfd
  const m = new Monitor()
  try {
    t.true(m.directWake, 'the doorbell delivers (the path that defers the close)')
    const before = pidfds()
    const c = sh('exit 3')
    const w = m.watchPid(c.pid!)
    t.is(pidfds(), before + 1, 'the watch holds a pidfd')
    t.is((await w.wait()).exitCode, 3)
    await new Promise((r) => setImmediate(r))
    t.is(pidfds(), before, 'closed once the delivering loop turn is over')
    await reaped(c)
  } finally {
    m.close()
  }
})

const CYCLES = Number(process.env.LIFEWATCH_CYCLES ?? 1000)
/**
 * RSS growth allowed over the measured cycles: 4 MiB plus a per-cycle allowance. They follow
 * as many cycles unmeasured, as the allocator settles (new malloc arenas as threads come and
 * go, V8's heap): with a tenth of them first, a whole monitor's 900 measured cycles grew
 * +2.5 to +5.6 MiB from run to run, the same before and after a change, which made the bound
 * a coin toss; after a whole run first, +0.2 to +2.9 MiB. Measured after the env-cleanup-hook
 * fix (20,000 whole-monitor cycles, --expose-gc): +248 B per cycle over the first 20,000,
 * +28 B over the next 20,000; before it, a steady ~1 KiB per monitor (the hook's
 * registration kept each closed monitor alive). A closed monitor's threadsafe function is
 * finalised on the event loop, so the cycles yield to it every 100 iterations, as any real
 * program does.
 */
const rssBoundKiB = (perCycleKiB: number) => 4096 + Math.ceil(perCycleKiB * CYCLES)
/** Measured rounds at most, for a kind whose first measured round grew past its bound. */
const ROUNDS = 3

interface Cx {
  child: ChildProcess
  shared: Monitor
  /** Test cgroups (relative paths, as watchCgroup takes them) in the v1 memory hierarchy
   *  only and in the unified hierarchy only; undefined where absent or not root. */
  v1?: string
  unified?: string
  unifiedDir?: string
}

const isRoot = process.getuid?.() === 0
const layout = cgroupLayout()

/** A directory of its own for the cycles in `mount`, or undefined. */
function testDir(mount: string | undefined, what: string): { rel: string; dir: string } | undefined {
  if (!mount || !isRoot) return undefined
  const rel = `lifewatch-test-${process.pid}-cycles-${what}`
  const dir = join(mount, rel)
  try {
    mkdirSync(dir)
    return { rel, dir }
  } catch {
    return undefined
  }
}

const only = (oom: boolean, events: boolean): CgroupWatchOptions => ({ oom, events })
const psi = { resource: 'memory' as const, stallUs: 100_000, windowUs: 2_000_000 }

/**
 * One line per watcher kind: the pid kinds, the cgroup watchers (v1 OOM, v1 pressure, v2
 * events, PSI) and the cgroup manager. A cycle returns false (before doing anything) where
 * this host lacks what it needs. The third column is the RSS allowance per cycle (KiB);
 * the fourth divides the cycle count for kinds that cost the kernel milliseconds (an
 * inotify fd or a PSI trigger waits for an RCU grace period on close; a spawn forks),
 * unless the run asked for more than 1,000 cycles (spawns: always).
 */
const cycles: Array<[string, (cx: Cx) => void | boolean | Promise<void | boolean>, number, number?]> = [
  ['pid watch (pidfd)', (cx) => cx.shared.unwatch(cx.shared.watchPid(cx.child.pid!)), 0.5],
  ['whole monitor + pid watch, close', (cx) => {
    const m = new Monitor()
    m.watchPid(cx.child.pid!)
    m.close()
  }, 0.25],
  ['whole monitor + fallback watch, close', (cx) => {
    const m = new Monitor({ forceFallback: true })
    m.watchPid(cx.child.pid!)
    m.close()
  }, 0.25],
  ['v1 OOM watch (eventfd), unwatch', (cx) => {
    if (!cx.v1) return false
    cx.shared.unwatch(cx.shared.watchCgroup(cx.v1, only(true, false)))
  }, 0.5],
  ['v1 pressure watch (eventfd), unwatch', (cx) => {
    if (!cx.v1) return false
    cx.shared.unwatch(cx.shared.watchCgroup(cx.v1, { ...only(false, false), pressure: 'low' }))
  }, 0.5],
  ['whole monitor + v2 events watch (inotify), close', (cx) => {
    if (!cx.unified) return false
    const m = new Monitor()
    m.watchCgroup(cx.unified, only(false, true))
    m.close()
  }, 0.5, 10],
  ['PSI trigger watch (memory.pressure), unwatch', (cx) => {
    if (!cx.unified) return false
    cx.shared.unwatch(cx.shared.watchCgroup(cx.unified, { ...only(false, false), psi: [psi] }))
  }, 0.5, 10],
  ['Cgroup create, delete', async () => {
    if (!isRoot) return false
    await Cgroup.create(`lifewatch-test-${process.pid}-cycles-mgr`).delete()
  }, 1],
  ['Cgroup spawn, kill, delete', async (cx) => {
    if (!isRoot) return false
    const cg = Cgroup.create(`lifewatch-test-${process.pid}-cycles-spawn`)
    const w = cg.spawn('sleep', ['30'], { monitor: cx.shared, stdio: 'ignore' })
    await cg.delete({ kill: true })
    const exit = await w.wait()
    if (exit.signal !== 'SIGKILL') throw new Error(`spawned child ended with ${JSON.stringify(exit)}`)
  }, 2, -10],
]

test.serial(`${CYCLES} create/watch/close cycles per kind return to baseline`, async (t) => {
  // The v2-events and PSI kinds wait an RCU grace period (~10 ms) per close: at the full
  // 10,000 cycles the whole table takes minutes, far past ava's default 2 min.
  t.timeout(Math.max(120_000, CYCLES * 200), 'the unmeasured run and up to three measured ones, about 10 ms a cycle for the slowest kinds, with room')
  const v1 = testDir(layout.v1.memory?.mount, 'v1')
  const unified = testDir(layout.unified?.mount, 'unified')
  const cx: Cx = { child: sleeper(), shared: new Monitor(), v1: v1?.rel, unified: unified?.rel }
  for (const [name, cycle, perCycleKiB, divide] of cycles) {
    const n = divide !== undefined && (divide < 0 || CYCLES <= 1000) ? Math.max(20, Math.floor(CYCLES / Math.abs(divide))) : CYCLES
    const RSS_BOUND_KIB = rssBoundKiB(perCycleKiB)
    const warm = n
    const run = async (from: number, to: number) => {
      for (let i = from; i < to; i++) {
        await cycle(cx)
        if (i % 100 === 99) await new Promise((r) => setImmediate(r))
      }
    }
    if ((await cycle(cx)) === false) {
      t.log(`${name}: skipped (not available on this host, or not root)`)
      continue
    }
    await run(1, warm)
    // A leak grows RSS in every measured round; the allocator and V8's heap settling (a new
    // arena, a grown young generation) grow it once, by several MiB, at no fixed point. So
    // a round over the bound is measured again, up to three rounds, and the least growth is
    // judged; fds and counters must be exact in every round.
    const grown: number[] = []
    let leaked = 0
    do {
      gc?.()
      const b = baseline()
      const stats = fdStats()
      const rss = rssKiB()
      const t0 = Date.now()
      await run(warm, warm + n)
      // Let the finalizers and threadsafe-function releases of the last cycles run.
      await new Promise((r) => setTimeout(r, 50))
      gc?.()
      grown.push(Math.max(0, rssKiB() - rss))
      const after = fdStats()
      const left = addedFds(b.table)
      leaked = Math.max(leaked, left.length)
      t.log(`${name}: ${n} cycles in ${Date.now() - t0} ms, rss +${grown.at(-1)} KiB, fds ${left.length}`)
      t.deepEqual(left, [], `${name}: no fd left open`)
      t.deepEqual(mismatch(b), {}, `${name}: counters vs /proc`)
      for (const k of ['epoll', 'pidfd', 'eventfd', 'inotify', 'psi', 'control'] as const) {
        t.is(after[k].inUse, stats[k].inUse, `${name}: ${k} in use`)
        t.is(after[k].allocated - stats[k].allocated, after[k].released - stats[k].released, `${name}: ${k} all released`)
      }
    } while (grown.length < ROUNDS && Math.min(...grown) > RSS_BOUND_KIB)
    const grew = Math.min(...grown)
    t.true(grew <= RSS_BOUND_KIB, `${name}: RSS grew ${grown.join(', ')} KiB in ${grown.length} rounds (bound ${RSS_BOUND_KIB} KiB)`)
    report({ section: 'leak cycles', case: `node: ${name}`, fdsLeaked: leaked, eventsLost: 0, cycles: n, rssGrowthKiB: grew, rssBoundKiB: RSS_BOUND_KIB, gc: gc !== undefined })
  }
  cx.shared.close()
  cx.child.kill()
  await reaped(cx.child)
  for (const d of [v1, unified]) if (d) rmdirSync(d.dir)
})
