// A cgroup watch (`monitor.watchCgroup(path, options)`, `monitor.watchPressure(trigger)`):
// its options, and the object that delivers its events to listeners and waits.
import { LifewatchError, invalid } from './errors.js'
import { isCgroupEvent, type CgroupEvent, type LifewatchEvent, type RemovedEvent } from './events.js'
import { StreamWatch, type StreamFeed } from './stream-watch.js'
import { checkBool, checkOptions, describe } from './validate.js'
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

/** @internal What a Monitor knows of a cgroup watch it makes. */
export interface CgroupWatchInit {
  id: number
  path: string
  parts: readonly CgroupWatchPart[]
  leftOut?: readonly LeftOutPart[]
}

type Connect = (feed: StreamFeed) => () => void

// Cgroup watches are made by a Monitor alone: the constructor is private, and this, set once by
// the class's static block (the one place outside its body that may call it), is how
// `newCgroupWatch` reaches it.
let make!: (init: CgroupWatchInit, connect: Connect) => CgroupWatch

/**
 * One watched cgroup. Its events arrive through the monitor's iterator; `onEvent` and
 * `waitFor` see them too. Ends with a `removed` event once its directories are gone.
 */
export class CgroupWatch extends StreamWatch<CgroupEvent> {
  /** The path as given to `watchCgroup`. */
  readonly path: string
  /** The parts serving this watch: which kinds of event it can deliver. */
  readonly parts: readonly CgroupWatchPart[]
  /** Parts left to their default that were left out for lack of permission (else empty). */
  readonly leftOut: readonly LeftOutPart[]

  private constructor(init: CgroupWatchInit, connect: Connect) {
    super(init.id, connect)
    this.path = init.path
    this.parts = Object.freeze([...init.parts])
    this.leftOut = Object.freeze([...(init.leftOut ?? [])])
  }

  static {
    make = (init, connect) => new CgroupWatch(init, connect)
  }

  /** Resolves with the `removed` event. */
  removed(options?: WaitOptions): Promise<RemovedEvent> {
    return this.waitFor((e) => e.type === 'removed', options) as Promise<RemovedEvent>
  }

  protected accepts(ev: LifewatchEvent): ev is CgroupEvent {
    return isCgroupEvent(ev)
  }

  protected override isLast(ev: CgroupEvent): boolean {
    return ev.type === 'removed'
  }

  protected override endedError(): LifewatchError {
    return new LifewatchError('ERR_CLOSED', `cgroup ${this.path} was removed`)
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
