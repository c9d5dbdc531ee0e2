import type { LifewatchError } from './errors.js'
import type { NativeEvent } from './native.js'
import { SIGNAL_NAMES, type SignalName } from './signals.js'

interface BaseEvent {
  /** The id of the watch that produced the event (`Watch.id`). */
  watch: number
  /** CLOCK_MONOTONIC ns when the kernel reported it: compare with `process.hrtime.bigint()`. */
  time: bigint
}

export type ExitSource = 'pidfd' | 'waitid' | 'fallback' | 'connector'

export interface ExitEvent extends BaseEvent {
  type: 'exit'
  pid: number
  /** Set when the process called exit(); absent when killed or when the kernel could not tell. */
  exitCode?: number
  /** Set when a signal ended the process, e.g. `'SIGKILL'`. */
  signal?: SignalName
  /** With `signal`: whether a core dump was written. */
  core?: boolean
  /** `pidfd` (status from PIDFD_INFO_EXIT or /proc), `waitid` (a child's status), `fallback` (no pidfd: polling),
   *  `connector` (a host or tree watch: the kernel's process events connector). */
  source: ExitSource
  /** Host and tree watches: the parent's PID (when the kernel or lifewatch's table knew it). */
  ppid?: number
  /** Host and tree watches: the process's name (`/proc/<pid>/comm`), when it could be learnt. */
  comm?: string
  /** Host and tree watches: its cgroup (the memory controller's hierarchy where it is a v1 one, else the unified one). */
  cgroup?: string
  /** Tree watches: members still alive after this exit; 0 on the tree's last exit, which ends the watch. */
  remaining?: number
}

/** A process was created (a host or tree watch with `forks`); new threads are not reported. */
export interface ForkEvent extends BaseEvent {
  type: 'fork'
  pid: number
  ppid: number
  /** Its name, which a child shares with its parent until it execs. */
  comm?: string
  cgroup?: string
}

/** A process called execve (a host or tree watch with `execs`). */
export interface ExecEvent extends BaseEvent {
  type: 'exec'
  pid: number
  ppid?: number
  /** Its new name; absent when the process was gone before it could be read. */
  comm?: string
  cgroup?: string
}

/** The kernel's OOM killer killed a process (`monitor.watchOomKills()`), as its log said it. */
export interface OomKillEvent extends BaseEvent {
  type: 'oomKill'
  pid: number
  /** Its name as the kernel printed it. */
  comm: string
  uid?: number
  /** The victim's memory cgroup (`task_memcg`). */
  cgroup?: string
  /** The cgroup whose limit was hit (`oom_memcg`); absent for a system-wide OOM. */
  oomCgroup?: string
  /** What the OOM was confined to: a memory cgroup, nothing (system-wide), a cpuset, a memory policy. */
  constraint?: 'memcg' | 'none' | 'cpuset' | 'memory_policy'
  /** Bytes of the victim's memory when it was killed. */
  totalVm?: number
  anonRss?: number
  fileRss?: number
  shmemRss?: number
  oomScoreAdj?: number
}

/** Messages were lost before lifewatch could read them: events may be missing from this watch. */
export interface LostEvent extends BaseEvent {
  type: 'lost'
  /** `connector` (the socket's buffer overran, or a gap in the kernel's sequence numbers) or `kmsg` (log records overwritten). */
  source: 'connector' | 'kmsg'
  /** How many messages (records), when the kernel's sequence numbers tell. */
  count?: number
}

/** A victim an `oom` event names: a kill the monitor's OOM-kill watch read from the kernel's log. */
export interface OomVictim {
  pid: number
  comm: string
  cgroup?: string
}

/** A watch that failed after it was registered; the monitor goes on unless it says otherwise. */
export interface ErrorEvent extends BaseEvent {
  type: 'error'
  error: LifewatchError
}

/** Memory counters by name: memory.events (v2) or memory.oom_control + failcnt (v1). */
export type Counters = Record<string, number>

