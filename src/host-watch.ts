// Host-wide watches (`monitor.watchHost`, `watchTree`, `watchOomKills`): their options,
// checked before the addon sees them, and the objects that deliver their events.
import { invalid } from './errors.js'
import type { ExitEvent, HostEvent, LifewatchEvent, OomKillWatchEvent } from './events.js'
import { StreamWatch, type StreamFeed } from './stream-watch.js'
import { checkBool, checkCgroupPath, checkOptions } from './validate.js'
import type { WaitOptions } from './watch.js'

export interface HostWatchOptions {
  /** Every process exit on the host. Default true. */
  exits?: boolean
  /** Every process created (not threads). Default false. */
  forks?: boolean
  /** Every execve. Default false. */
  execs?: boolean
  /** Only processes in this cgroup or below it (a path as `watchCgroup` takes it). */
  cgroup?: string
}

export interface TreeWatchOptions {
  /** Also each process the tree gains. Default false. */
  forks?: boolean
  /** Also each execve in the tree. Default false. */
  execs?: boolean
}

export interface OomKillWatchOptions {
  /** Also the kills still in the kernel's log from before the watch. Default false. */
  replay?: boolean
}

type Connect = (feed: StreamFeed) => () => void

// Made by a Monitor alone: the constructors are private, and these, set once by each class's
// static block, are how the `new*Watch` functions reach them.
let makeHost!: (id: number, options: HostWatch['options'], connect: Connect) => HostWatch
let makeTree!: (id: number, pid: number, connect: Connect) => TreeWatch
let makeOomKills!: (id: number, connect: Connect) => OomKillWatch

const isHostEvent = (ev: LifewatchEvent): ev is HostEvent =>
  (ev.type === 'exit' && ev.source === 'connector') || ev.type === 'fork' || ev.type === 'exec' || ev.type === 'lost'

/** Every process exit (and fork, exec) on the host, through the kernel's process events connector. */
export class HostWatch extends StreamWatch<HostEvent> {
  /** The options it was made with, defaults filled in. */
  readonly options: Readonly<Required<Omit<HostWatchOptions, 'cgroup'>> & Pick<HostWatchOptions, 'cgroup'>>

  private constructor(id: number, options: HostWatch['options'], connect: Connect) {
    super(id, connect)
    this.options = Object.freeze({ ...options })
  }

  static {
    makeHost = (id, options, connect) => new HostWatch(id, options, connect)
  }

  protected accepts(ev: LifewatchEvent): ev is HostEvent {
    return isHostEvent(ev)
  }
}

/** A process and every descendant, those forked after the watch began included, until the last is gone. */
export class TreeWatch extends StreamWatch<HostEvent> {
  /** The root's PID. */
  readonly pid: number

  private constructor(id: number, pid: number, connect: Connect) {
    super(id, connect)
    this.pid = pid
  }

  static {
    makeTree = (id, pid, connect) => new TreeWatch(id, pid, connect)
  }

  /** The tree's last exit (`remaining: 0`), once it has come. */
  get exit(): ExitEvent | undefined {
    return this.last as ExitEvent | undefined
  }

  /** Resolves with the tree's last exit, however long ago it came; `ERR_CLOSED` if the watch
   *  ends first, `AbortError` when `signal` aborts (the watch staying in place). */
  wait(options?: WaitOptions): Promise<ExitEvent> {
    return this.waitFor((ev) => this.isLast(ev), options) as Promise<ExitEvent>
  }

  protected accepts(ev: LifewatchEvent): ev is HostEvent {
    return isHostEvent(ev)
  }

  protected override isLast(ev: HostEvent): boolean {
    return ev.type === 'exit' && ev.remaining === 0
  }
}

/** Every OOM kill on the host, read from the kernel's log (`/dev/kmsg`). */
export class OomKillWatch extends StreamWatch<OomKillWatchEvent> {
  private constructor(id: number, connect: Connect) {
    super(id, connect)
  }

  static {
    makeOomKills = (id, connect) => new OomKillWatch(id, connect)
  }

  protected accepts(ev: LifewatchEvent): ev is OomKillWatchEvent {
    return ev.type === 'oomKill' || ev.type === 'lost'
  }
}

/** @internal A Monitor's host watch: `connect` gets its feed and gives back how to end it. */
export function newHostWatch(id: number, options: HostWatch['options'], connect: Connect): HostWatch {
  return makeHost(id, options, connect)
}

/** @internal A Monitor's tree watch. */
export function newTreeWatch(id: number, pid: number, connect: Connect): TreeWatch {
  return makeTree(id, pid, connect)
}

/** @internal A Monitor's OOM-kill watch. */
export function newOomKillWatch(id: number, connect: Connect): OomKillWatch {
  return makeOomKills(id, connect)
}

/** @internal The native form of `watchHost`'s options, validated. */
export function checkHostWatch(options: unknown): { exits: boolean; forks: boolean; execs: boolean; cgroup?: string } {
  const o = checkOptions<HostWatchOptions>(options, 'options', { exits: true, forks: true, execs: true, cgroup: true })
  const exits = checkBool(o.exits, 'options.exits') ?? true
  const forks = checkBool(o.forks, 'options.forks') ?? false
  const execs = checkBool(o.execs, 'options.execs') ?? false
  if (!exits && !forks && !execs) throw invalid('a host watch of nothing: exits, forks and execs are all off')
  const cgroup = o.cgroup === undefined ? undefined : checkCgroupPath(o.cgroup, 'options.cgroup')
  return cgroup === undefined ? { exits, forks, execs } : { exits, forks, execs, cgroup }
}

/** @internal The native form of `watchTree`'s options, validated. */
export function checkTreeWatch(options: unknown): { forks: boolean; execs: boolean } {
  const o = checkOptions<TreeWatchOptions>(options, 'options', { forks: true, execs: true })
  return { forks: checkBool(o.forks, 'options.forks') ?? false, execs: checkBool(o.execs, 'options.execs') ?? false }
}

/** @internal The native form of `watchOomKills`'s options, validated. */
export function checkOomKillWatch(options: unknown): { replay: boolean } {
  const o = checkOptions<OomKillWatchOptions>(options, 'options', { replay: true })
  return { replay: checkBool(o.replay, 'options.replay') ?? false }
}
