import type { LifewatchEvent } from '../events.js'

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
  const how = ev.signal
    ? red(`killed by ${ev.signal}${ev.core ? ' (core dumped)' : ''}`)
    : ev.exitCode !== undefined
      ? (ev.exitCode === 0 ? green : yellow)(`exited with code ${ev.exitCode}`)
      : dim('exited (status unknown to this kernel)')
  return `${at} ${bold('exit')}  pid ${ev.pid} ${how} ${dim(`via ${ev.source}`)}`
}
