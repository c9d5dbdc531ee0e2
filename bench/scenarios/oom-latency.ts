// Scenario 2: OOM → JavaScript latency (cgroup v1 memory controller, the host's OOM path).
// A hog allocates and touches memory in a 32 MiB memory cgroup (swap 0) until the OOM killer
// ends it, storing CLOCK_MONOTONIC ns into a shared page after every touched page (far more
// often than every 1 ms). Every peer observes the same kill; latency = the observer's
// CLOCK_MONOTONIC on arrival − the hog's last heartbeat.
import { readFileSync } from 'node:fs'

import { Cgroup, Monitor } from '../../src/index.js'
import { helperBin, OomFloor, StampFile } from '../lib/natives.js'
import { ratio, summarize, type Summary } from '../lib/stats.js'
import type { Goal, ScenarioConfig, ScenarioOutput, Table } from '../lib/types.js'

const now = () => process.hrtime.bigint()

const PEERS = {
  floor: 'native floor (eventfd)',
  oom: "lifewatch 'oom' event",
  exit: "lifewatch 'exit' of the hog",
  poll100: 'poll memory.oom_control 100 ms',
  poll1s: 'poll memory.oom_control 1 s (oomd)',
} as const
type PeerName = (typeof PEERS)[keyof typeof PEERS]

function oomKills(dir: string): number {
  const m = /^oom_kill (\d+)$/m.exec(readFileSync(`${dir}/memory.oom_control`, 'utf8'))
  if (!m) throw new Error(`no oom_kill counter in ${dir}/memory.oom_control (kernel before 4.13?)`)
  return Number(m[1])
}

/** Polls the oom_kill counter every `ms` (first poll at a random phase); resolves on growth. */
function poller(dir: string, ms: number, base: number): { seen: Promise<bigint>; stop: () => void } {
  let timer: NodeJS.Timeout | undefined
  let phase: NodeJS.Timeout | undefined
  const seen = new Promise<bigint>((resolve) => {
    const check = () => {
      try {
        if (oomKills(dir) > base) {
          const t = now()
          clearInterval(timer)
          resolve(t)
        }
      } catch {
        /* removed meanwhile: stop() follows */
      }
    }
    phase = setTimeout(() => {
      timer = setInterval(check, ms)
      check()
    }, Math.random() * ms)
  })
  return { seen, stop: () => (clearTimeout(phase), clearInterval(timer)) }
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined
  return Promise.race([p, new Promise<never>((_, rej) => (t = setTimeout(() => rej(new Error(`${what}: nothing within ${ms} ms`)), ms)))]).finally(() => clearTimeout(t))
}

