/** Stable error codes. New codes may be added; existing ones never change meaning. */
export type ErrorCode =
  | 'ERR_INVALID_ARGUMENT'
  | 'ERR_INVALID_STATE'
  | 'ERR_NO_SUCH_PROCESS'
  | 'ERR_NO_SUCH_CGROUP'
  | 'ERR_NO_SUCH_COMMAND'
  | 'ERR_PERMISSION'
  | 'ERR_UNSUPPORTED_KERNEL'
  | 'ERR_UNSUPPORTED_PLATFORM'
  | 'ERR_CLOSED'
  | 'ERR_CGROUP_BUSY'
  | 'ERR_CGROUP_EXISTS'
  | 'ERR_TOO_MANY_FILES'
  | 'ERR_TIMEOUT'
  | 'ERR_IO'

export interface ErrorDetails {
  /** The system call the kernel refused. */
  syscall?: string
  /** Its errno, negative as in Node's SystemError (`-3` for ESRCH; `util.getSystemErrorName(errno)` names it). */
  errno?: number
  /** The file or directory involved. */
  path?: string
  cause?: unknown
}

/**
 * Every error lifewatch raises (the native layer creates them as instances of this class), with
 * a stable `code`, and `syscall`, `errno` and `path` when the kernel said no.
 */
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

/** @internal The AbortError for an aborted `signal`, its reason as the cause (as Node's APIs do). */
export function abortError(signal: AbortSignal): AbortError {
  return new AbortError(undefined, { cause: signal.reason })
}

/** @internal */
export function invalid(message: string): LifewatchError {
  return new LifewatchError('ERR_INVALID_ARGUMENT', message)
}
