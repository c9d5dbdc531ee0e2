// Cgroup resource metrics as OpenTelemetry observable instruments: memory, swap, CPU, pids,
// PSI and OOM counters of the cgroups a caller names (watched, managed, or paths), read from
// cgroupfs when the SDK collects (no timer of lifewatch's own). One attribute,
// `lifewatch.cgroup.path`, bounded by the cgroups given; `cpu.mode` and the PSI attributes
// take a few fixed values.
import type { BatchObservableResult, Meter, Observable } from '@opentelemetry/api'

import { Cgroup, type CgroupUsage } from './cgroup.js'
import { CgroupWatch } from './cgroup-watch.js'
import { invalid } from './errors.js'
import type { Pressure } from './events.js'
import { otelApi } from './otel-api.js'
import { ATTR, INSTRUMENTATION_NAME, INSTRUMENTATION_VERSION, meterProviderOf, type TelemetryOptions } from './telemetry.js'
import { checkOptions, checkString, describe } from './validate.js'

/** Where the cgroups come from, read at each collection: a path, a cgroup watch (while it is
 *  active), anything with `cgroups` (a `Platform`: the cgroups it manages), or a function. */
export type CgroupMetricsSource = string | CgroupWatch | { readonly cgroups: readonly { readonly path: string }[] } | (() => Iterable<string>)

export interface CgroupMetricsOptions extends TelemetryOptions {
  /** A directory laid out like `/sys/fs/cgroup`, for tests. */
  cgroupRoot?: string
}

/** The instrument names (`lifewatch.cgroup.*`: OpenTelemetry has no cgroup conventions). */
export const CGROUP_METRIC = {
  memoryUsage: 'lifewatch.cgroup.memory.usage',
  memoryPeak: 'lifewatch.cgroup.memory.peak',
  memoryLimit: 'lifewatch.cgroup.memory.limit',
  swapUsage: 'lifewatch.cgroup.memory.swap.usage',
  cpuTime: 'lifewatch.cgroup.cpu.time',
  pidsUsage: 'lifewatch.cgroup.pids.usage',
  pidsLimit: 'lifewatch.cgroup.pids.limit',
  pressure: 'lifewatch.cgroup.pressure.avg10',
  pressureTime: 'lifewatch.cgroup.pressure.stall.time',
  oomEvents: 'lifewatch.cgroup.memory.oom',
  oomKills: 'lifewatch.cgroup.memory.oom_kill',
} as const

type Instruments = Record<keyof typeof CGROUP_METRIC, Observable>

// One set of instruments per meter: several observers share them, each with its callback.
const made = new WeakMap<Meter, Instruments>()

function instruments(m: Meter): Instruments {
  let i = made.get(m)
  if (i) return i
  const int = { valueType: otelApi().ValueType.INT }
  const bytes = (name: string, description: string) => m.createObservableUpDownCounter(name, { ...int, unit: 'By', description })
  i = {
    memoryUsage: bytes(CGROUP_METRIC.memoryUsage, 'Memory the cgroup uses now (memory.current, v1 memory.usage_in_bytes)'),
    memoryPeak: bytes(CGROUP_METRIC.memoryPeak, 'The most memory the cgroup used (memory.peak, v1 memory.max_usage_in_bytes)'),
    memoryLimit: bytes(CGROUP_METRIC.memoryLimit, 'The memory limit (memory.max); absent when unlimited'),
    swapUsage: bytes(CGROUP_METRIC.swapUsage, 'Swap the cgroup uses now (memory.swap.current)'),
    cpuTime: m.createObservableCounter(CGROUP_METRIC.cpuTime, { unit: 's', description: 'CPU time of the cgroup, by cpu.mode (user, system)' }),
    pidsUsage: m.createObservableUpDownCounter(CGROUP_METRIC.pidsUsage, { ...int, unit: '{process}', description: 'Tasks in the cgroup (pids.current)' }),
    pidsLimit: m.createObservableUpDownCounter(CGROUP_METRIC.pidsLimit, { ...int, unit: '{process}', description: 'The task limit (pids.max); absent when unlimited' }),
    pressure: m.createObservableGauge(CGROUP_METRIC.pressure, {
      unit: '%',
      description: 'PSI avg10: share of the last 10 s some (or all) tasks stalled, by resource and kind',
    }),
    pressureTime: m.createObservableCounter(CGROUP_METRIC.pressureTime, { unit: 's', description: 'PSI total stall time, by resource and kind' }),
    oomEvents: m.createObservableCounter(CGROUP_METRIC.oomEvents, { ...int, unit: '{event}', description: 'Times the cgroup hit its memory limit and the OOM killer ran (memory.events oom)' }),
    oomKills: m.createObservableCounter(CGROUP_METRIC.oomKills, { ...int, unit: '{kill}', description: 'Processes OOM-killed in the cgroup (memory.events oom_kill)' }),
  }
  made.set(m, i)
  return i
}

