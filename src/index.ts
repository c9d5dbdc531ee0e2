export { AbortError, LifewatchError, type ErrorCode } from './errors.js'
export {
  Cgroup,
  type ByteLimit,
  type CgroupLimits,
  type CgroupOptions,
  type CgroupSpawnOptions,
  type CgroupUsage,
  type DeleteOptions,
  type KillReport,
  type SpawnedWatch,
  type StdioOption,
  type WaitOptions,
} from './cgroup.js'
export type {
  CgroupEvent,
  CgroupStats,
  Counters,
  ErrorEvent,
  ExitEvent,
  ExitSource,
  FrozenEvent,
  LifewatchEvent,
  OomEvent,
  PopulatedEvent,
  Pressure,
  PressureEvent,
  RemovedEvent,
} from './events.js'
export {
  CgroupWatch,
  cgroupLayout,
  cgroupOf,
  cgroupStats,
  type CgroupLayout,
  type CgroupWatchOptions,
  type CgroupWatchPart,
  type LeftOutPart,
  type Hierarchy,
  type PressureLevel,
  type ProcessCgroups,
  type PsiResource,
  type PsiTrigger,
} from './cgroup-watch.js'
export { Monitor, type KillOptions, type KillResult, type MonitorOptions } from './monitor.js'
export { kill, signal } from './process.js'
export { fdStats, monotonicTime, type FdCounters, type FdKind } from './stats.js'
export type { Signal } from './validate.js'
export { Watch } from './watch.js'
export type { ReleasedFds } from './native.js'
export { Task, type AttachOptions, type CgroupLike, type OomRecord, type SpawnOptions, type TaskKillOptions, type TaskKillResult } from './task.js'
export { Platform, type CgroupFactory, type PlatformCloseResult, type PlatformEvent, type PlatformOptions } from './platform.js'
export { shutdown, ShutdownError, type ShutdownOptions, type ShutdownResult, type ShutdownTask } from './shutdown.js'
export { Subreaper, type OrphanEvent, type SubreaperOptions } from './subreaper.js'
export { ATTR, INSTRUMENTATION_NAME, INSTRUMENTATION_VERSION, OOM_EVENT, SPAN, type TelemetryOptions } from './telemetry.js'
