/** Stable error codes. New codes may be added; existing ones never change meaning. */
export type ErrorCode =
  | 'ERR_INVALID_ARGUMENT'
  | 'ERR_INVALID_STATE'
  | 'ERR_NO_SUCH_PROCESS'
  | 'ERR_NO_SUCH_CGROUP'
  | 'ERR_PERMISSION'
  | 'ERR_UNSUPPORTED_KERNEL'
  | 'ERR_UNSUPPORTED_PLATFORM'
  | 'ERR_CLOSED'
  | 'ERR_CGROUP_BUSY'
  | 'ERR_TOO_MANY_FILES'
  | 'ERR_TIMEOUT'
  | 'ERR_IO'

export interface ErrorDetails {
  syscall?: string
  errno?: number
  path?: string
  cause?: unknown
}

export class LifewatchError extends Error {
  override readonly name = 'LifewatchError'
  readonly code: ErrorCode
  declare readonly syscall?: string
  declare readonly errno?: number
  declare readonly path?: string

  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause })
    this.code = code
    if (details.syscall !== undefined) this.syscall = details.syscall
    if (details.errno !== undefined) this.errno = details.errno
    if (details.path !== undefined) this.path = details.path
  }
}

/** What `AbortSignal`-aware calls reject with, as Node's own APIs do. */
export class AbortError extends Error {
  override readonly name = 'AbortError'
  readonly code = 'ABORT_ERR'

  constructor(message = 'The operation was aborted', options?: { cause?: unknown }) {
    super(message, options)
  }
}

/** The AbortError for an aborted `signal`, its reason as the cause (as Node's APIs do). */
export function abortError(signal: AbortSignal): AbortError {
  return new AbortError(undefined, { cause: signal.reason })
}

export function invalid(message: string): LifewatchError {
  return new LifewatchError('ERR_INVALID_ARGUMENT', message)
}

/** The binding reports core errors as a JSON reason; anything else is a bug surfaced as ERR_IO. */
export function fromNative(e: unknown): LifewatchError {
  if (e instanceof LifewatchError) return e
  const text = e instanceof Error ? e.message : String(e)
  try {
    const r = JSON.parse(text) as { code: ErrorCode; message: string; syscall?: string; errno?: number; path?: string }
    if (typeof r.code === 'string' && typeof r.message === 'string') {
      return new LifewatchError(r.code, r.message, r)
    }
  } catch {
    // Not one of ours: a conversion error from napi (wrong argument type) or similar.
  }
  const code = e instanceof TypeError || /expect|convert|Failed to/i.test(text) ? 'ERR_INVALID_ARGUMENT' : 'ERR_IO'
  return new LifewatchError(code, text, { cause: e })
}

/** Runs a native call, turning its errors into `LifewatchError`. */
export function native<T>(call: () => T): T {
  try {
    return call()
  } catch (e) {
    throw fromNative(e)
  }
}
