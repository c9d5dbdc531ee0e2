// A cgroup watch (`monitor.watchCgroup(path, options)`, `monitor.watchPressure(trigger)`):
// its options, and the object that delivers its events to listeners and waits.
import { abortError, LifewatchError, invalid } from './errors.js'
import type { CgroupEvent, LifewatchEvent, RemovedEvent } from './events.js'
import { callEach } from './listeners.js'
import { checkAbortSignal, checkBool, checkOptions, describe } from './validate.js'
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

/** @internal How the monitor that made a cgroup watch feeds it (given to the monitor at construction). */
export interface CgroupWatchFeed {
  /** Delivers one of its events; true when it was the last (`removed`). */
  event(ev: LifewatchEvent): boolean
  fail(error: LifewatchError): void
}

/** @internal What a Monitor knows of a cgroup watch it makes. */
export interface CgroupWatchInit {
  id: number
  path: string
  parts: readonly CgroupWatchPart[]
  leftOut?: readonly LeftOutPart[]
}

type Connect = (feed: CgroupWatchFeed) => () => void

// Cgroup watches are made by a Monitor alone: the constructor is private, and this, set once by
// the class's static block (the one place outside its body that may call it), is how
// `newCgroupWatch` reaches it.
let make!: (init: CgroupWatchInit, connect: Connect) => CgroupWatch

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
  #failers = new Set<{ fail(e: LifewatchError): void }>()
  #unwatch: () => void

  private constructor(init: CgroupWatchInit, connect: Connect) {
    this.id = init.id
    this.path = init.path
    this.parts = Object.freeze([...init.parts])
    this.leftOut = Object.freeze([...(init.leftOut ?? [])])
    this.#unwatch = connect({ event: (ev) => this.#onEvent(ev), fail: (e) => this.#fail(e) })
  }

  static {
    make = (init, connect) => new CgroupWatch(init, connect)
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

  /** Stops watching (as `monitor.unwatch`); nothing once the watch has ended. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.active) this.#unwatch()
  }

  #ended(): LifewatchError {
    return new LifewatchError('ERR_CLOSED', `cgroup ${this.path} was removed`)
  }

  #onEvent(ev: LifewatchEvent): boolean {
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

  #fail(error: LifewatchError): void {
    if (!this.active) return
    this.#failed = error
    this.#listeners.clear()
    for (const f of [...this.#failers]) f.fail(error)
    this.#failers.clear()
  }
}

/**
 * @internal A Monitor's cgroup watch: `connect` gets the feed of this one and gives back how to
 * end it.
 */
export function newCgroupWatch(init: CgroupWatchInit, connect: Connect): CgroupWatch {
  return make(init, connect)
}

/** @internal The native form of a PSI trigger, validated. */
export function checkPsi(t: unknown, what: string): { resource: string; kind: string; stallUs: number; windowUs: number } {
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

/** @internal The native form of `watchCgroup`'s path and options, validated. */
export function checkCgroupWatch(path: unknown, options: unknown) {
  if (typeof path !== 'string' || path.length === 0) throw invalid(`path must be a non-empty string, got ${describe(path)}`)
  const o = checkOptions<CgroupWatchOptions>(options, 'options', { oom: true, events: true, pressure: true, psi: true, local: true })
  if (o.pressure !== undefined && typeof o.pressure !== 'string') throw invalid(`options.pressure must be a string, got ${describe(o.pressure)}`)
  if (o.psi !== undefined && !Array.isArray(o.psi)) throw invalid(`options.psi must be an array, got ${describe(o.psi)}`)
  return {
    path,
    options: {
      oom: checkBool(o.oom, 'options.oom'),
      events: checkBool(o.events, 'options.events'),
      local: checkBool(o.local, 'options.local'),
      pressure: o.pressure,
      psi: o.psi?.map((t, i) => checkPsi(t, `options.psi[${i}]`)),
    },
  }
}
