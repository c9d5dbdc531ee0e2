// OpenTelemetry for lifewatch: one tracer and one meter named `lifewatch` with the package
// version, and its instruments (dotted lowercase names, UCUM units, no `_total`: exporters add
// the suffixes their backends want). Only `@opentelemetry/api` is used here (a peer
// dependency): with no SDK registered every call is the API's no-op, and the fd callbacks are
// never even run. The library never registers a global SDK.
import { readFileSync } from 'node:fs'

import type {
  Counter,
  Histogram,
  Meter,
  MeterProvider,
  Tracer,
  TracerProvider,
  UpDownCounter,
} from '@opentelemetry/api'

import { invalid } from './errors.js'
import { otelApi } from './otel-api.js'
import { fdStats, type FdKind } from './stats.js'
import { describe } from './validate.js'

export const INSTRUMENTATION_NAME = 'lifewatch'
export const INSTRUMENTATION_VERSION: string = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version

export interface TelemetryOptions {
  /** Where spans go. Default: the global provider (`trace.getTracerProvider()`), a no-op until an SDK registers one. */
  tracerProvider?: TracerProvider
  /** Where metrics go. Default: the global provider (`metrics.getMeterProvider()`). */
  meterProvider?: MeterProvider
}

/** Attribute names (OpenTelemetry semantic conventions where one exists, `lifewatch.*` otherwise). */
export const ATTR = {
  pid: 'process.pid',
  exitCode: 'process.exit.code',
  executableName: 'process.executable.name',
  containerId: 'container.id',
  cgroupPath: 'lifewatch.cgroup.path',
  killSignal: 'lifewatch.kill.signal',
  killForced: 'lifewatch.kill.forced',
  killSkipped: 'lifewatch.kill.skipped',
  exitSignal: 'lifewatch.exit.signal',
  exitKind: 'lifewatch.exit.kind',
  fdReleased: 'lifewatch.fd.released',
  fdKind: 'lifewatch.fd.kind',
  oomKills: 'lifewatch.oom.kills',
  phase: 'lifewatch.shutdown.phase',
  outcome: 'outcome',
} as const

/** Span names: one per step of the shutdown sequence (Kill, Delete, monitor close, platform cleanup). */
export const SPAN = {
  shutdown: 'shutdown',
  kill: 'shutdown.task.kill',
  delete: 'shutdown.task.delete',
  monitorClose: 'shutdown.monitor.close',
  platformCleanup: 'shutdown.platform.cleanup',
  oomWatcher: 'shutdown.platform.cleanup.oom_watcher',
  cgroupManager: 'shutdown.platform.cleanup.cgroup_manager',
} as const

/** The span event for each OOM kill a task saw during its life. */
export const OOM_EVENT = 'lifewatch.oom_kill'

/** @internal */
export type Outcome = 'success' | 'failure' | 'timeout' | 'aborted'

/** @internal lifewatch's instruments on one pair of providers (`telemetry(options)`). */
export class Telemetry {
  readonly tracer: Tracer
  readonly meter: Meter
  readonly oomWatchers: UpDownCounter
  readonly oomKills: Counter
  readonly processExits: Counter
  readonly shutdownCleanups: Counter
  readonly shutdownDuration: Histogram

  constructor(tracerProvider: TracerProvider, meterProvider: MeterProvider) {
    this.tracer = tracerProvider.getTracer(INSTRUMENTATION_NAME, INSTRUMENTATION_VERSION)
    const m = (this.meter = meterProvider.getMeter(INSTRUMENTATION_NAME, INSTRUMENTATION_VERSION))
    const int = { valueType: otelApi().ValueType.INT }
    this.oomWatchers = m.createUpDownCounter('lifewatch.oom.watchers', {
      ...int,
      unit: '{watcher}',
      description: 'OOM watchers (cgroup watches with OOM notification) currently open',
    })
    this.oomKills = m.createCounter('lifewatch.oom.kills', {
      ...int,
      unit: '{kill}',
      description: 'Processes the kernel OOM-killed in watched cgroups',
    })
    this.processExits = m.createCounter('lifewatch.process.exits', {
      ...int,
      unit: '{exit}',
      description: 'Exits of tasks lifewatch spawned or attached to',
    })
    this.shutdownCleanups = m.createCounter('lifewatch.shutdown.cleanups', {
      ...int,
      unit: '{cleanup}',
      description: 'Shutdown steps run, by phase and outcome (success, failure, timeout, aborted)',
    })
    this.shutdownDuration = m.createHistogram('lifewatch.shutdown.duration', {
      unit: 's',
      description: 'Duration of each shutdown phase',
      // Phases take milliseconds: the SDK's default boundaries (0, 5, 10, 25... seconds) would
      // put every sample in the first bucket.
      advice: { explicitBucketBoundaries: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60] },
    })
    registerFdMetrics(meterProvider)
  }

  /** Records one shutdown phase's outcome and duration (seconds). */
  recordPhase(phase: string, outcome: Outcome, seconds: number): void {
    this.shutdownCleanups.add(1, { [ATTR.phase]: phase, [ATTR.outcome]: outcome })
    this.shutdownDuration.record(seconds, { [ATTR.phase]: phase })
  }
}

