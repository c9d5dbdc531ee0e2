// Scenario 2's tables, goals, notes and chart samples for one layout's measurement, so the
// v1 (host) and v2 (host or VM guest) halves are reported by the same code.
import { counterFile, OOM_PEERS, type OomLayout, type OomPeer, type OomSamples } from './oom-measure.js'
import { ratio, summarize, type Summary } from './stats.js'
import type { Goal, ScenarioOutput, Table } from './types.js'

/** Where a layout's figures were measured. */
export type OomPlace = 'host' | 'vm'

type Part = Required<Omit<ScenarioOutput, 'data'>> & { data: unknown }

function labels(layout: OomLayout): Record<OomPeer, string> {
  const f = counterFile(layout)
  return {
    floor: `native floor (${layout === 'v1' ? 'eventfd' : 'inotify'})`,
    oom: "lifewatch 'oom' event",
    exit: "lifewatch 'exit' of the hog",
    poll100: `poll ${f} 100 ms`,
    poll1s: `poll ${f} 1 s (oomd)`,
  }
}

/** `accel`: the VM's accelerator as run.sh reported it (`tcg` = software emulation). */
function where(layout: OomLayout, place: OomPlace, accel?: string): string {
  if (place === 'host') return `cgroup ${layout}`
  return `cgroup ${layout} in the VM guest${accel === 'tcg' ? ' (TCG-emulated)' : accel ? ` (${accel})` : ''}`
}
/** Goal names: the v1 ones predate v2 and keep their names. */
const goalPrefix = (layout: OomLayout, place: OomPlace) => (layout === 'v1' ? 'OOM' : `OOM on cgroup v2${place === 'vm' ? ' (VM)' : ''}`)

