// Command-line values: durations, sizes, counts, CPU limits, PIDs, signals. Each parser names
// its flag in the one-line error a bad value gets (exit 125).
import { constants } from 'node:os'

import { UsageError } from './usage.js'

const bad = (flag: string, what: string, text: string) => new UsageError(`${flag}: ${what}: ${JSON.stringify(text)}`)

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/**
 * `90`, `1.5s`, `500ms`, `2m`, `1h`, `7d`, `0` or `infinity`, to milliseconds (a bare number is
 * seconds, as for `timeout(1)`). `infinity` and values too large to be represented are
 * `Infinity`; what 0 means is up to each flag.
 */
export function duration(flag: string, text: string): number {
  if (/^(inf|infinity)$/i.test(text)) return Infinity
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text)
  if (!m) throw bad(flag, 'not a duration such as 30s, 500ms, 2m, 0 or infinity', text)
  return Number(m[1]) * UNIT_MS[m[2] ?? 's']!
}

/** `64M`, `512k`, `1.5G`, `1048576` or `max`; kept as text for the cgroup manager, which parses it. */
export function size(flag: string, text: string, allowZero: boolean): string {
  if (text === 'max') return text
  const m = /^(\d+(?:\.\d+)?)([KMGTkmgt])?$/.exec(text)
  if (!m) throw bad(flag, 'not a size such as 64M, 1G or max', text)
  if (!allowZero && Number(m[1]) === 0) throw bad(flag, 'must be more than 0', text)
  return text
}

/** A whole number from 1 up (a process count), or `max`. */
export function count(flag: string, text: string): number | 'max' {
  if (text === 'max') return text
  const n = /^\d+$/.test(text) ? Number(text) : NaN
  if (!Number.isSafeInteger(n) || n < 1) throw bad(flag, 'not a whole number from 1 up, or max', text)
  return n
}

/** `0.5` (CPUs) or `"50000 100000"` (cpu.max quota and period, µs). */
export function cpu(flag: string, text: string): string | number {
  if (/^\d+(\.\d+)?$/.test(text) && Number(text) > 0 && Number.isFinite(Number(text))) return Number(text)
  if (/^(\d+|max) \d+$/.test(text)) return text
  throw bad(flag, 'not a CPU limit such as 0.5 or "50000 100000"', text)
}

/** Linux's PID_MAX_LIMIT: no PID is larger. */
const PID_MAX = 4_194_304

export function pid(flag: string, text: string): number {
  const n = /^\d+$/.test(text) ? Number(text) : NaN
  if (!Number.isSafeInteger(n) || n < 1 || n > PID_MAX) throw bad(flag, 'not a valid PID', text)
  return n
}

/** A file descriptor number. */
export function fd(flag: string, text: string): number {
  const n = /^\d+$/.test(text) ? Number(text) : NaN
  if (!Number.isSafeInteger(n) || n > 2 ** 31 - 1) throw bad(flag, 'not a file descriptor number', text)
  return n
}

/** The standard signals by name (`SIGTERM`), from Node's table for this platform. */
export const SIGNALS = Object.keys(constants.signals) as NodeJS.Signals[]

/** `TERM`, `SIGTERM`, `sigterm` or `15` to a signal name Node and lifewatch know. */
export function signal(flag: string, text: string): NodeJS.Signals {
  const name = /^\d+$/.test(text)
    ? SIGNALS.find((s) => constants.signals[s] === Number(text))
    : SIGNALS.find((s) => s === text.toUpperCase() || s === `SIG${text.toUpperCase()}`)
  if (!name) throw bad(flag, 'not a signal such as TERM, SIGINT or 9', text)
  return name
}

/** The number of a signal an exit event names (`SIGKILL`, `SIGRTMIN+6`), for 128 + n. */
export function signalNumber(name: string): number | undefined {
  const known = constants.signals[name as NodeJS.Signals]
  if (known !== undefined) return known
  // Real-time signals are named from SIGRTMIN, which glibc puts at 34 (two are its own).
  const rt = /^SIGRTMIN\+(\d+)$/.exec(name)
  return rt ? 34 + Number(rt[1]) : undefined
}
