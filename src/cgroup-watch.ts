// Cgroup watching on a Monitor: `monitor.watchCgroup(path, options)` and system-wide PSI
// through `monitor.watchPressure(trigger)`; `cgroupOf(pid)` and `cgroupLayout()`.
import { abortError, LifewatchError, fromNative, invalid, native } from './errors.js'
import { cgroupStats as toCgroupStats, type CgroupEvent, type CgroupStats, type LifewatchEvent, type RemovedEvent } from './events.js'
import { internals, Monitor } from './monitor.js'
import { binding } from './native.js'
import { callEach } from './listeners.js'
import { checkAbortSignal, checkBool, checkOptions, checkPid, describe } from './validate.js'
import type { WaitOptions } from './watch.js'

export type PsiResource = 'memory' | 'cpu' | 'io'

/** A PSI trigger: fire when tasks stalled `stallUs` within any `windowUs` window.
 *  The kernel's rules: window 500 ms..10 s, 0 < stall <= window; without CAP_SYS_RESOURCE
 *  the window must be a multiple of 2 s (else `ERR_PERMISSION`). */
export interface PsiTrigger {
  /** Default `'memory'`. */
  resource?: PsiResource
  /** `'some'` (default): at least one task stalled; `'full'`: all non-idle tasks stalled. */
  kind?: 'some' | 'full'
  stallUs: number
  windowUs: number
}

export type PressureLevel = 'low' | 'medium' | 'critical'

export interface CgroupWatchOptions {
  /** OOM kills (v1 memory.oom_control eventfd or v2 memory.events). Default: where available;
   *  `true` makes it an error (`ERR_UNSUPPORTED_KERNEL`) when this system has neither. */
  oom?: boolean
  /** `populated` / `frozen` from cgroup.events (unified hierarchy). Default: where available. */
  events?: boolean
  /** v1 memory.pressure_level notifications: `'low'`, `'medium,local'`, `'critical,hierarchy'`... */
  pressure?: PressureLevel | `${PressureLevel},${'hierarchy' | 'local'}`
  /** PSI triggers on the cgroup's *.pressure files (unified hierarchy). */
  psi?: PsiTrigger[]
  /** v2: count this cgroup only (memory.events.local). */
  local?: boolean
}

/** A kind of notification serving a cgroup watch (the options of the same names). */
export type CgroupWatchPart = 'oom' | 'events' | 'pressure' | 'psi'

/** A part left to its default that this caller may not use (an unprivileged user cannot
 *  write a v1 `cgroup.event_control`): the watch runs without it. */
export interface LeftOutPart {
  part: CgroupWatchPart
  /** Why: `ERR_PERMISSION`, with the syscall and path that were refused. */
  error: LifewatchError
}

/**
 * One watched cgroup. Its events arrive through the monitor's iterator; `onEvent` and
 * `waitFor` see them too. Ends with a `removed` event once its directories are gone.
 */
export class CgroupWatch {
  readonly id: number
  /** The path as given to `watchCgroup`. */
  readonly path: string
  /** The parts serving this watch: which kinds of event it can deliver. */
  readonly parts: readonly CgroupWatchPart[]
  /** Parts left to their default that were left out for lack of permission (else empty). */
  readonly leftOut: readonly LeftOutPart[]
  #removed: RemovedEvent | undefined
  #failed: LifewatchError | undefined
  #listeners = new Set<(ev: CgroupEvent) => void>()

  /** @internal */
  constructor(id: number, path: string, parts: readonly CgroupWatchPart[], leftOut: readonly LeftOutPart[] = []) {
    this.id = id
    this.path = path
    this.parts = Object.freeze([...parts])
    this.leftOut = Object.freeze([...leftOut])
  }

  get active(): boolean {
    return this.#removed === undefined && this.#failed === undefined
  }

  /** Calls `fn` for each event of this watch; returns the function that stops it. A
   *  listener that throws does not stop the others (its error is rethrown on a later tick). */
  onEvent(fn: (ev: CgroupEvent) => void): () => void {
    this.#listeners.add(fn)
    return () => this.#listeners.delete(fn)
  }

