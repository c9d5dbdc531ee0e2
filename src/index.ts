export { AbortError, LifewatchError, type ErrorCode } from './errors.js'
export {
  Cgroup,
  type ByteLimit,
  type CgroupLimits,
  type CgroupCreateOptions,
  type CgroupOptions,
  type CgroupSpawnOptions,
  type CgroupUsage,
  type DeleteOptions,
  type KillReport,
  type CgroupWaitOptions,
} from './cgroup.js'
export type {
  CgroupEvent,
  CgroupStats,
  Counters,
  ErrorEvent,
  ExecEvent,
  ExitEvent,
  ExitSource,
  ForkEvent,
  FrozenEvent,
  HostEvent,
  LifewatchEvent,
  LostEvent,
  OomEvent,
  OomKillEvent,
  OomKillWatchEvent,
  OomVictim,
  PopulatedEvent,
  Pressure,
  PressureEvent,
  RemovedEvent,
} from './events.js'
export { HostWatch, OomKillWatch, TreeWatch, type HostWatchOptions, type OomKillWatchOptions, type TreeWatchOptions } from './host-watch.js'
export { StreamWatch } from './stream-watch.js'
export { CGROUP_METRIC, CgroupMetrics, observeCgroups, type CgroupMetricsOptions, type CgroupMetricsSource } from './cgroup-metrics.js'
export { CgroupWatch, type CgroupWatchOptions, type CgroupWatchPart, type LeftOutPart, type PressureLevel, type PsiResource, type PsiTrigger } from './cgroup-watch.js'
export { cgroupLayout, cgroupOf, cgroupStats, type CgroupLayout, type Hierarchy, type ProcessCgroups } from './cgroup-info.js'
export {
  Monitor,
  type KillOptions,
  type KillResult,
  type MonitorOptions,
  type MonitorSpawnOptions,
  type SpawnedWatch,
  type SpawnTarget,
  type StdioOption,
} from './monitor.js'
export { kill, signal } from './process.js'
export { fdStats, monotonicTime, type FdCounters, type FdKind, type ReleasedFds } from './stats.js'
export { signalName, signalNumber, type RealtimeSignal, type Signal, type SignalName } from './signals.js'
export { Watch, type WaitOptions } from './watch.js'
export { Task, type AttachOptions, type CgroupLike, type OomRecord, type SpawnOptions, type TaskKillOptions, type TaskKillResult } from './task.js'
export { Platform, type CgroupFactory, type PlatformCloseResult, type PlatformEvent, type PlatformOptions } from './platform.js'
export {
  shutdown,
  ShutdownError,
  type CgroupManagerCloseResult,
  type FdCounts,
  type ShutdownOom,
  type ShutdownOptions,
  type ShutdownResult,
  type ShutdownTask,
} from './shutdown.js'
export { Subreaper, type OrphanEvent, type SubreaperOptions } from './subreaper.js'
export { ATTR, INSTRUMENTATION_NAME, INSTRUMENTATION_VERSION, OOM_EVENT, registerFdMetrics, SPAN, type TelemetryOptions } from './telemetry.js'
