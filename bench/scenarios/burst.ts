// Scenario 4: burst. N sleeping processes (one helper's children, one process group) are
// SIGKILLed by one kill(-pgid); t0 is the helper's CLOCK_MONOTONIC right before that call.
// Each peer gets its own fresh set of N processes: lifewatch (one Monitor, `for await`),
// the native floor (one epoll set of N pidfds), and a 100 ms kill(pid, 0) sweep.
import { Monitor } from '../../src/index.js'
import { Floor, Sleepers } from '../lib/natives.js'
import { ratio } from '../lib/stats.js'
import type { Goal, ScenarioConfig, ScenarioOutput, Table } from '../lib/types.js'

const now = () => process.hrtime.bigint()
const ms = (ns: bigint) => Number(ns) / 1e6

interface BurstResult {
  /** t0 → first exit seen / every exit seen, ms. */
  first: number
  all: number
  /** Wakeups of the observer: N-API deliveries, epoll_wait returns, poll sweeps. */
  calls: number
  /** t0 → the helper had reaped every process, ms (the kernel side of the burst). */
  reaped: number
  extra?: Record<string, number>
}

async function lifewatch(n: number): Promise<BurstResult> {
  const sleepers = await Sleepers.start(n)
  const monitor = new Monitor()
  try {
    for (const pid of sleepers.pids) monitor.watchPid(pid)
    const d0 = monitor.stats.deliveries
    const { t0, reaped } = await sleepers.kill()
    let seen = 0
    let first = 0n
    let last = 0n
    let lastReactor = 0n
    let killed = 0
    for await (const ev of monitor) {
      if (ev.type !== 'exit') throw new Error(`unexpected event ${ev.type}: ${'error' in ev ? ev.error.message : ''}`)
      const at = now()
      if (!first) first = at
      last = at
      if (ev.time > lastReactor) lastReactor = ev.time
      if (ev.signal === 'SIGKILL') killed++
      if (++seen === n) break // breaking out closes the monitor
    }
    const deliveries = monitor.stats.deliveries - d0
    return {
      first: ms(first - t0),
      all: ms(last - t0),
      calls: deliveries,
      reaped: ms((await reaped) - t0),
      extra: { lastReactorMs: ms(lastReactor - t0), withSigkillStatus: killed, eventsPerDelivery: n / deliveries },
    }
  } finally {
    monitor.close()
    await sleepers.close()
  }
}

async function floor(n: number): Promise<BurstResult> {
  const sleepers = await Sleepers.start(n)
  const f = new Floor()
  try {
    const { done } = await f.burst(sleepers.pidfile)
    const { t0, reaped } = await sleepers.kill()
    const r = await done
    return { first: ms(r.first - t0), all: ms(r.last - t0), calls: r.wakeups, reaped: ms((await reaped) - t0) }
  } finally {
    await f.close()
    await sleepers.close()
  }
}

async function poller(n: number, interval: number): Promise<BurstResult> {
  const sleepers = await Sleepers.start(n)
  try {
    let alive = [...sleepers.pids]
    let sweeps = 0
    let first = 0n
    let killed: Promise<{ t0: bigint; reaped: Promise<bigint> }> | undefined
    const last = await new Promise<bigint>((resolve) => {
      // The kill lands at a uniformly random phase of the polling period.
      setTimeout(() => (killed = sleepers.kill()), Math.random() * interval)
      const timer = setInterval(() => {
        if (!killed) return
        sweeps++
        alive = alive.filter((pid) => {
          try {
            process.kill(pid, 0)
            return true
          } catch {
            return false
          }
        })
        if (!first && alive.length < n) first = now()
        if (alive.length === 0) {
          clearInterval(timer)
          resolve(now())
        }
      }, interval)
    })
    const { t0, reaped } = await killed!
    return { first: ms(first - t0), all: ms(last - t0), calls: sweeps, reaped: ms((await reaped) - t0) }
  } finally {
    await sleepers.close()
  }
}

export async function run(cfg: ScenarioConfig): Promise<ScenarioOutput> {
  const n = cfg.quick ? 300 : 10_000
  const t = performance.now()
  const results: Record<string, BurstResult> = {}
  // Floor first, then lifewatch, then the poller: each with a fresh set of processes.
  results['native floor'] = await floor(n)
  results['lifewatch'] = await lifewatch(n)
  results['poll kill(pid,0) 100 ms'] = await poller(n, 100)
  const seconds = (performance.now() - t) / 1000
  const lw = results['lifewatch']!
  const fl = results['native floor']!
  const pl = results['poll kill(pid,0) 100 ms']!
  const table: Table = {
    title: `Burst: ${n} processes SIGKILLed by one kill(-pgid); ms from the kill`,
    columns: ['peer', 'first exit ms', 'every exit ms', 'observer wakeups', 'helper reaped all ms', 'every exit ×floor', 'every exit ×lifewatch'],
    rows: Object.entries(results).map(([name, r]) => [name, r.first, r.all, r.calls, r.reaped, ratio(r.all, fl.all), ratio(r.all, lw.all)]),
  }
  const goals: Goal[] = [
    {
      goal: 'burst: exits batched, ≤ 1 N-API delivery per 64 exits',
      measured: `${n} exits in ${lw.calls} deliveries (${(n / lw.calls).toFixed(1)} per call); the floor woke ${fl.calls} times`,
      met: lw.calls <= n / 64,
    },
    {
      goal: 'burst: every exit in JS ≤ 1.2 × the floor',
      measured: `${lw.all.toFixed(1)} vs ${fl.all.toFixed(1)} ms (${ratio(lw.all, fl.all).toFixed(2)}×); poller ${pl.all.toFixed(1)} ms`,
      met: ratio(lw.all, fl.all) <= 1.2,
    },
    {
      goal: 'burst: every exit carries its status',
      measured: `${lw.extra!.withSigkillStatus} of ${n} exit events say SIGKILL`,
      met: lw.extra!.withSigkillStatus === n,
    },
  ]
  return {
    tables: [table],
    goals,
    notes: [
      `Observer wakeups: lifewatch = N-API batch deliveries (monitor.stats.deliveries), floor = epoll_wait returns, poller = sweeps. ${seconds.toFixed(1)} s.`,
      `lifewatch's reactor had stamped the last exit ${lw.extra!.lastReactorMs.toFixed(1)} ms after the kill; the rest of "every exit" is delivery to JS.`,
      "Node's child_process is not a peer here: 10,000 children of Node would each cost a spawn through libuv, and its SIGCHLD handling calls waitpid once per live child handle.",
    ],
    data: { n, seconds, results },
  }
}
