import type { LifewatchError } from './errors.js'
import type { NativeEvent } from './native.js'
import type { SignalName } from './signals.js'

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
  signal?: SignalName
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

/** Memory counters by name: memory.events (v2) or memory.oom_control + failcnt (v1). */
export type Counters = Record<string, number>

/** A cgroup's resources when the event was read (absent values: not available). */
export interface CgroupStats {
  /** Bytes in use: v2 memory.current, v1 memory.usage_in_bytes. */
  memoryCurrent?: number
  /** Peak bytes: v2 memory.peak, v1 memory.max_usage_in_bytes. */
  memoryPeak?: number
  /** Limit in bytes; absent when unlimited. */
  memoryMax?: number
  memoryEvents: Counters
  /** Swap bytes in use: v2 memory.swap.current, v1 memsw usage less memory usage. */
  swapCurrent?: number
  pidsCurrent?: number
  /** pids.peak (Linux 6.1+). */
  pidsPeak?: number
  /** CPU time in µs: cpu.stat user_usec/system_usec, v1 cpuacct.usage_user/usage_sys. */
  cpuUserUsec?: number
  cpuSystemUsec?: number
  /** PSI averages over 10 s, in percent, from `<resource>.pressure` on the unified hierarchy. */
  psi?: { cpu?: Pressure; memory?: Pressure; io?: Pressure }
}

/** A resource's PSI avg10 figures (percent); `full` is absent where the kernel has none. */
export interface Pressure {
  some?: number
  full?: number
}

/** The cgroup's OOM killer ran (v1 memory.oom_control, v2 memory.events). Delivered before
 *  the exit events of the processes it killed, when those are watched by the same monitor. */
export interface OomEvent extends BaseEvent {
  type: 'oom'
  /** The cgroup, as a path inside its hierarchy (`/lifewatch/job1`). */
  cgroup: string
  /** Processes killed since the previous event (the oom_kill delta; baselined when watched). */
  kills: number
  /** Change of every counter since the previous event (oom, oom_kill, oom_group_kill, max, high...). */
  deltas: Counters
  /** Counter totals. */
  counters: Counters
  stats: CgroupStats
}

/** Memory pressure: a v1 `memory.pressure_level` notification (`level`) or a PSI trigger (`trigger`). */
export interface PressureEvent extends BaseEvent {
  type: 'pressure'
  /** Absent for system-wide PSI (/proc/pressure). */
  cgroup?: string
  resource: 'memory' | 'cpu' | 'io'
  /** v1: `low`, `medium` or `critical`. */
  level?: 'low' | 'medium' | 'critical'
  /** PSI: the trigger that fired, e.g. `some 150000 1000000`. */
  trigger?: string
}

/** `cgroup.events` populated changed; `value: false` means no process is left in the subtree. */
export interface PopulatedEvent extends BaseEvent {
  type: 'populated'
  cgroup: string
  value: boolean
}

export interface FrozenEvent extends BaseEvent {
  type: 'frozen'
  cgroup: string
  value: boolean
}

/** Every directory of a cgroup watch is gone; the watch has ended. */
export interface RemovedEvent extends BaseEvent {
  type: 'removed'
  cgroup: string
  /** The last counters read. */
  counters: Counters
  stats: CgroupStats
}

export type CgroupEvent = OomEvent | PressureEvent | PopulatedEvent | FrozenEvent | RemovedEvent

export type LifewatchEvent = ExitEvent | ErrorEvent | CgroupEvent

/** An addon event as its type says it is: its `error` is created as a LifewatchError, its
 *  `signal` named by the core's display names (which `signalNumber` reads back). */
type Delivered<E> = E extends { type: 'error' }
  ? Omit<E, 'error'> & { error: LifewatchError }
  : E extends { type: 'exit' }
    ? NativeExit<E>
    : E

/** @internal An addon exit status with its signal name typed as such. */
export type NativeExit<E extends object> = Omit<E, 'signal'> & { signal?: SignalName }

/**
 * @internal The addon delivers these very objects (one variant per type, only the fields that
 * event has): nothing is copied or narrowed, and the compiler checks here that its types are
 * these.
 */
export function delivered(batch: NativeEvent[]): LifewatchEvent[] {
  return batch as Array<Delivered<NativeEvent>>
}
