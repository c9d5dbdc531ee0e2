import { abortError, invalid } from './errors.js'

/** Linux's PID_MAX_LIMIT: no PID is larger. */
export const PID_MAX = 4_194_304

export function checkPid(pid: unknown, what = 'pid'): number {
  if (typeof pid !== 'number' || !Number.isInteger(pid) || pid < 1 || pid > PID_MAX) {
    throw invalid(`${what} must be an integer from 1 to ${PID_MAX}, got ${describe(pid)}`)
  }
  return pid
}

/** A duration in milliseconds: 0..Infinity (what 0 and Infinity mean is the option's to say). */
export function checkDuration(ms: unknown, what: string): number {
  if (typeof ms !== 'number' || Number.isNaN(ms) || ms < 0) {
    throw invalid(`${what} must be a number of milliseconds from 0 to Infinity, got ${describe(ms)}`)
  }
  return ms
}

/** Every option name of `T`, so that a list of known names cannot miss one. */
export type OptionNames<T> = { readonly [K in keyof Required<T>]: true }

/**
 * An options object (or `undefined`) whose names are all known and whose values are not null:
 * a misspelt option on a kill or shutdown call must not be silently ignored.
 */
export function checkOptions<T extends object>(opts: unknown, what: string, known: OptionNames<T>): Partial<T> {
  if (opts === undefined) return {}
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) {
    throw invalid(`${what} must be an object, got ${describe(opts)}`)
  }
  for (const [name, value] of Object.entries(opts)) {
    if (!Object.hasOwn(known, name)) {
      throw invalid(`${what}.${name} is not an option (known: ${Object.keys(known).join(', ')})`)
    }
    // No option takes null: one that silently took its default (a kill timeout of 5 s for
    // `timeout: null`) would hide the caller's mistake, as a misspelt name would.
    if (value === null) throw invalid(`${what}.${name} is null: leave it out (or undefined) for its default`)
  }
  return opts as Partial<T>
}

/** An optional AbortSignal; one that has already aborted throws its AbortError at once. */
export function checkAbortSignal(signal: unknown, what = 'signal'): AbortSignal | undefined {
  if (signal === undefined) return undefined
  if (!(signal instanceof AbortSignal)) throw invalid(`${what} must be an AbortSignal, got ${describe(signal)}`)
  if (signal.aborted) throw abortError(signal)
  return signal
}

export function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)
  if (typeof v === 'bigint') return `${v}n`
  if (v === null || typeof v !== 'object') return String(v)
  return Array.isArray(v) ? 'an array' : 'an object'
}

/** An optional boolean option: `undefined` or the boolean, else ERR_INVALID_ARGUMENT. */
export function checkBool(v: unknown, what: string): boolean | undefined {
  if (v === undefined || typeof v === 'boolean') return v
  throw invalid(`${what} must be a boolean, got ${describe(v)}`)
}

/** An optional string option (`cgroupRoot`...): a wrong type is ERR_INVALID_ARGUMENT. */
export function checkString(v: unknown, what: string): string | undefined {
  if (v !== undefined && typeof v !== 'string') throw invalid(`${what} must be a string, got ${describe(v)}`)
  return v
}

/** A cgroup path: a non-empty string (what it may contain, the core checks). */
export function checkCgroupPath(path: unknown, what = 'cgroup path'): string {
  if (typeof path !== 'string' || path.length === 0) throw invalid(`${what} must be a non-empty string, got ${describe(path)}`)
  return path
}