export async function run(cfg: ScenarioConfig): Promise<ScenarioOutput> {
  const runs = cfg.rounds ?? (cfg.quick ? 3 : 20)
  const warmup = 1
  const stamps = new StampFile(runs + warmup + 8)
  const monitor = new Monitor()
  const floor = new OomFloor()
  const lat = new Map<PeerName, number[]>(Object.values(PEERS).map((n) => [n, []]))
  const floorCounted: number[] = []
  const reactor: number[] = []
  const fill: number[] = []
  let memDir = ''
  const base = `lifewatch-bench-oom-${process.pid}`
  const t0 = performance.now()
  try {
    for (let r = 0; r < warmup + runs; r++) {
      const cg = Cgroup.create(`${base}-${r}`, { memory: '32M', swap: 0 })
      try {
        const dir = cg.dirs['memory']
        if (!dir) throw new Error(`cgroup ${cg.path} has no v1 memory directory (dirs: ${JSON.stringify(cg.dirs)})`)
        memDir = dir
        const slot = stamps.take()
        const kills0 = oomKills(dir)
        const fl = await floor.watch(dir)
        const w = monitor.watchCgroup(cg.path, { oom: true })
        const oomEv = w.waitFor((ev) => ev.type === 'oom').then((ev) => ({ at: now(), ev }))
        const p100 = poller(dir, 100, kills0)
        const p1s = poller(dir, 1000, kills0)
        const tStart = now()
        const hog = cg.spawn(helperBin, ['hog', stamps.path, String(slot)], { monitor, stdio: 'ignore' })
        const exitEv = hog.wait().then((ev) => ({ at: now(), ev }))
        try {
          const [o, e, f, a, b] = await within(Promise.all([oomEv, exitEv, fl.oom, p100.seen, p1s.seen]), 10_000, `oom run ${r}`)
          if (e.ev.signal !== 'SIGKILL') throw new Error(`the hog ended with ${JSON.stringify(e.ev)}, not an OOM SIGKILL`)
          const beat = stamps.read(slot)
          if (beat === 0n) throw new Error('the hog wrote no heartbeat')
          if (r < warmup) continue
          const us = (t: bigint) => Number(t - beat) / 1000
          lat.get(PEERS.oom)!.push(us(o.at))
          lat.get(PEERS.exit)!.push(us(e.at))
          lat.get(PEERS.floor)!.push(us(f.wake))
          floorCounted.push(us(f.seen))
          lat.get(PEERS.poll100)!.push(us(a))
          lat.get(PEERS.poll1s)!.push(us(b))
          reactor.push(us(o.ev.time))
          fill.push(Number(beat - tStart) / 1e6)
        } finally {
          p100.stop()
          p1s.stop()
          monitor.unwatch(w)
        }
      } finally {
        await cg.delete({ kill: true })
      }
      process.stderr.write(`  oom-latency: run ${r + 1}/${warmup + runs}\n`)
    }
  } finally {
    monitor.close()
    await floor.close()
    stamps.close()
  }
  const seconds = (performance.now() - t0) / 1000

  const names = Object.values(PEERS)
  const S = new Map<PeerName, Summary>(names.map((n) => [n, summarize(lat.get(n)!)]))
  const s = (n: PeerName) => S.get(n)!
  const fmt = (x: number) => (Number.isFinite(x) ? x : null)
  const table: Table = {
    title: 'OOM → JS latency, cgroup v1 (µs from the hog’s last heartbeat; lower is better). Ratios to the floor and to the lifewatch oom event',
    columns: ['peer', 'n', 'p50 µs', 'p99 µs', 'max µs', 'p50 ×floor', 'p99 ×floor', 'p50 ×lifewatch', 'p99 ×lifewatch'],
    rows: names.map((n) => [
      n,
      s(n).n,
      s(n).p50,
      s(n).p99,
      s(n).max,
      fmt(ratio(s(n).p50, s(PEERS.floor).p50)),
      fmt(ratio(s(n).p99, s(PEERS.floor).p99)),
      fmt(ratio(s(n).p50, s(PEERS.oom).p50)),
      fmt(ratio(s(n).p99, s(PEERS.oom).p99)),
    ]),
  }
  const fc = summarize(floorCounted)
  const re = summarize(reactor)
  const extra: Table = {
    title: 'OOM details (µs from the last heartbeat unless stated)',
    columns: ['figure', 'p50', 'p99', 'max'],
    rows: [
      ['floor: oom_kill counter seen grown', fc.p50, fc.p99, fc.max],
      ['lifewatch oom: reactor readiness (event.time)', re.p50, re.p99, re.max],
      ['hog: start → last heartbeat (ms)', summarize(fill).p50, summarize(fill).p99, summarize(fill).max],
    ],
  }
  const v2: Table = {
    title: 'OOM → JS latency, cgroup v2 (memory.events)',
    columns: ['peer', 'status'],
    rows: [['every peer', 'pending: the v2 OOM path needs the VM (this host has no v2 memory controller) and a Node runtime in the guest to run the bench there']],
  }
  const goals: Goal[] = [
    {
      goal: 'OOM: lifewatch oom event p50 vs the native eventfd floor',
      measured: `${s(PEERS.oom).p50.toFixed(0)} vs ${s(PEERS.floor).p50.toFixed(0)} µs at the floor's eventfd wake (${ratio(s(PEERS.oom).p50, s(PEERS.floor).p50).toFixed(2)}×), ${fc.p50.toFixed(0)} µs when the floor saw oom_kill grown (${ratio(s(PEERS.oom).p50, fc.p50).toFixed(2)}×)`,
      met: null,
    },
    {
      goal: 'OOM: lifewatch oom event p50 better than the 100 ms and 1 s pollers',
      measured: `${s(PEERS.poll100).p50.toFixed(0)} / ${s(PEERS.oom).p50.toFixed(0)} µs = ${ratio(s(PEERS.poll100).p50, s(PEERS.oom).p50).toFixed(0)}×; 1 s: ${ratio(s(PEERS.poll1s).p50, s(PEERS.oom).p50).toFixed(0)}×`,
      met: s(PEERS.oom).p50 < s(PEERS.poll100).p50 && s(PEERS.oom).p50 < s(PEERS.poll1s).p50,
    },
    { goal: 'OOM on cgroup v2 (VM)', measured: 'pending: needs a Node runtime in the VM guest', met: null },
  ]
  return {
    tables: [table, extra, v2],
    goals,
    notes: [
      `${runs} OOM kills after ${warmup} warm-up, every peer observing the same kill; ${seconds.toFixed(1)} s. Cgroup ${base}-<n>, v1 memory dir like ${memDir}: memory.limit_in_bytes 32M, memsw equal (swap 0).`,
      'Heartbeat: the hog stores CLOCK_MONOTONIC after every 4 KiB page it touches; the last one precedes the page fault that ran into the limit, so every row includes the kernel’s reclaim attempts before the kill.',
      `${PEERS.floor}: lifewatch-floor, eventfd on memory.oom_control via cgroup.event_control, one thread in epoll_wait; its time is the wake (v1 notifies at OOM, before the kill is counted), the "counter seen grown" row is when oom_kill had grown.`,
      `${PEERS.oom}: monitor.watchCgroup(path, { oom: true }) → waitFor(oom). ${PEERS.exit}: the Watch of Cgroup.spawn (SIGKILL exit).`,
      'Pollers: setInterval reading memory.oom_control in this Node process, first poll at a random phase, until oom_kill grows.',
      'cgroup v2 (memory.events): pending, it needs the VM and a Node runtime in its guest; nothing is measured for it here.',
    ],
    distributions: Object.fromEntries(names.map((n) => [n, lat.get(n)!])),
    data: { runs, warmup, seconds, summaries: Object.fromEntries(names.map((n) => [n, s(n)])), floorCounted: fc, reactor: re, fillMs: summarize(fill), v2: 'pending' },
  }
}
