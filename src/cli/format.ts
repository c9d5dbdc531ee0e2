import type { CgroupEvent, CgroupStats, LifewatchEvent } from '../events.js'

const useColor = process.stdout.isTTY && !process.env.NO_COLOR
const paint = (code: number) => (s: string) => (useColor ? `\x1b[${code}m${s}\x1b[0m` : s)
export const dim = paint(2)
export const red = paint(31)
export const green = paint(32)
export const yellow = paint(33)
export const bold = paint(1)

/** One NDJSON line. `time` stays an exact integer (ns), not a float or a string. */
export function jsonLine(ev: LifewatchEvent): string {
  const { time, ...rest } = ev
  const body = ev.type === 'error' ? { ...rest, error: { code: ev.error.code, message: ev.error.message } } : rest
  return JSON.stringify(body).slice(0, -1) + `,"time":${time}}`
}

/** One human line; `since` is the CLOCK_MONOTONIC ns the command started at. */
export function humanLine(ev: LifewatchEvent, since: bigint): string {
  const at = dim(`[+${(Number(ev.time - since) / 1e6).toFixed(1).padStart(8)} ms]`)
  if (ev.type === 'error') return `${at} ${red('error')} ${ev.error.code}: ${ev.error.message}`
  if (ev.type !== 'exit') return `${at} ${cgroupLine(ev)}`
  const how = ev.signal
    ? red(`killed by ${ev.signal}${ev.core ? ' (core dumped)' : ''}`)
    : ev.exitCode !== undefined
      ? (ev.exitCode === 0 ? green : yellow)(`exited with code ${ev.exitCode}`)
      : dim('exited (status unknown to this kernel)')
  return `${at} ${bold('exit')}  pid ${ev.pid} ${how} ${dim(`via ${ev.source}`)}`
}

function mib(n: number | undefined): string {
  return n === undefined ? '?' : `${(n / 1048576).toFixed(1)} MiB`
}

function statsText(s: CgroupStats): string {
  const parts = [`mem ${mib(s.memoryCurrent)}`]
  if (s.memoryPeak !== undefined) parts.push(`peak ${mib(s.memoryPeak)}`)
  if (s.memoryMax !== undefined) parts.push(`max ${mib(s.memoryMax)}`)
  if (s.pidsCurrent !== undefined) parts.push(`pids ${s.pidsCurrent}`)
  return parts.join(', ')
}

function cgroupLine(ev: CgroupEvent): string {
  switch (ev.type) {
    case 'oom':
      return `${red(bold('oom'))}   cgroup ${ev.cgroup} ${red(`${ev.kills} killed`)} ${dim(`(oom_kill ${ev.counters.oom_kill ?? 0} total; ${statsText(ev.stats)})`)}`
    case 'pressure':
      return `${yellow(bold('pressure'))} ${ev.cgroup ? `cgroup ${ev.cgroup}` : 'system'} ${ev.resource} ${ev.level ?? ev.trigger ?? ''}`
    case 'populated':
      return `${bold('populated')} cgroup ${ev.cgroup} ${ev.value ? green('1 (has processes)') : yellow('0 (empty)')}`
    case 'frozen':
      return `${bold('frozen')} cgroup ${ev.cgroup} ${ev.value ? '1' : '0'}`
    case 'removed':
      return `${bold('removed')} cgroup ${ev.cgroup} ${dim(Object.entries(ev.counters).map(([k, v]) => `${k} ${v}`).join(', '))}`
  }
}