export function oomReport(s: OomSamples, place: OomPlace, accel?: string): Part {
  const L = labels(s.layout)
  const S = Object.fromEntries(OOM_PEERS.map((p) => [p, summarize(s.lat[p])])) as Record<OomPeer, Summary>
  const fmt = (x: number) => (Number.isFinite(x) ? x : null)
  const table: Table = {
    title: `OOM → JS latency, ${where(s.layout, place, accel)} (µs from the hog’s last heartbeat; lower is better). Ratios to the floor and to the lifewatch oom event`,
    columns: ['peer', 'n', 'p50 µs', 'p99 µs', 'max µs', 'p50 ×floor', 'p99 ×floor', 'p50 ×lifewatch', 'p99 ×lifewatch'],
    rows: OOM_PEERS.map((p) => [
      L[p],
      S[p].n,
      S[p].p50,
      S[p].p99,
      S[p].max,
      fmt(ratio(S[p].p50, S.floor.p50)),
      fmt(ratio(S[p].p99, S.floor.p99)),
      fmt(ratio(S[p].p50, S.oom.p50)),
      fmt(ratio(S[p].p99, S.oom.p99)),
    ]),
  }
  const fc = summarize(s.floorCounted)
  const re = summarize(s.reactor)
  const fill = summarize(s.fillMs)
  const details: Table = {
    title: `OOM details, ${where(s.layout, place, accel)} (µs from the last heartbeat unless stated)`,
    columns: ['figure', 'p50', 'p99', 'max'],
    rows: [
      ['floor: oom_kill counter seen grown', fc.p50, fc.p99, fc.max],
      ['lifewatch oom: reactor readiness (event.time)', re.p50, re.p99, re.max],
      ['hog: start → last heartbeat (ms)', fill.p50, fill.p99, fill.max],
    ],
  }
  const times = (a: number, b: number) => `${ratio(a, b).toFixed(ratio(a, b) < 10 ? 2 : 0)}×`
  const gp = goalPrefix(s.layout, place)
  const tcg = accel === 'tcg' ? ' (TCG guest: compare the ratios, not the µs)' : ''
  const floorGoal =
    s.layout === 'v1'
      ? `${S.oom.p50.toFixed(0)} vs ${S.floor.p50.toFixed(0)} µs at the floor's eventfd wake (${ratio(S.oom.p50, S.floor.p50).toFixed(2)}×), ${fc.p50.toFixed(0)} µs when the floor saw oom_kill grown (${ratio(S.oom.p50, fc.p50).toFixed(2)}×)`
      : `${S.oom.p50.toFixed(0)} vs ${S.floor.p50.toFixed(0)} µs (${ratio(S.oom.p50, S.floor.p50).toFixed(2)}×); p99 ${S.oom.p99.toFixed(0)} vs ${S.floor.p99.toFixed(0)} µs (${ratio(S.oom.p99, S.floor.p99).toFixed(2)}×)${tcg}`
  const goals: Goal[] = [
    {
      // Like for like: lifewatch reports a counted kill, so it is held to the moment the floor
      // saw the kernel's oom_kill counter grown (v1 notifies before it counts the kill).
      goal: `${gp}: lifewatch oom event p50 ≤ 1.5 × when the native ${s.layout === 'v1' ? 'eventfd' : 'inotify'} floor saw oom_kill grown`,
      measured: floorGoal,
      met: ratio(S.oom.p50, s.layout === 'v1' ? fc.p50 : S.floor.p50) <= 1.5,
    },
    {
      goal: `${gp}: lifewatch oom event p50 better than the 100 ms and 1 s pollers`,
      measured: `${S.poll100.p50.toFixed(0)} / ${S.oom.p50.toFixed(0)} µs = ${times(S.poll100.p50, S.oom.p50)}; 1 s: ${times(S.poll1s.p50, S.oom.p50)}${tcg}`,
      met: S.oom.p50 < S.poll100.p50 && S.oom.p50 < S.poll1s.p50,
    },
  ]
  const file = counterFile(s.layout)
  const notes = [
    `${where(s.layout, place, accel)}: ${s.runs} OOM kills after ${s.warmup} warm-up, every peer observing the same kill; ${s.seconds.toFixed(1)} s. Memory dir like ${s.memDir}: limit 32M, swap 0.`,
    s.layout === 'v1'
      ? `${L.floor}: lifewatch-floor, eventfd on memory.oom_control via cgroup.event_control, one thread in epoll_wait; its time is the wake (v1 notifies at OOM, before the kill is counted), the "counter seen grown" row is when oom_kill had grown.`
      : `${L.floor}: lifewatch-floor, inotify IN_MODIFY on memory.events, one thread in epoll_wait; its time is the wake after which oom_kill read grown (earlier wakes for max/oom are skipped). The kernel notifies a cgroup file at most once per 10 ms and defers later changes to a timer, which bounds every v2 peer alike.`,
    `Pollers: setInterval reading ${file} in the bench's Node process, first poll at a random phase, until oom_kill grows.`,
  ]
  if (accel === 'tcg') {
    notes.push('The VM guest runs under TCG (software emulation, no working KVM here): every guest time is inflated several-fold and noisier than on the host; the ratios between peers measured in the same guest run are the meaningful comparison.')
  }
  const tag = place === 'vm' ? `${s.layout} VM: ` : s.layout === 'v2' ? 'v2: ' : ''
  return {
    tables: [table, details],
    goals,
    notes,
    distributions: Object.fromEntries(OOM_PEERS.map((p) => [`${tag}${L[p]}`, s.lat[p]])),
    data: { place, runs: s.runs, warmup: s.warmup, seconds: s.seconds, summaries: Object.fromEntries(OOM_PEERS.map((p) => [L[p], S[p]])), floorCounted: fc, reactor: re, fillMs: fill },
  }
}

/** A layout that was not measured, with the reason: said in a table and a goal, never faked. */
export function oomSkipped(layout: OomLayout, place: OomPlace, reason: string): Part {
  return {
    tables: [{ title: `OOM → JS latency, ${where(layout, place)} (${counterFile(layout)})`, columns: ['peer', 'status'], rows: [['every peer', `skipped: ${reason}`]] }],
    goals: [{ goal: goalPrefix(layout, place), measured: `skipped: ${reason}`, met: null }],
    notes: [],
    distributions: {},
    data: { place, skipped: reason },
  }
}
