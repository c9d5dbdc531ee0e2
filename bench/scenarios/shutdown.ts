// Scenario 5: shutdown beyond the task's own exit. A `term` helper in its own cgroup either
// exits on SIGTERM (graceful: its handler stores CLOCK_MONOTONIC into a shared page right
// before `_exit`) or ignores it (forced: SIGKILL after a 200 ms grace period).
//   lifewatch: Platform.spawn (cgroup + OOM watch) → shutdown(task, { monitor, platform, killTimeout })
//   runc-style: SIGTERM, kill(pid, 0) every 100 ms until ESRCH (forced case: SIGKILL at the
//   first poll once 200 ms have passed), then rmdir the cgroup directories (retried every 100 ms while busy).
// Graceful: time from the task's exit stamp until the call/loop finished. Forced: no stamp is
// possible under SIGKILL, so the raw time from the start and net = raw − the 200 ms grace.
import { spawn } from 'node:child_process'
import { mkdirSync, rmdirSync, writeFileSync } from 'node:fs'

import { Cgroup, Monitor, Platform, shutdown } from '../../src/index.js'
import { helperBin, StampFile } from '../lib/natives.js'
import { ratio, shuffled, summarize, type Summary } from '../lib/stats.js'
import type { Goal, ScenarioConfig, ScenarioOutput, Table } from '../lib/types.js'

const now = () => process.hrtime.bigint()
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const GRACE_MS = 200

interface Sample {
  /** Graceful: task's exit stamp → done; forced: start → done − grace. ms. */
  net: number
  /** Start of the shutdown → done, ms. */
  raw: number
  /** lifewatch: ShutdownResult.durations (ms per phase). */
  phases?: Record<string, number>
}

async function ready(stamps: StampFile, slot: number): Promise<void> {
  for (let i = 0; i < 5000; i++) {
    if (stamps.read(slot) !== 0n) return
    await sleep(1)
  }
  throw new Error('the term helper never became ready')
}

function stampOf(stamps: StampFile, slot: number): bigint {
  const t = stamps.read(slot)
  if (t === 0n) throw new Error(`the task in slot ${slot} wrote no exit stamp`)
  return t
}

async function rmdirRetry(dir: string): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      rmdirSync(dir)
      return
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code
      if (code === 'ENOENT') return
      if (code !== 'EBUSY' || i >= 50) throw e
      await sleep(100)
    }
  }
}

