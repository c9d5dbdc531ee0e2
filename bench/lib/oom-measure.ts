// Scenario 2's measurement, one code path for both cgroup layouts: a hog in a fresh 32 MiB
// memory cgroup (swap 0) until the OOM killer ends it, every peer observing the same kill.
// v1 reads `memory.oom_control` in the v1 memory directory; v2 reads `memory.events` in the
// unified one (on the host when it has a v2 memory controller, else in the VM guest).
import { existsSync, readFileSync } from 'node:fs'

import { Cgroup, cgroupLayout, Monitor } from '../../src/index.js'
import { helperBin, OomFloor, StampFile } from './natives.js'

export type OomLayout = 'v1' | 'v2'
export const OOM_PEERS = ['floor', 'oom', 'exit', 'poll100', 'poll1s'] as const
export type OomPeer = (typeof OOM_PEERS)[number]

/** Latencies in µs from the hog's last heartbeat, per peer and per detail figure. */
export interface OomSamples {
  layout: OomLayout
  runs: number
  warmup: number
  seconds: number
  /** One of the cgroups' memory directories, for the notes. */
  memDir: string
  lat: Record<OomPeer, number[]>
  /** When the floor saw oom_kill grown. */
  floorCounted: number[]
  /** lifewatch's `event.time` of the oom event (reactor readiness). */
  reactor: number[]
  /** Hog start → last heartbeat, ms. */
  fillMs: number[]
}

/** The file holding the `oom_kill` counter. */
export const counterFile = (layout: OomLayout) => (layout === 'v1' ? 'memory.oom_control' : 'memory.events')

/** Why this host cannot run `layout`'s OOM path, or undefined if it can. */
export function layoutMissing(layout: OomLayout): string | undefined {
  const l = cgroupLayout()
  if (layout === 'v1') return l.v1['memory'] ? undefined : 'no v1 memory hierarchy'
  const ctl = l.unified && `${l.unified.mount}/cgroup.controllers`
  if (ctl && existsSync(ctl) && readFileSync(ctl, 'utf8').split(/\s+/).includes('memory')) return undefined
  return `no memory controller in the unified hierarchy (${l.mode} layout)`
}

const now = () => process.hrtime.bigint()

function oomKills(file: string): number {
  const m = /^oom_kill (\d+)$/m.exec(readFileSync(file, 'utf8'))
  if (!m) throw new Error(`no oom_kill counter in ${file}`)
  return Number(m[1])
}

/** Polls the oom_kill counter every `ms` (first poll at a random phase); resolves on growth. */
function poller(file: string, ms: number, base: number): { seen: Promise<bigint>; stop: () => void } {
  let timer: NodeJS.Timeout | undefined
  let phase: NodeJS.Timeout | undefined
  const seen = new Promise<bigint>((resolve) => {
    const check = () => {
      try {
        if (oomKills(file) > base) {
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

/** The cgroup's memory directory in `layout`'s hierarchy, checked to hold the counter file. */
function memoryDir(cg: Cgroup, layout: OomLayout): string {
  const dir = cg.dirs[layout === 'v1' ? 'memory' : 'unified']
  if (!dir || !existsSync(`${dir}/${counterFile(layout)}`)) {
    throw new Error(`cgroup ${cg.path} has no ${layout} ${counterFile(layout)} (dirs: ${JSON.stringify(cg.dirs)})`)
  }
  return dir
}

/** `runs` OOM kills after `warmup`, each observed by every peer; `timeoutMs` bounds one run. */
export async function measureOom(layout: OomLayout, runs: number, warmup: number, timeoutMs: number): Promise<OomSamples> {
  const stamps = new StampFile(runs + warmup + 8)
  const monitor = new Monitor()
  const floor = new OomFloor()
  const s: OomSamples = {
    layout,
    runs,
    warmup,
    seconds: 0,
    memDir: '',
    lat: Object.fromEntries(OOM_PEERS.map((p) => [p, []])) as unknown as Record<OomPeer, number[]>,
    floorCounted: [],
    reactor: [],
    fillMs: [],
  }
  const base = `lifewatch-bench-oom-${process.pid}`
  const t0 = performance.now()
  try {
    for (let r = 0; r < warmup + runs; r++) {
      const cg = Cgroup.create(`${base}-${r}`, { memory: '32M', swap: 0 })
      try {
        const dir = memoryDir(cg, layout)
        const file = `${dir}/${counterFile(layout)}`
        s.memDir = dir
        const slot = stamps.take()
        const kills0 = oomKills(file)
        // The kernel wakes the registered observers one after another, and on 2 CPUs the
        // first woken takes the idle one while the OOM task holds the other: the two
        // notified peers take turns at registering first.
        const lifewatchFirst = r % 2 === 1
        const early = lifewatchFirst ? monitor.watchCgroup(cg.path, { oom: true }) : undefined
        const fl = await floor.watch(dir)
        const w = early ?? monitor.watchCgroup(cg.path, { oom: true })
        const oomEv = w.waitFor((ev) => ev.type === 'oom').then((ev) => ({ at: now(), ev }))
        const p100 = poller(file, 100, kills0)
        const p1s = poller(file, 1000, kills0)
        const tStart = now()
        const hog = cg.spawn(helperBin, ['hog', stamps.path, String(slot)], { monitor, stdio: 'ignore' })
        const exitEv = hog.wait().then((ev) => ({ at: now(), ev }))
        try {
          const [o, e, f, a, b] = await within(Promise.all([oomEv, exitEv, fl.oom, p100.seen, p1s.seen]), timeoutMs, `oom run ${r}`)
          if (e.ev.signal !== 'SIGKILL') throw new Error(`the hog ended with ${JSON.stringify(e.ev)}, not an OOM SIGKILL`)
          const beat = stamps.read(slot)
          if (beat === 0n) throw new Error('the hog wrote no heartbeat')
          if (r < warmup) continue
          const us = (t: bigint) => Number(t - beat) / 1000
          s.lat.oom.push(us(o.at))
          s.lat.exit.push(us(e.at))
          s.lat.floor.push(us(f.wake))
          s.floorCounted.push(us(f.seen))
          s.lat.poll100.push(us(a))
          s.lat.poll1s.push(us(b))
          s.reactor.push(us(o.ev.time))
          s.fillMs.push(Number(beat - tStart) / 1e6)
        } finally {
          p100.stop()
          p1s.stop()
          monitor.unwatch(w)
        }
      } finally {
        await cg.delete({ kill: true })
      }
      process.stderr.write(`  oom-latency ${layout}: run ${r + 1}/${warmup + runs}\n`)
    }
  } finally {
    monitor.close()
    await floor.close()
    stamps.close()
  }
  s.seconds = (performance.now() - t0) / 1000
  return s
}
