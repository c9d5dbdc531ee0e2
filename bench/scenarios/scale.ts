// Scenario 3: scale. N sleeping processes (not our children: one helper forks and reaps
// them), W watches on one Monitor, then 10 s of nothing: what does watching cost at rest?
// Figures come from /proc/self (RSS, per-thread voluntary context switches = wakeups, CPU)
// and lifewatch's own fd accounting; the same idle window is measured with no watcher at
// all (baseline) and with a runc-style poller over the same N processes.
import { readFileSync } from 'node:fs'

import { fdStats, Monitor } from '../../src/index.js'
import { Sleepers } from '../lib/natives.js'
import { idleCost, openFds, rssBytes, type IdleCost } from '../lib/proc.js'
import { ratio } from '../lib/stats.js'
import type { Goal, ScenarioConfig, ScenarioOutput, Table } from '../lib/types.js'

const gc = (): void => {
  const g = (globalThis as { gc?: () => void }).gc
  if (g) for (let i = 0; i < 3; i++) g()
}

function nofileLimit(): number {
  const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))
  return m ? Number(m[1]) : 1024
}

export async function run(cfg: ScenarioConfig): Promise<ScenarioOutput> {
  const processes = cfg.quick ? 300 : 10_000
  const watches = cfg.quick ? 3_000 : 100_000
  const idleSeconds = cfg.quick ? 1 : 10
  const pollMs = 100
  const notes: string[] = []

  // Watches of one process share its pidfd: the open-files limit caps the processes one
  // Monitor can watch, not the watches.
  const limit = nofileLimit()
  const reserve = 512
  const watched = Math.min(processes, limit - openFds() - reserve)
  if (watched < processes) {
    notes.push(
      `Watched processes capped at ${watched} (of ${processes}): each holds one pidfd and RLIMIT_NOFILE is ${limit} here (hard limit; raising it needs CAP_SYS_RESOURCE).`,
    )
  }

  let t = performance.now()
  const sleepers = await Sleepers.start(processes)
  const spawnMs = performance.now() - t
  const pids = sleepers.pids
  try {
    const baseline = await idleCost(idleSeconds)

    gc()
    const rss0 = rssBytes()
    const heap0 = process.memoryUsage().heapUsed
    const fds0 = openFds()
    const pidfd0 = fdStats().pidfd.inUse
    const monitor = new Monitor()
    t = performance.now()
    for (let i = 0; i < watches; i++) monitor.watchPid(pids[i % watched]!)
    const watchMs = performance.now() - t
    gc()
    const rss1 = rssBytes()
    const heap1 = process.memoryUsage().heapUsed
    const fds1 = openFds()
    const pidfd1 = fdStats().pidfd.inUse
    const deliveries0 = monitor.stats.deliveries
    const lifewatchIdle = await idleCost(idleSeconds)
    const idleDeliveries = monitor.stats.deliveries - deliveries0
    const activeWatches = monitor.stats.watches
    t = performance.now()
    const released = monitor.close()
    const closeMs = performance.now() - t

    // The polling peer over the same processes (all alive: every poll finds them all).
    let sweeps = 0
    const timer = setInterval(() => {
      for (const pid of pids) {
        try {
          process.kill(pid, 0)
        } catch {
          // a sleeper never dies during this window
        }
      }
      sweeps++
    }, pollMs)
    const pollerIdle = await idleCost(idleSeconds)
    clearInterval(timer)

    const perWatch = (bytes: number) => bytes / watches
    const setup: Table = {
      title: `Setup: ${processes} sleeping processes, ${watches} watches of ${watched} of them on one Monitor`,
      columns: ['figure', 'value', 'unit'],
      rows: [
        ['spawn sleepers (helper fork, not lifewatch)', spawnMs, 'ms'],
        ['watchPid × ' + watches, watchMs, 'ms'],
        ['per watch', (watchMs * 1000) / watches, 'µs'],
        ['RSS delta per watch', perWatch(rss1 - rss0), 'bytes'],
        ['JS heap delta per watch', perWatch(heap1 - heap0), 'bytes'],
        ['open fds delta', fds1 - fds0, 'fds'],
        ['core accounting: pidfds in use delta (one per process)', pidfd1 - pidfd0, 'fds'],
        ['close() (releases ' + released.pidfd + ' pidfds)', closeMs, 'ms'],
      ],
    }
    const rows = (name: string, c: IdleCost) => [name, c.wakeups, c.reactorWakeups, c.involuntary, c.cpuMs, (c.cpuMs / c.seconds / 10).toFixed(2)]
    const idle: Table = {
      title: `Idle cost over ${idleSeconds} s (wakeups = voluntary context switches of all threads)`,
      columns: ['peer', 'wakeups', 'reactor wakeups', 'involuntary', 'CPU ms', 'CPU %'],
      rows: [
        rows('baseline (no watcher)', baseline),
        rows(`lifewatch (${watches} watches)`, lifewatchIdle),
        rows(`poll kill(pid,0) ${pollMs} ms × ${processes}`, pollerIdle),
      ],
    }
    const extra = lifewatchIdle.wakeups - baseline.wakeups
    const goals: Goal[] = [
      {
        goal: 'idle lifewatch: zero reactor wakeups',
        measured: `${lifewatchIdle.reactorWakeups} reactor wakeups and ${idleDeliveries} deliveries in ${idleSeconds} s; whole process ${lifewatchIdle.wakeups} vs ${baseline.wakeups} with no watcher (${extra >= 0 ? '+' : ''}${extra})`,
        met: lifewatchIdle.reactorWakeups === 0,
      },
      {
        goal: 'idle lifewatch cheaper than the polling peer',
        measured: `CPU ${lifewatchIdle.cpuMs.toFixed(1)} vs ${pollerIdle.cpuMs.toFixed(1)} ms (poller ${ratio(pollerIdle.cpuMs, lifewatchIdle.cpuMs).toFixed(1)}×), wakeups ${lifewatchIdle.wakeups} vs ${pollerIdle.wakeups}`,
        met: lifewatchIdle.cpuMs <= pollerIdle.cpuMs && lifewatchIdle.wakeups <= pollerIdle.wakeups,
      },
      {
        goal: `${watches} watches on one Monitor`,
        measured: `${activeWatches} active watches of ${watched} processes, holding ${pidfd1 - pidfd0} pidfds`,
        met: activeWatches >= watches && pidfd1 - pidfd0 === watched,
      },
    ]
    notes.push(
      `The poller made ${sweeps} sweeps of ${processes} kill(pid, 0) calls. CPU from process.cpuUsage(); wakeups from /proc/self/task/*/status. Idle windows are back to back: baseline, lifewatch, poller.`,
      'RSS is measured after forced GCs (--expose-gc); the kernel side of a pidfd (struct file, epoll item) is not in RSS.',
    )
    return {
      tables: [setup, idle],
      goals,
      notes,
      data: {
        processes,
        watches,
        watched,
        nofileLimit: limit,
        spawnMs,
        watchMs,
        closeMs,
        rssDelta: rss1 - rss0,
        heapDelta: heap1 - heap0,
        fdsDelta: fds1 - fds0,
        pidfdDelta: pidfd1 - pidfd0,
        released,
        idle: { baseline, lifewatch: lifewatchIdle, poller: pollerIdle, pollerSweeps: sweeps, idleDeliveries },
      },
    }
  } finally {
    await sleepers.close()
  }
}