export async function run(cfg: ScenarioConfig): Promise<ScenarioOutput> {
  const rounds = { graceful: cfg.rounds ?? (cfg.quick ? 4 : 30), forced: cfg.quick ? 2 : 10 }
  const warmup = 1
  const stamps = new StampFile((rounds.graceful + rounds.forced + 2 * warmup) * 4 + 8)
  const prefix = `lifewatch-bench-shutdown-${process.pid}`
  // The hierarchies lifewatch's Cgroup uses here; the runc-style peer makes its own
  // directories in the same ones.
  const probe = Cgroup.create(`${prefix}-probe`)
  const mounts = Object.values(probe.dirs).map((d) => d.slice(0, -`/${prefix}-probe`.length))
  await probe.delete({ kill: true })

  let n = 0
  const lifewatch = async (mode: 'exit' | 'ignore'): Promise<Sample> => {
    const monitor = new Monitor()
    const platform = new Platform()
    const slot = stamps.take()
    stamps.take()
    const task = await platform.spawn(helperBin, ['term', stamps.path, String(slot), mode], {
      monitor,
      cgroupPath: `${prefix}-lw-${n++}`,
      stdio: 'ignore',
    })
    await ready(stamps, slot + 1)
    const t0 = now()
    // Graceful: a grace the task never needs (under load a SIGTERM handler can take longer
    // than 200 ms to run; the measurement starts at its exit anyway).
    const r = await shutdown(task, { monitor, platform, killTimeout: mode === 'exit' ? 5000 : GRACE_MS })
    const t1 = now()
    if (r.forced !== (mode === 'ignore')) throw new Error(`shutdown forced=${r.forced} for a task in mode ${mode}`)
    if (r.cgroupsRemoved.length === 0) throw new Error('shutdown removed no cgroup')
    const raw = Number(t1 - t0) / 1e6
    const phases = r.durations as Record<string, number>
    return mode === 'exit' ? { net: Number(t1 - stampOf(stamps, slot)) / 1e6, raw, phases } : { net: raw - GRACE_MS, raw, phases }
  }
  const runc = async (mode: 'exit' | 'ignore'): Promise<Sample> => {
    const slot = stamps.take()
    stamps.take()
    const dirs = mounts.map((m) => `${m}/${prefix}-runc-${n}`)
    n++
    for (const d of dirs) mkdirSync(d)
    const child = spawn(helperBin, ['term', stamps.path, String(slot), mode], { stdio: 'ignore' })
    const pid = child.pid!
    for (const d of dirs) writeFileSync(`${d}/cgroup.procs`, String(pid))
    await ready(stamps, slot + 1)
    const t0 = now()
    process.kill(pid, 'SIGTERM')
    let killed = false
    for (;;) {
      await sleep(100)
      try {
        process.kill(pid, 0)
      } catch {
        break
      }
      if (mode === 'ignore' && !killed && Number(now() - t0) / 1e6 >= GRACE_MS) {
        process.kill(pid, 'SIGKILL')
        killed = true
      }
    }
    for (const d of dirs) await rmdirRetry(d)
    const t1 = now()
    const raw = Number(t1 - t0) / 1e6
    return mode === 'exit' ? { net: Number(t1 - stampOf(stamps, slot)) / 1e6, raw } : { net: raw - GRACE_MS, raw }
  }

  type Key = 'lifewatch graceful' | 'runc-style graceful' | 'lifewatch forced' | 'runc-style forced'
  const peers: { key: Key; mode: 'exit' | 'ignore'; sample: () => Promise<Sample> }[] = [
    { key: 'lifewatch graceful', mode: 'exit', sample: () => lifewatch('exit') },
    { key: 'runc-style graceful', mode: 'exit', sample: () => runc('exit') },
    { key: 'lifewatch forced', mode: 'ignore', sample: () => lifewatch('ignore') },
    { key: 'runc-style forced', mode: 'ignore', sample: () => runc('ignore') },
  ]
  const samples = new Map<Key, Sample[]>(peers.map((p) => [p.key, []]))
  const t0 = performance.now()
  for (let r = 0; r < warmup + rounds.graceful; r++) {
    for (const p of shuffled(peers)) {
      const limit = p.mode === 'exit' ? rounds.graceful : rounds.forced
      if (r >= warmup + limit) continue
      const s = await p.sample()
      if (r >= warmup) samples.get(p.key)!.push(s)
    }
    if ((r + 1) % 10 === 0) process.stderr.write(`  shutdown: round ${r + 1}/${warmup + rounds.graceful}\n`)
  }
  stamps.close()
  const seconds = (performance.now() - t0) / 1000

  const sum = (k: Key, f: 'net' | 'raw'): Summary => summarize(samples.get(k)!.map((s) => s[f]))
  const fmt = (x: number) => (Number.isFinite(x) ? x : null)
  const row = (k: Key, f: 'net' | 'raw', what: string, peer: Key) => {
    const s = sum(k, f)
    const o = sum(peer, f)
    return [k, what, s.n, s.p50, s.p99, s.max, fmt(ratio(s.p50, o.p50)), fmt(ratio(s.p99, o.p99))]
  }
  const table: Table = {
    title: `Shutdown beyond the task’s own exit (ms; lower is better). Forced: SIGKILL after a ${GRACE_MS} ms grace, net = raw − ${GRACE_MS} ms. Ratios: lifewatch ÷ runc-style`,
    columns: ['peer', 'figure', 'n', 'p50 ms', 'p99 ms', 'max ms', 'p50 ×runc-style', 'p99 ×runc-style'],
    rows: [
      row('lifewatch graceful', 'net', 'task exit → done', 'runc-style graceful'),
      row('runc-style graceful', 'net', 'task exit → done', 'runc-style graceful'),
      row('lifewatch graceful', 'raw', 'start → done', 'runc-style graceful'),
      row('runc-style graceful', 'raw', 'start → done', 'runc-style graceful'),
      row('lifewatch forced', 'net', `start → done − ${GRACE_MS} ms`, 'runc-style forced'),
      row('runc-style forced', 'net', `start → done − ${GRACE_MS} ms`, 'runc-style forced'),
      row('lifewatch forced', 'raw', 'start → done', 'runc-style forced'),
      row('runc-style forced', 'raw', 'start → done', 'runc-style forced'),
    ],
  }
  const phaseNames = ['task.kill', 'task.delete', 'monitor.close', 'platform.cleanup.oom_watcher', 'platform.cleanup.cgroup_manager', 'shutdown'] as const
  const phaseTable: Table = {
    title: 'Where lifewatch’s shutdown spends it: ShutdownResult.durations per phase, p50 / max ms',
    columns: ['phase', 'graceful p50', 'graceful max', 'forced p50', 'forced max'],
    rows: phaseNames.map((ph) => {
      const g = summarize(samples.get('lifewatch graceful')!.map((s) => s.phases?.[ph] ?? NaN).filter(Number.isFinite))
      const f = summarize(samples.get('lifewatch forced')!.map((s) => s.phases?.[ph] ?? NaN).filter(Number.isFinite))
      return [ph, fmt(g.p50), fmt(g.max), fmt(f.p50), fmt(f.max)]
    }),
  }
  const g = (k: 'graceful' | 'forced'): Goal => {
    const a = sum(`lifewatch ${k}`, 'net')
    const b = sum(`runc-style ${k}`, 'net')
    return {
      goal: `shutdown ${k}: lifewatch beyond the exit ≤ 0.2 × runc-style kill-then-poll (p50)`,
      measured: `${a.p50.toFixed(2)} vs ${b.p50.toFixed(2)} ms (${ratio(a.p50, b.p50).toFixed(2)}×)`,
      met: ratio(a.p50, b.p50) <= 0.2,
    }
  }
  const graceful = sum('lifewatch graceful', 'net')
  const beyond = (q: 'p50' | 'p99', ms: number): Goal => ({
    goal: `shutdown graceful: lifewatch ≤ ${ms} ms beyond the task's exit (${q})`,
    measured: `${graceful[q].toFixed(2)} ms`,
    met: graceful[q] <= ms,
  })
  return {
    tables: [table, phaseTable],
    goals: [beyond('p50', 5), beyond('p99', 10), g('graceful'), g('forced')],
    notes: [
      `${rounds.graceful} graceful and ${rounds.forced} forced shutdowns per peer after ${warmup} warm-up, peers in a shuffled order each round; ${seconds.toFixed(1)} s.`,
      'lifewatch: new Monitor and Platform per task; Platform.spawn creates the cgroup (hierarchies: ' +
        mounts.join(', ') +
        `), watches it for OOM and spawns into it; shutdown(task, { monitor, platform, killTimeout }) (${GRACE_MS} ms forced, 5000 ms graceful: never reached) kills, deletes the cgroup, closes the monitor and the platform (OOM watcher, cgroup manager).`,
      'runc-style: a child of Node placed into its own directories in the same hierarchies; SIGTERM, kill(pid, 0) every 100 ms until ESRCH (Node reaps it on SIGCHLD), SIGKILL at the first poll past 200 ms in the forced case only, then rmdir of each directory.',
      'Graceful net: from the stamp the task’s SIGTERM handler stores right before _exit. Forced net: the 200 ms grace subtracted from the raw time (a SIGKILLed task writes no stamp).',
    ],
    data: { rounds, warmup, seconds, graceMs: GRACE_MS, summaries: Object.fromEntries(peers.flatMap((p) => (['net', 'raw'] as const).map((f) => [`${p.key} ${f}`, sum(p.key, f)]))) },
  }
}
