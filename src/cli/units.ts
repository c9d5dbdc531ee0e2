// Command-line values with units: sizes (64M), durations (5s), CPU shares, counts.
import { UsageError } from './args.js'

/** `64M`, `512k`, `1G`, `1048576`: kept as text for the cgroup manager (which parses it), checked here. */
export function sizeArg(flag: string, text: string): string {
  if (!/^\d+(\.\d+)?[KMGTkmgt]?$/.test(text) && text !== 'max') throw new UsageError(`${flag}: not a size such as 64M or 1G: ${JSON.stringify(text)}`)
  return text
}

/** `5s`, `500ms`, `2m`, or a number of seconds; to milliseconds. */
export function durationArg(flag: string, text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text)
  if (!m) throw new UsageError(`${flag}: not a duration such as 5s or 500ms: ${JSON.stringify(text)}`)
  const n = Number(m[1])
  return m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : n * 1000
}

export function countArg(flag: string, text: string): number {
  const n = /^\d+$/.test(text) ? Number(text) : NaN
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`${flag}: not a positive integer: ${JSON.stringify(text)}`)
  return n
}

/** `0.5` (CPUs) or `"50000 100000"` (cpu.max quota and period, µs). */
export function cpuArg(flag: string, text: string): string | number {
  if (/^\d+(\.\d+)?$/.test(text) && Number(text) > 0) return Number(text)
  if (/^(\d+|max) \d+$/.test(text)) return text
  throw new UsageError(`${flag}: not a CPU limit such as 0.5 or "50000 100000": ${JSON.stringify(text)}`)
}
