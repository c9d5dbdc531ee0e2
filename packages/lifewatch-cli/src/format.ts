// How events read: one NDJSON line (the shipped schema, schema/events.schema.json) or one
// human line.
import type { CgroupEvent, CgroupStats, ExecEvent, ForkEvent, LifewatchEvent, LostEvent, OomKillEvent } from 'lifewatch'

import type { Paint } from './color.js'

/** The version of the NDJSON lines (`schema` in every line); bumped on incompatible change. */
export const SCHEMA_VERSION = 1

/** A line's fields: `type` and `time` (CLOCK_MONOTONIC ns) always. */
export type Record = { type: string; time: bigint; [k: string]: unknown }

/** One NDJSON line. `time` stays an exact integer (ns), not a float or a string. */
export function ndjson(rec: Record): string {
  const { time, type, ...rest } = rec
  const body = JSON.stringify({ schema: SCHEMA_VERSION, type, ...rest })
  return `${body.slice(0, -1)},"time":${time}}`
}

/** A library event as a line's fields (its error as code and message). */
export function eventRecord(ev: LifewatchEvent): Record {
  if (ev.type !== 'error') return { ...ev }
  return { ...ev, error: { code: ev.error.code, message: ev.error.message } }
}

export function mib(n: number | undefined): string {
  return n === undefined ? '?' : `${(n / 1048576).toFixed(1)} MiB`
}

/** A library event as a human line (without its time stamp). */
export function humanEvent(ev: LifewatchEvent, p: Paint): string {
  if (ev.type === 'error') return `${p.red('error')} ${ev.error.code}: ${ev.error.message}`
  if (ev.type === 'fork' || ev.type === 'exec' || ev.type === 'oomKill' || ev.type === 'lost') return hostLine(ev, p)
  if (ev.type !== 'exit') return cgroupLine(ev, p)
  const how = ev.signal
    ? p.red(`killed by ${ev.signal}${ev.core ? ' (core dumped)' : ''}`)
    : ev.exitCode !== undefined
      ? (ev.exitCode === 0 ? p.green : p.yellow)(`exited with code ${ev.exitCode}`)
      : p.dim('exited (status unknown to this kernel)')
  return `${p.bold('exit')}  pid ${ev.pid}${who(ev)} ${how} ${p.dim(`via ${ev.source}`)}${ev.remaining === undefined ? '' : p.dim(`, ${ev.remaining} left`)}`
}

/** ` (comm) ppid N cgroup X`: what a host or tree watch knows of a process. */
function who(ev: { comm?: string; ppid?: number; cgroup?: string }): string {
  return `${ev.comm === undefined ? '' : ` (${ev.comm})`}${ev.ppid === undefined ? '' : ` ppid ${ev.ppid}`}${ev.cgroup === undefined ? '' : ` cgroup ${ev.cgroup}`}`
}

function hostLine(ev: ForkEvent | ExecEvent | OomKillEvent | LostEvent, p: Paint): string {
  switch (ev.type) {
    case 'fork':
      return `${p.bold('fork')}  pid ${ev.pid}${who(ev)}`
    case 'exec':
      return `${p.bold('exec')}  pid ${ev.pid}${who(ev)}`
    case 'oomKill':
      return `${p.red(p.bold('oom-kill'))} pid ${ev.pid} (${ev.comm})${ev.cgroup === undefined ? '' : ` cgroup ${ev.cgroup}`} ${p.dim(`anon-rss ${mib(ev.anonRss)}${ev.oomCgroup === undefined ? '' : `, limit of ${ev.oomCgroup}`}`)}`
    case 'lost':
      return `${p.yellow(p.bold('lost'))} ${ev.count ?? 'some'} ${ev.source} messages: events may be missing`
  }
}

function statsText(s: CgroupStats): string {
  const parts = [`mem ${mib(s.memoryCurrent)}`]
  if (s.memoryPeak !== undefined) parts.push(`peak ${mib(s.memoryPeak)}`)
  if (s.memoryMax !== undefined) parts.push(`max ${mib(s.memoryMax)}`)
  if (s.pidsCurrent !== undefined) parts.push(`pids ${s.pidsCurrent}`)
  return parts.join(', ')
}

function cgroupLine(ev: CgroupEvent, p: Paint): string {
  switch (ev.type) {
    case 'oom':
      return `${p.red(p.bold('oom'))}   cgroup ${ev.cgroup} ${p.red(`${ev.kills} killed`)}${ev.victims ? p.red(`: ${ev.victims.map((v) => `${v.comm} ${v.pid}`).join(', ')}`) : ''} ${p.dim(`(oom_kill ${ev.counters.oom_kill ?? 0} total; ${statsText(ev.stats)})`)}`
    case 'pressure':
      return `${p.yellow(p.bold('pressure'))} ${ev.cgroup ? `cgroup ${ev.cgroup}` : 'system'} ${ev.resource} ${ev.level ?? ev.trigger ?? ''}`
    case 'populated':
      return `${p.bold('populated')} cgroup ${ev.cgroup} ${ev.value ? p.green('1 (has processes)') : p.yellow('0 (empty)')}`
    case 'frozen':
      return `${p.bold('frozen')} cgroup ${ev.cgroup} ${ev.value ? '1' : '0'}`
    case 'removed':
      return `${p.bold('removed')} cgroup ${ev.cgroup} ${p.dim(Object.entries(ev.counters).map(([k, v]) => `${k} ${v}`).join(', '))}`
  }
}