/** A cgroup's resources when the event was read (absent values: not available); a v1 `oom`
 *  event's, at the OOM's notification (docs/cgroups.md). */
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

/** A resource's PSI avg10 figures (percent) and total stall times (µs); `full` is absent where the kernel has none. */
export interface Pressure {
  some?: number
  full?: number
  someTotal?: number
  fullTotal?: number
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
  /** With an OOM-kill watch on the same monitor: the kills counted here whose log record was
   *  read by then (at most `kills`). */
  victims?: OomVictim[]
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

/** What a host or tree watch delivers (its errors end it: see `StreamWatch`). */
export type HostEvent = ExitEvent | ForkEvent | ExecEvent | LostEvent

/** What an OOM-kill watch delivers. */
export type OomKillWatchEvent = OomKillEvent | LostEvent

export type LifewatchEvent = ExitEvent | ErrorEvent | CgroupEvent | ForkEvent | ExecEvent | OomKillEvent | LostEvent

const CGROUP_TYPES: ReadonlySet<string> = new Set<CgroupEvent['type']>(['oom', 'pressure', 'populated', 'frozen', 'removed'])

/** @internal Whether an event is a cgroup watch's. */
export function isCgroupEvent(ev: LifewatchEvent): ev is CgroupEvent {
  return CGROUP_TYPES.has(ev.type)
}

/** An addon event as its type says it is: its `error` is created as a LifewatchError, its
 *  `signal` named by the core's display names (which `signalNumber` reads back). */
type Delivered<E> = E extends { type: 'error' }
  ? Omit<E, 'error'> & { error: LifewatchError }
  : E extends { type: 'exit' }
    ? NativeExit<E>
    : E

/** @internal An addon exit status with its signal name typed as such. */
export type NativeExit<E extends object> = Omit<E, 'signal'> & { signal?: SignalName }

/** Numbers per event in a batch's records, and their kinds (the addon's `batch.rs`). */
const RECORD = 6
const OTHER = 0
const EXIT_UNKNOWN = 1
const EXIT_CODE = 2
const EXIT_CORE = 4
const SOURCES: readonly ExitSource[] = ['pidfd', 'waitid', 'fallback', 'connector']

/**
 * @internal A batch as the addon delivers it: a record per event, in order. A record of a
 * plain exit becomes its object here; any other event is the addon's own object, the next of
 * `others` (one variant per type, only the fields that event has: nothing is copied or
 * narrowed, and the compiler checks here that its types are these).
 */
export function delivered(records: Float64Array, others: NativeEvent[]): LifewatchEvent[] {
  const times = new BigUint64Array(records.buffer, records.byteOffset, records.length)
  const events = new Array<LifewatchEvent>(records.length / RECORD)
  for (let i = 0, k = 0, o = 0; i < records.length; i += RECORD, k++) {
    const kind = records[i + 1]!
    events[k] =
      kind === OTHER
        ? (others[o++] as Delivered<NativeEvent>)
        : exitEvent(records[i + 2]!, times[i]!, records[i + 3]!, kind, records[i + 4]!, records[i + 5]!)
  }
  return events
}

/** @internal A plain exit's object, from its record's numbers (a batch of one plain exit
 *  comes as these numbers alone). */
export function exitEvent(watch: number, time: bigint, pid: number, kind: number, value: number, source: number): ExitEvent {
  const from = SOURCES[source]!
  // The keys in the order the addon's own exit objects have them.
  return kind === EXIT_UNKNOWN
    ? { type: 'exit', watch, time, pid, source: from }
    : kind === EXIT_CODE
      ? { type: 'exit', watch, time, pid, source: from, exitCode: value }
      : { type: 'exit', watch, time, pid, source: from, signal: SIGNAL_NAMES[value] ?? `SIG${value}`, core: kind === EXIT_CORE }
}