/** The paths a source names now. */
function pathsOf(s: CgroupMetricsSource): Iterable<string> {
  if (typeof s === 'string') return [s]
  if (s instanceof CgroupWatch) return s.active && !s.path.startsWith('/proc/') ? [s.path] : []
  if (typeof s === 'function') return s()
  return s.cgroups.map((c) => c.path)
}

function observe(r: BatchObservableResult, i: Instruments, path: string, s: CgroupUsage): void {
  const at = { [ATTR.cgroupPath]: path }
  const put = (o: Observable, v: number | undefined, extra?: Record<string, string>) => {
    if (v !== undefined) r.observe(o, v, extra ? { ...at, ...extra } : at)
  }
  put(i.memoryUsage, s.memoryCurrent)
  put(i.memoryPeak, s.memoryPeak)
  put(i.memoryLimit, s.memoryMax)
  put(i.swapUsage, s.swapCurrent)
  put(i.cpuTime, s.cpuUserUsec === undefined ? undefined : s.cpuUserUsec / 1e6, { 'cpu.mode': 'user' })
  put(i.cpuTime, s.cpuSystemUsec === undefined ? undefined : s.cpuSystemUsec / 1e6, { 'cpu.mode': 'system' })
  put(i.pidsUsage, s.pidsCurrent)
  put(i.pidsLimit, s.pidsMax)
  for (const [resource, p] of Object.entries(s.psi ?? {}) as Array<[string, Pressure | undefined]>) {
    for (const kind of ['some', 'full'] as const) {
      const attrs = { 'lifewatch.pressure.resource': resource, 'lifewatch.pressure.kind': kind }
      put(i.pressure, p?.[kind], attrs)
      const total = kind === 'some' ? p?.someTotal : p?.fullTotal
      put(i.pressureTime, total === undefined ? undefined : total / 1e6, attrs)
    }
  }
  put(i.oomEvents, s.memoryEvents.oom)
  put(i.oomKills, s.memoryEvents.oom_kill)
}

/** The registration of `observeCgroups`: `close()` stops reporting (the instruments stay, unused). */
export class CgroupMetrics {
  #stop: (() => void) | undefined

  /** @internal made by `observeCgroups` */
  constructor(stop: () => void) {
    this.#stop = stop
  }

  /** Whether the cgroups are still read at each collection. */
  get active(): boolean {
    return this.#stop !== undefined
  }

  /** Stops reading the cgroups. Idempotent. */
  close(): void {
    this.#stop?.()
    this.#stop = undefined
  }

  [Symbol.dispose](): void {
    this.close()
  }
}

/**
 * Reports the resources of the cgroups `sources` name as observable instruments, read when
 * the SDK collects: memory usage, peak and limit, swap, CPU time by `cpu.mode`, pids and their
 * limit, PSI avg10 and stall time by resource and kind, and the OOM and OOM-kill counters.
 * A cgroup that cannot be read at a collection (removed meanwhile) is left out of it.
 */
export function observeCgroups(sources: CgroupMetricsSource | readonly CgroupMetricsSource[], options?: CgroupMetricsOptions): CgroupMetrics {
  const o = checkOptions<CgroupMetricsOptions>(options, 'options', { tracerProvider: true, meterProvider: true, cgroupRoot: true })
  const cgroupRoot = checkString(o.cgroupRoot, 'options.cgroupRoot')
  const list = (Array.isArray(sources) ? [...sources] : [sources]) as CgroupMetricsSource[]
  for (const s of list) {
    const ok = typeof s === 'string' || typeof s === 'function' || s instanceof CgroupWatch || (typeof s === 'object' && s !== null && Array.isArray((s as { cgroups?: unknown }).cgroups))
    if (!ok) throw invalid(`a source must be a cgroup path, a CgroupWatch, a Platform or a function, got ${describe(s)}`)
  }
  const meter = meterProviderOf(o.meterProvider, 'options.meterProvider').getMeter(INSTRUMENTATION_NAME, INSTRUMENTATION_VERSION)
  const i = instruments(meter)
  const callback = (r: BatchObservableResult) => {
    const seen = new Set<string>()
    for (const s of list) {
      for (const path of pathsOf(s)) {
        if (seen.has(path)) continue
        seen.add(path)
        let stats: CgroupUsage
        try {
          stats = Cgroup.open(path, cgroupRoot === undefined ? undefined : { cgroupRoot }).stats()
        } catch {
          continue
        }
        observe(r, i, path, stats)
      }
    }
  }
  const all = Object.values(i)
  meter.addBatchObservableCallback(callback, all)
  return new CgroupMetrics(() => meter.removeBatchObservableCallback(callback, all))
}