  /**
   * The first event (from now on) that `match` accepts. Rejects with `ERR_CLOSED` when the
   * watch ends first (unless the ending `removed` event matches), with `AbortError` when
   * `signal` aborts, and with what `match` throws.
   */
  async waitFor(match: (ev: CgroupEvent) => boolean, options?: WaitOptions): Promise<CgroupEvent> {
    if (typeof match !== 'function') throw invalid(`match must be a function, got ${describe(match)}`)
    const signal = checkAbortSignal(checkOptions<WaitOptions>(options, 'options', { signal: true }).signal)
    if (this.#failed) throw this.#failed
    if (this.#removed) {
      if (match(this.#removed)) return this.#removed
      throw this.#ended()
    }
    return new Promise((resolve, reject) => {
      const stop = (): void => {
        this.#listeners.delete(listener)
        this.#failers.delete(failer)
        signal?.removeEventListener('abort', onAbort)
      }
      const onAbort = (): void => {
        stop()
        reject(abortError(signal!))
      }
      const listener = (ev: CgroupEvent): void => {
        let hit: boolean
        try {
          hit = match(ev)
        } catch (e) {
          stop()
          return reject(e)
        }
        if (hit) {
          stop()
          resolve(ev)
        } else if (ev.type === 'removed') {
          stop()
          reject(this.#ended())
        }
      }
      const failer = { fail: (e: LifewatchError) => (stop(), reject(e)) }
      this.#failers.add(failer)
      this.#listeners.add(listener)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  /** Resolves with the `removed` event. */
  removed(options?: WaitOptions): Promise<RemovedEvent> {
    return this.waitFor((e) => e.type === 'removed', options) as Promise<RemovedEvent>
  }

  #failers = new Set<{ fail(e: LifewatchError): void }>()

  #ended(): LifewatchError {
    return new LifewatchError('ERR_CLOSED', `cgroup ${this.path} was removed`)
  }

  /** @internal */
  onNative(ev: LifewatchEvent): boolean {
    if (ev.type === 'exit' || ev.type === 'error') return false
    if (ev.type === 'removed') this.#removed = ev
    callEach(this.#listeners, ev)
    if (ev.type === 'removed') {
      this.#listeners.clear()
      this.#failers.clear()
      return true
    }
    return false
  }

  /** @internal */
  fail(error: LifewatchError): void {
    if (!this.active) return
    this.#failed = error
    this.#listeners.clear()
    for (const f of [...this.#failers]) f.fail(error)
    this.#failers.clear()
  }
}

function checkPsi(t: unknown, what: string): { resource: string; kind: string; stallUs: number; windowUs: number } {
  const o = checkOptions<PsiTrigger>(t, what, { resource: true, kind: true, stallUs: true, windowUs: true })
  const resource = o.resource ?? 'memory'
  const kind = o.kind ?? 'some'
  if (!['memory', 'cpu', 'io'].includes(resource)) throw invalid(`${what}.resource must be memory, cpu or io, got ${describe(resource)}`)
  if (kind !== 'some' && kind !== 'full') throw invalid(`${what}.kind must be 'some' or 'full', got ${describe(kind)}`)
  for (const k of ['stallUs', 'windowUs'] as const) {
    const v = o[k]
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw invalid(`${what}.${k} must be a positive integer (microseconds), got ${describe(v)}`)
  }
  return { resource, kind, stallUs: o.stallUs!, windowUs: o.windowUs! }
}

declare module './monitor.js' {
  interface Monitor {
    /**
     * Watches a cgroup: `oom`, `pressure`, `populated`, `frozen` events, then `removed`.
     * `path` is inside the hierarchy (`lifewatch/job1`) or a directory under a cgroup mount.
     * Errors: `ERR_NO_SUCH_CGROUP`, `ERR_INVALID_ARGUMENT` (`..`, outside the cgroup mounts, a
     * file, not cgroupfs), `ERR_UNSUPPORTED_KERNEL` (a required mechanism is missing),
     * `ERR_PERMISSION`. Watching one cgroup twice is allowed: each watch gets every event.
     * An option left to its default that needs a permission the caller lacks (v1 OOM as an
     * unprivileged user) is left out rather than failing the watch: see `parts` and
     * `leftOut`. Options given explicitly are all honoured or the call fails.
     */
    watchCgroup(path: string, options?: CgroupWatchOptions): CgroupWatch
    /** A system-wide PSI trigger (/proc/pressure/<resource>): `pressure` events without `cgroup`. */
    watchPressure(trigger: PsiTrigger): CgroupWatch
  }
}

Monitor.prototype.watchCgroup = function watchCgroup(this: Monitor, path: string, options?: CgroupWatchOptions): CgroupWatch {
  if (typeof path !== 'string' || path.length === 0) throw invalid(`path must be a non-empty string, got ${describe(path)}`)
  const o = checkOptions<CgroupWatchOptions>(options, 'options', { oom: true, events: true, pressure: true, psi: true, local: true })
  if (o.pressure !== undefined && typeof o.pressure !== 'string') throw invalid(`options.pressure must be a string, got ${describe(o.pressure)}`)
  if (o.psi !== undefined && !Array.isArray(o.psi)) throw invalid(`options.psi must be an array, got ${describe(o.psi)}`)
  const opts = {
    oom: checkBool(o.oom, 'options.oom'),
    events: checkBool(o.events, 'options.events'),
    local: checkBool(o.local, 'options.local'),
    pressure: o.pressure,
    psi: o.psi?.map((t, i) => checkPsi(t, `options.psi[${i}]`)),
  }
  const handle = internals.native(this)
  const made = native(() => handle.watchCgroup(path, opts))
  const leftOut = made.leftOut.map((l) => ({ part: l.part as CgroupWatchPart, error: fromNative(l.error) }))
  const w = new CgroupWatch(made.id, path, made.parts as CgroupWatchPart[], leftOut)
  const id = made.id
  internals.track(this, id, { watch: w, onEvent: (ev) => w.onNative(ev), fail: (e) => w.fail(e) })
  return w
}

Monitor.prototype.watchPressure = function watchPressure(this: Monitor, trigger: PsiTrigger): CgroupWatch {
  const t = checkPsi(trigger, 'trigger')
  const handle = internals.native(this)
  const id = native(() => handle.watchPressure(t))
  const w = new CgroupWatch(id, `/proc/pressure/${t.resource}`, ['psi'])
  internals.track(this, id, { watch: w, onEvent: (ev) => w.onNative(ev), fail: (e) => w.fail(e) })
  return w
}

export interface Hierarchy {
  /** Where it is mounted. */
  mount: string
  /** Which part of the hierarchy the mount shows (`/` unless in a cgroup namespace). */
  root: string
}

export interface CgroupLayout {
  mode: 'v1' | 'v2' | 'hybrid'
  unified?: Hierarchy
  /** v1 hierarchies by controller (`memory`, `pids`, `cpu`, `name=systemd`...). */
  v1: Record<string, Hierarchy>
}

/** The cgroup layout of this system (or of a test tree laid out like /sys/fs/cgroup). */
export function cgroupLayout(options?: { cgroupRoot?: string }): CgroupLayout {
  const o = checkOptions<{ cgroupRoot?: string }>(options, 'options', { cgroupRoot: true })
  const l = native(() => binding.cgroupLayout(o.cgroupRoot))
  const out: CgroupLayout = { mode: l.mode as CgroupLayout['mode'], v1: { ...l.v1 } }
  if (l.unified) out.unified = l.unified
  return out
}

export interface ProcessCgroups {
  /** The process's directory in the unified hierarchy, where mounted. */
  unified?: string
  /** Its path inside the unified hierarchy (the `0::` line of /proc/<pid>/cgroup). */
  unifiedPath?: string
  /** Its directory per v1 controller. */
  v1: Record<string, string>
}

/** Which cgroups a process is in, as directories. `ERR_NO_SUCH_PROCESS` if it is gone. */
export function cgroupOf(pid: number, options?: { cgroupRoot?: string }): ProcessCgroups {
  checkPid(pid)
  const o = checkOptions<{ cgroupRoot?: string }>(options, 'options', { cgroupRoot: true })
  const g = native(() => binding.cgroupOf(pid, o.cgroupRoot))
  const out: ProcessCgroups = { v1: { ...g.v1 } }
  if (g.unified != null) out.unified = g.unified
  if (g.unifiedPath != null) out.unifiedPath = g.unifiedPath
  return out
}

/** A resource snapshot of a cgroup: memory (current, peak, limit, swap, event counters), pids (current, peak), CPU time, PSI. */
export function cgroupStats(path: string, options?: { cgroupRoot?: string }): CgroupStats {
  const o = checkOptions<{ cgroupRoot?: string }>(options, 'options', { cgroupRoot: true })
  const s = native(() => binding.cgroupStats(path, o.cgroupRoot))
  return toCgroupStats(s)
}