// One Telemetry per (tracer provider, meter provider) pair, so its instruments are created
// once per meter. Resolved at each use, not at import: an agent may register its SDK after
// importing lifewatch, and the metrics API (unlike tracing) has no proxy for that.
const cache = new WeakMap<TracerProvider, WeakMap<MeterProvider, Telemetry>>()

/** @internal */
export function telemetry(options: TelemetryOptions = {}): Telemetry {
  const tp = options.tracerProvider ?? otelApi().trace.getTracerProvider()
  const mp = options.meterProvider ?? otelApi().metrics.getMeterProvider()
  let byMeter = cache.get(tp)
  if (!byMeter) cache.set(tp, (byMeter = new WeakMap()))
  let t = byMeter.get(mp)
  if (!t) byMeter.set(mp, (t = new Telemetry(tp, mp)))
  return t
}

// The meter providers the fd instruments are registered on: once each, however many tasks,
// platforms and shutdowns report there, so a collection reads the core's counters once.
const fdMetered = new WeakSet<MeterProvider>()

/** @internal `meterProvider` checked, or the global one. */
export function meterProviderOf(meterProvider: unknown, what = 'meterProvider'): MeterProvider {
  if (meterProvider === undefined) return otelApi().metrics.getMeterProvider()
  if (typeof (meterProvider as Partial<MeterProvider> | null)?.getMeter !== 'function') {
    throw invalid(`${what} must be an OpenTelemetry MeterProvider, got ${describe(meterProvider)}`)
  }
  return meterProvider as MeterProvider
}

/**
 * Registers lifewatch's fd instruments (`lifewatch.fd.allocated`, `released`, `in_use`,
 * `leak_prevented`, by `lifewatch.fd.kind`) on `meterProvider` (default: the global one), for
 * a program that uses only monitors and cgroups: `Task`, `Platform` and `shutdown` register
 * them on the provider they report to. Once per provider; later calls do nothing.
 */
export function registerFdMetrics(meterProvider?: MeterProvider): void {
  const mp = meterProviderOf(meterProvider)
  if (fdMetered.has(mp)) return
  fdMetered.add(mp)
  const m = mp.getMeter(INSTRUMENTATION_NAME, INSTRUMENTATION_VERSION)
  const int = { valueType: otelApi().ValueType.INT }
  const fd = (name: string, description: string, upDown: boolean) =>
    upDown
      ? m.createObservableUpDownCounter(name, { ...int, unit: '{fd}', description })
      : m.createObservableCounter(name, { ...int, unit: '{fd}', description })
  const allocated = fd('lifewatch.fd.allocated', 'File descriptors lifewatch opened, by kind', false)
  const released = fd('lifewatch.fd.released', 'File descriptors lifewatch closed, by kind', false)
  const inUse = fd('lifewatch.fd.in_use', 'File descriptors lifewatch holds open now, by kind', true)
  const leakPrevented = fd(
    'lifewatch.fd.leak_prevented',
    'File descriptors closed by a path that exists only to stop a leak (error paths, finalizers), by kind',
    false,
  )
  // One read of the core's counters per collection, shared by the four instruments.
  m.addBatchObservableCallback(
    (r) => {
      for (const [kind, c] of Object.entries(fdStats()) as Array<[FdKind, ReturnType<typeof fdStats>[FdKind]]>) {
        const attrs = { [ATTR.fdKind]: kind }
        r.observe(allocated, c.allocated, attrs)
        r.observe(released, c.released, attrs)
        r.observe(inUse, c.inUse, attrs)
        r.observe(leakPrevented, c.leakPrevented, attrs)
      }
    },
    [allocated, released, inUse, leakPrevented],
  )
}
