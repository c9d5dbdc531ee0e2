import { LifewatchError, type ErrorCode } from './errors.js'
import type { NativeEvent } from './native.js'

interface BaseEvent {
  /** The id of the watch that produced the event (`Watch.id`). */
  watch: number
  /** CLOCK_MONOTONIC ns when the kernel reported it: compare with `process.hrtime.bigint()`. */
  time: bigint
}

export type ExitSource = 'pidfd' | 'waitid' | 'fallback'

export interface ExitEvent extends BaseEvent {
  type: 'exit'
  pid: number
  /** Set when the process called exit(); absent when killed or when the kernel could not tell. */
  exitCode?: number
  /** Set when a signal ended the process, e.g. `'SIGKILL'`. */
  signal?: string
  /** With `signal`: whether a core dump was written. */
  core?: boolean
  /** `pidfd` (status from PIDFD_INFO_EXIT or /proc), `waitid` (a child's status), `fallback` (no pidfd: polling). */
  source: ExitSource
}

/** A watch that failed after it was registered; the monitor goes on unless it says otherwise. */
export interface ErrorEvent extends BaseEvent {
  type: 'error'
  error: LifewatchError
}

export type LifewatchEvent = ExitEvent | ErrorEvent

export function toEvent(n: NativeEvent): LifewatchEvent {
  if (n.type === 'exit') {
    const e: ExitEvent = { type: 'exit', watch: n.watch, time: n.time, pid: n.pid!, source: n.source as ExitSource }
    if (n.exitCode != null) e.exitCode = n.exitCode
    if (n.signal != null) {
      e.signal = n.signal
      e.core = n.core ?? false
    }
    return e
  }
  return {
    type: 'error',
    watch: n.watch,
    time: n.time,
    error: new LifewatchError((n.code ?? 'ERR_IO') as ErrorCode, n.message ?? 'unknown error'),
  }
}
