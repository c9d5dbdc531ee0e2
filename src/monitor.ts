import { checkCgroupWatch, checkPsi, CgroupWatch, newCgroupWatch, type CgroupWatchOptions, type PsiTrigger } from './cgroup-watch.js'
import { AbortError, LifewatchError, invalid } from './errors.js'
import { delivered, exitEvent, type ExitEvent, type LifewatchEvent } from './events.js'
import { Fifo } from './fifo.js'
import {
  checkHostWatch,
  checkOomKillWatch,
  checkTreeWatch,
  newHostWatch,
  newOomKillWatch,
  newTreeWatch,
  type HostWatch,
  type OomKillWatch,
  type TreeWatch,
  type HostWatchOptions,
  type OomKillWatchOptions,
  type TreeWatchOptions,
} from './host-watch.js'
import { escalate, type Killable, type KillResult } from './kill.js'
import { binding, type NativeEvent, type NativeMonitor } from './native.js'
import type { ReleasedFds } from './stats.js'
import { checkAbortSignal, checkBool, checkDuration, checkOptions, checkPid, checkString, describe } from './validate.js'
import { checkSignal, type Signal } from './signals.js'
import { StreamWatch, type StreamFeed } from './stream-watch.js'
import { newWatch, Watch, type WatchFeed } from './watch.js'

export interface MonitorOptions {
  /** Closing on abort; pending and later `next()` calls reject with `AbortError`. */
  signal?: AbortSignal
  /** Start unref'd: an open monitor then never keeps Node alive by itself. Default false. */
  unref?: boolean
  /** Watch processes by polling even where pidfd exists (tests of the pre-5.3 kernel path).
   *  The environment variable `LIFEWATCH_FORCE_FALLBACK=1` does the same. */
  forceFallback?: boolean
  /** A cgroup tree to use instead of the mounted hierarchies (tests): laid out like
   *  /sys/fs/cgroup (`cgroup.controllers` at the top for v2, else one directory per v1
   *  hierarchy plus `unified`). */
  cgroupRoot?: string
  /** Node's event loop watches the monitor's readiness itself, so an exit wakes the JS
   *  thread directly (one scheduler wakeup instead of two: reactor thread, then JS thread).
   *  A thread of lower priority watches for JS and hands the reactor thread what JS
   *  leaves for 5 ms: events are still timestamped and queued while JS is busy. Default true;
   *  false delivers through the reactor thread alone. */
  directWake?: boolean
}

export interface KillOptions {
  /** The first signal. Default `'SIGTERM'`. */
  killSignal?: Signal
  /** Milliseconds between the first signal and SIGKILL. Default 5000; 0 sends SIGKILL right
   *  after the first signal; `Infinity` never escalates. */
  timeout?: number
  /** Stops waiting: the call rejects with `AbortError` (the signals already sent stay sent). */
  signal?: AbortSignal
}

export type { KillResult }

/** What a spawn does with a standard stream: inherit it, /dev/null (`'ignore'`), or an fd. */
export type StdioOption = 'inherit' | 'ignore' | number

/** Where a spawned child goes: a cgroup's directories (`Cgroup` has them). */
export interface SpawnTarget {
  readonly path: string
  /** Its directory per hierarchy: `unified`, and each v1 controller. */
  readonly dirs: Record<string, string>
}

export interface MonitorSpawnOptions {
  /** Spawn into this cgroup: placed there before it execs (clone3 `CLONE_INTO_CGROUP` for the
   *  unified hierarchy, the child joining each v1 hierarchy itself). */
  cgroup?: SpawnTarget
  /** One value for all three, or one per slot. Default `'inherit'`. */
  stdio?: StdioOption | [StdioOption, StdioOption, StdioOption]
  /** The whole environment (default: this process's). */
  env?: Record<string, string>
  cwd?: string
  argv0?: string
}

/** A spawned child's watch: its exit arrives on the monitor (which reaps it), and through `wait()`. */
export type SpawnedWatch = Watch & { readonly placement: 'clone_into_cgroup' | 'joined_in_child' | 'none' }

type Pending = { resolve: (r: IteratorResult<LifewatchEvent>) => void; reject: (e: Error) => void; persistent: boolean }

/** The watches whose events are a stream (see `StreamWatch`). */
type StreamWatchKind = CgroupWatch | HostWatch | TreeWatch | OomKillWatch

/** A non-process watch this monitor feeds (a cgroup, host, tree or OOM-kill watch). */
interface Tracked {
  watch: StreamWatchKind
  feed: StreamFeed
}

// Open, ref'd monitors with active watches or a pending iteration are GC roots, as Node's own ref'd handles are:
// a `for await` over a monitor nothing else references must not be collected mid-loop.
const keptAlive = new Set<Monitor>()

function stdioSlot(v: unknown, i: number): number {
  if (v === 'inherit' || v === undefined) return -1
  if (v === 'ignore') return -2
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0) return v
  throw invalid(`stdio[${i}] must be 'inherit', 'ignore' or an fd, got ${describe(v)}`)
}

/**
 * Watches processes and cgroups and delivers their events as an async iterable. One epoll
 * reactor in Rust per monitor; events reach JavaScript in batches.
 */
export class Monitor implements AsyncIterable<LifewatchEvent>, AsyncDisposable {
  #native: NativeMonitor
  #queue = new Fifo<LifewatchEvent>()
  #pending: Pending[] = []
  #watches = new Map<number, { watch: Watch; feed: WatchFeed }>()
  #byPid = new Map<number, Watch>()
  #tracked = new Map<number, Tracked>()
  #closed = false
  #abortReason: AbortError | undefined
  #iterating = false
  #wantRef: boolean
  #refed = false
  #abort: { signal: AbortSignal; onAbort: () => void } | undefined

  constructor(options?: MonitorOptions) {
    const opts = checkOptions<MonitorOptions>(options, 'options', {
      signal: true,
      unref: true,
      forceFallback: true,
      cgroupRoot: true,
      directWake: true,
    })
    const signal = checkAbortSignal(opts.signal)
    const forceFallback = checkBool(opts.forceFallback, 'forceFallback') ?? process.env.LIFEWATCH_FORCE_FALLBACK === '1'
    const cgroupRoot = checkString(opts.cgroupRoot, 'cgroupRoot')
    this.#wantRef = !checkBool(opts.unref, 'unref')
    const directWake = checkBool(opts.directWake, 'directWake') ?? true
    const self = new WeakRef(this)
    this.#native = new binding.NativeMonitor(Monitor.#batchCallback(self), Monitor.#exitCallback(self), { forceFallback, cgroupRoot, directWake })
    if (signal) {
      const onAbort = () => this.#onAbort(signal)
      signal.addEventListener('abort', onAbort, { once: true })
      this.#abort = { signal, onAbort }
    }
  }

  /** Whether process watches use pidfd (false: the polling fallback). */
  get usesPidfd(): boolean {
    return this.#native.usesPidfd
  }

  /** Whether Node's loop watches the monitor's readiness itself (`directWake`); false after
   *  close, or where the runtime offers no libuv loop. */
  get directWake(): boolean {
    return this.#native.directWake
  }

  get closed(): boolean {
    return this.#closed
  }

  /**
   * Active watches (process and cgroup watches), how many batch deliveries (N-API calls) the
   * monitor has made, and how many times the kernel's inotify queue overflowed (each one
   * re-read every cgroup v2 watch, so no state was lost; a steady count means a monitor too
   * busy to keep up).
   */
  get stats(): { watches: number; deliveries: number; inotifyOverflows: number } {
    const n = this.#native
    return { watches: n.watchCount, deliveries: n.notifications, inotifyOverflows: n.inotifyOverflows }
  }

  /**
   * Watches any process, child or not. A PID that does not exist throws `ERR_NO_SUCH_PROCESS`;
   * a process that already exited but was not reaped yet reports its exit at once.
   */
  watchPid(pid: number): Watch {
    checkPid(pid)
    this.#checkOpen()
    return this.#adopt(this.#native.watchPid(pid), pid)
  }

  /**
   * Starts `command args` (resolved through `PATH`), in `options.cgroup` when given, with its
   * pidfd taken at creation: the watch follows exactly that child from its first instant, and
   * the monitor reaps it. A missing command is `ERR_NO_SUCH_COMMAND`, one that is not
   * executable `ERR_PERMISSION`.
   */
  spawn(command: string, args: readonly string[] = [], options?: MonitorSpawnOptions): SpawnedWatch {
    if (typeof command !== 'string' || command.length === 0) throw invalid(`command must be a non-empty string, got ${describe(command)}`)
    if (!Array.isArray(args) || args.some((a) => typeof a !== 'string')) throw invalid('args must be an array of strings')
    const o = checkOptions<MonitorSpawnOptions>(options, 'options', { cgroup: true, stdio: true, env: true, cwd: true, argv0: true })
    const stdio = Array.isArray(o.stdio) ? o.stdio : [o.stdio, o.stdio, o.stdio]
    if (stdio.length !== 3) throw invalid('stdio must have three entries')
    let env: string[] | undefined
    if (o.env !== undefined) {
      if (o.env === null || typeof o.env !== 'object') throw invalid('env must be an object')
      env = Object.entries(o.env).flatMap(([k, v]) => {
        if (typeof v !== 'string') throw invalid(`env.${k} must be a string, got ${describe(v)}`)
        return [k, v]
      })
    }
    for (const [k, v] of [['cwd', o.cwd], ['argv0', o.argv0]] as const) {
      if (v !== undefined && typeof v !== 'string') throw invalid(`${k} must be a string, got ${describe(v)}`)
    }
    let dirs: { unified?: string; v1: string[] } | undefined
    if (o.cgroup !== undefined) {
      const all = o.cgroup?.dirs
      if (all === null || typeof all !== 'object') throw invalid('options.cgroup must be a cgroup (a Cgroup, with dirs)')
      const { unified, ...v1 } = all
      dirs = { unified, v1: [...new Set(Object.values(v1))] }
    }
    this.#checkOpen()
    const s = this.#native.spawn(command, [...args], { stdio: stdio.map(stdioSlot), env, cwd: o.cwd, argv0: o.argv0 }, dirs)
    const w = this.#adopt(s.watch, s.pid)
    Object.defineProperty(w, 'placement', { value: s.placement, enumerable: true })
    return w as SpawnedWatch
  }

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
  watchCgroup(path: string, options?: CgroupWatchOptions): CgroupWatch {
    const c = checkCgroupWatch(path, options)
    this.#checkOpen()
    const made = this.#native.watchCgroup(c.path, c.options)
    const leftOut = made.leftOut.map((l) => ({ part: l.part, error: l.error as LifewatchError }))
    return this.#stream(made.id, (connect) => newCgroupWatch({ id: made.id, path, parts: made.parts, leftOut }, connect))
  }

  /** A system-wide PSI trigger (/proc/pressure/<resource>): `pressure` events without `cgroup`. */
  watchPressure(trigger: PsiTrigger): CgroupWatch {
    const t = checkPsi(trigger, 'trigger')
    this.#checkOpen()
    const id = this.#native.watchPressure(t)
    return this.#stream(id, (connect) => newCgroupWatch({ id, path: `/proc/pressure/${t.resource}`, parts: ['psi'] }, connect))
  }

  /**
   * Every process exit on the host, as the kernel's process events connector reports it (no
   * PID needed in advance): `exit` events with `source: 'connector'`, `ppid`, `comm` and
   * `cgroup`; with `forks`/`execs`, `fork` and `exec` events; `lost` when the kernel dropped
   * messages before lifewatch read them. `cgroup` keeps only processes in that cgroup or
   * below. One connector socket serves every host and tree watch of a monitor.
   * `ERR_PERMISSION` where the kernel wants CAP_NET_ADMIN (before Linux 6.6) or outside the
   * initial namespaces; `ERR_UNSUPPORTED_KERNEL` without the connector.
   */
  watchHost(options?: HostWatchOptions): HostWatch {
    const o = checkHostWatch(options)
    this.#checkOpen()
    const id = this.#native.watchHost({ exits: o.exits, forks: o.forks, execs: o.execs, cgroup: o.cgroup })
    return this.#stream(id, (connect) => newHostWatch(id, o, connect))
  }

  /**
   * The exits of `pid` and of every descendant, each with its `ppid`, those forked after the
   * watch began included: a child is never missed once its parent is a member. Descendants
   * alive now are found from /proc. The watch ends with the last member's exit
   * (`remaining: 0`); a zombie root reports its exit at once. `ERR_NO_SUCH_PROCESS`,
   * `ERR_INVALID_ARGUMENT` for a thread's ID, and the errors of `watchHost`.
   */
  watchTree(pid: number, options?: TreeWatchOptions): TreeWatch {
    checkPid(pid)
    const o = checkTreeWatch(options)
    this.#checkOpen()
    const id = this.#native.watchTree(pid, o)
    return this.#stream(id, (connect) => newTreeWatch(id, pid, connect))
  }

  /**
   * Every OOM kill on the host, read from the kernel's log (`/dev/kmsg`): `oomKill` events
   * with the victim's PID, name, uid, cgroups and memory; `lost` when log records were
   * overwritten before they were read. Kills logged before the watch are skipped unless
   * `replay`. A cgroup OOM watch on the same monitor then names its victims (`oom` events'
   * `victims`). `ERR_PERMISSION` without CAP_SYSLOG while `kernel.dmesg_restrict` is 1.
   */
  watchOomKills(options?: OomKillWatchOptions): OomKillWatch {
    const o = checkOomKillWatch(options)
    this.#checkOpen()
    const id = this.#native.watchOomKills(o.replay)
    return this.#stream(id, (connect) => newOomKillWatch(id, connect))
  }

  #stream<W extends StreamWatchKind>(id: number, make: (connect: (feed: StreamFeed) => () => void) => W): W {
    let feed!: StreamFeed
    const w: W = make((f) => {
      feed = f
      return () => this.#closed || this.unwatch(w)
    })
    // Tracked even when it ended at once (a tree whose root was a zombie): its events are on their way.
    this.#tracked.set(id, { watch: w, feed })
    this.#updateRef()
    return w
  }

  #adopt(id: number, pid: number): Watch {
    let feed!: WatchFeed
    const w: Watch = newWatch(id, pid, (f) => {
      feed = f
      return () => this.#closed || this.unwatch(w)
    })
    this.#watches.set(id, { watch: w, feed })
    this.#byPid.set(pid, w)
    this.#updateRef()
    return w
  }

  /** Stops a watch; a process's exit will not be reported. Returns false if it already ended. */
  unwatch(watch: Watch | CgroupWatch | HostWatch | TreeWatch | OomKillWatch): boolean {
    if (!(watch instanceof Watch) && !(watch instanceof StreamWatch)) {
      throw invalid('unwatch takes a watch returned by this monitor')
    }
    this.#checkOpen()
    if (!(watch instanceof Watch)) {
      const t = this.#tracked.get(watch.id)
      if (t && t.watch !== watch) throw invalid(`watch ${watch.id} belongs to another monitor`)
      if (!t) return false
      const stopped = this.#native.unwatch(watch.id)
      this.#tracked.delete(watch.id)
      t.feed.fail(new LifewatchError('ERR_CLOSED', `watch ${watch.id} was removed`))
      this.#updateRef()
      return stopped
    }
    const own = this.#own(watch)
    if (!own) {
      // Ended, or another monitor's: ids are per monitor, so it must never reach the native side.
      if (watch.active) throw invalid(`watch ${watch.id} belongs to another monitor`)
      return false
    }
    const stopped = this.#native.unwatch(watch.id)
    this.#forget(watch)
    own.feed.fail(new LifewatchError('ERR_CLOSED', `watch ${watch.id} of pid ${watch.pid} was removed`))
    return stopped
  }

  /**
   * @internal Re-reads a cgroup watch's counters now; what changed comes as events. Its owner
   * calls this once the cgroup is empty and about to be removed: that reading is final.
   */
  checkCgroup(watch: CgroupWatch): boolean {
    this.#checkOpen()
    return this.#tracked.get(watch.id)?.watch === watch && this.#native.checkCgroup(watch.id)
  }

  /**
   * @internal Ends a cgroup watch whose cgroup its caller has just removed, with `removed`, as
   * the kernel's word of the removal would (which for a v1 memory cgroup comes tens of
   * milliseconds later).
   */
  cgroupRemoved(watch: CgroupWatch): boolean {
    this.#checkOpen()
    return this.#tracked.get(watch.id)?.watch === watch && this.#native.cgroupRemoved(watch.id)
  }

  /**
   * Sends a signal. Through a `Watch` (or the PID of an active watch) it goes through that
   * watch's pidfd and can never reach another process that reused the PID.
   */
  signal(target: Watch | number, sig: Signal = 'SIGTERM'): void {
    const signo = checkSignal(sig)
    this.#checkOpen()
    const w = this.#resolve(target)
    if (w) this.#native.signal(w.id, signo)
    else binding.signalPid(checkPid(target), signo)
  }

  /**
   * Signals (SIGTERM by default), waits up to `timeout` ms for the exit, then SIGKILL.
   * Resolves only on a confirmed exit, from the exit event itself: no polling. A bare PID with
   * no active watch is watched for the call and unwatched again if it fails or is aborted.
   */
  async kill(target: Watch | number, options?: KillOptions): Promise<KillResult> {
    const opts = checkOptions<KillOptions>(options, 'options', { killSignal: true, timeout: true, signal: true })
    const signo = checkSignal(opts.killSignal ?? 'SIGTERM', 'killSignal')
    const grace = checkDuration(opts.timeout ?? 5000, 'timeout')
    const signal = checkAbortSignal(opts.signal)
    this.#checkOpen()
    const known = this.#resolve(target)
    const w = known ?? this.watchPid(checkPid(target))
    try {
      return await escalate(this.#killable(w), { signo, grace, confirm: Infinity, signal })
    } finally {
      if (!known && w.active && !this.#closed) this.unwatch(w)
    }
  }

  #killable(w: Watch): Killable {
    return { pid: w.pid, signal: (signo) => this.#trySignal(w, signo), wait: (o) => w.wait(o) }
  }

  /** Keeps Node alive while there are active watches or a pending iteration (the default). */
  ref(): this {
    this.#wantRef = true
    this.#updateRef()
    return this
  }

  /** Lets Node exit even while this monitor watches something or a loop awaits its events. */
  unref(): this {
    this.#wantRef = false
    this.#updateRef()
    return this
  }

  /** Stops everything and closes every fd; ends pending iterations. Idempotent. */
  close(): ReleasedFds {
    if (this.#closed) return { epoll: 0, pidfd: 0, eventfd: 0, inotify: 0, psi: 0, control: 0, timerfd: 0, netlink: 0, kmsg: 0 }
    this.#closed = true
    keptAlive.delete(this)
    if (this.#abort) this.#abort.signal.removeEventListener('abort', this.#abort.onAbort)
    const released = this.#native.close()
    this.#queue.clear()
    const closedError = new LifewatchError('ERR_CLOSED', 'the monitor was closed')
    this.#failAll(closedError)
    for (const p of this.#pending.splice(0)) {
      if (this.#abortReason) p.reject(this.#abortReason)
      else p.resolve({ done: true, value: undefined })
    }
    return released
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close()
  }

  /** `for await (const ev of monitor)`: `events()` with its defaults. */
  [Symbol.asyncIterator](): AsyncIterator<LifewatchEvent> {
    return this.events()[Symbol.asyncIterator]()
  }

  /**
   * The monitor's events, in kernel order. One iteration per monitor (a second is
   * ERR_INVALID_STATE); breaking out of it closes the monitor. `persistent` (default true), as
   * for `fs.promises.watch`: whether a loop waiting here keeps Node alive while the monitor is
   * open and ref'd, even once no watch is left.
   */
  events(options?: { persistent?: boolean }): AsyncIterable<LifewatchEvent> {
    const persistent = checkBool(checkOptions<{ persistent?: boolean }>(options, 'options', { persistent: true }).persistent, 'persistent') ?? true
    if (this.#iterating) {
      throw new LifewatchError('ERR_INVALID_STATE', 'this monitor is already being iterated; a monitor has one consumer')
    }
    this.#iterating = true
    const iterator: AsyncIterator<LifewatchEvent> = {
      next: () => this.#next(persistent),
      return: async () => {
        this.close()
        return { done: true, value: undefined }
      },
    }
    return { [Symbol.asyncIterator]: () => iterator }
  }

  /**
   * The native side holds the callbacks strongly, so they must not reach the monitor: built
   * here, not in the constructor, so they share no closure context with `this`. An
   * unreferenced, unref'd monitor can then be collected, and its finalizer frees the fds.
   */
  static #batchCallback(self: WeakRef<Monitor>): (records: Float64Array, others: NativeEvent[]) => void {
    return (records, others) => {
      const monitor = self.deref()
      if (monitor) monitor.#deliver(delivered(records, others))
    }
  }

  /** A batch of one plain exit, as its numbers (the addon's `batch.rs`). */
  static #exitCallback(self: WeakRef<Monitor>): (watch: number, time: bigint, pid: number, kind: number, value: number, source: number) => void {
    return (watch, time, pid, kind, value, source) => {
      const monitor = self.deref()
      if (monitor && !monitor.#closed) monitor.#exit(exitEvent(watch, time, pid, kind, value, source))
    }
  }

  /**
   * One watched process's exit, the usual delivery: its waiters are settled first and the
   * monitor's own bookkeeping (forgetting the watch, the iterator's queue, keep-alive) runs in
   * a job queued after their reactions, still within this delivery. An exit reached its
   * waiter about 10 µs sooner so (bench/README.md). Meanwhile the watch is ended (`active`
   * false) and treated as such (`#resolve`).
   */
  #exit(ev: ExitEvent): void {
    const own = this.#watches.get(ev.watch)
    if (own === undefined) {
      this.#take(ev)
      this.#batchDone()
      return
    }
    own.feed.settle(ev)
    void Promise.resolve().then(() => {
      this.#drop(own.watch)
      if (this.#closed) return
      this.#toIterator(ev)
      this.#updateRef()
    })
  }

  #next(persistent: boolean): Promise<IteratorResult<LifewatchEvent>> {
    const value = this.#queue.shift()
    if (value) return Promise.resolve({ done: false, value })
    if (this.#abortReason) return Promise.reject(this.#abortReason)
    if (this.#closed) return Promise.resolve({ done: true, value: undefined })
    const next = new Promise<IteratorResult<LifewatchEvent>>((resolve, reject) => this.#pending.push({ resolve, reject, persistent }))
    this.#updateRef()
    return next
  }

  #deliver(batch: LifewatchEvent[]): void {
    if (this.#closed) return
    for (const ev of batch) this.#take(ev)
    this.#batchDone()
  }

  /** One event: to its watch, then to the iterator. */
  #take(ev: LifewatchEvent): void {
    // A process watch's exit first: the path an exit's waiter is waiting on.
    const own = ev.type === 'exit' ? this.#watches.get(ev.watch) : undefined
    if (own !== undefined) {
      this.#drop(own.watch)
      own.feed.settle(ev as ExitEvent)
    } else if (this.#tracked.size > 0 && this.#feedStream(ev)) {
      return
    } else if (ev.type === 'error' && ev.watch === 0) {
      // The monitor itself failed (its wait loop stopped): no watch will ever settle.
      this.#failAll(ev.error)
    }
    this.#toIterator(ev)
  }

  /** To a pending `next()`, else kept for the iterator. */
  #toIterator(ev: LifewatchEvent): void {
    const p = this.#pending.length > 0 ? this.#pending.shift() : undefined
    if (p) p.resolve({ done: false, value: ev })
    else this.#queue.push(ev)
  }

  /** Whether Node stays alive is decided after the reactions a batch queued (a settled wait,
   *  a resolved next()), so an exit reaches its waiter first; still before the loop's next
   *  turn. A promise job rather than queueMicrotask, which makes an async resource per call. */
  #batchDone(): void {
    void Promise.resolve().then(this.#updateRefLater)
  }

  #updateRefLater = (): void => this.#updateRef()

  /** Feeds a stream watch's event to it; `true` when the event stays out of the iterator's
   *  queue: a host-wide stream (thousands of events a second on a busy host) is queued only
   *  while the monitor is iterated, so a program that reads it through its watch's listeners
   *  alone does not grow without bound. */
  #feedStream(ev: LifewatchEvent): boolean {
    const tracked = this.#tracked.get(ev.watch)
    if (tracked === undefined) return false
    if (tracked.feed.event(ev)) this.#tracked.delete(ev.watch)
    return !this.#iterating && !(tracked.watch instanceof CgroupWatch)
  }

  #failAll(error: LifewatchError): void {
    const watches = [...this.#watches.values()]
    const tracked = [...this.#tracked.values()]
    this.#watches.clear()
    this.#byPid.clear()
    this.#tracked.clear()
    for (const w of watches) w.feed.fail(error)
    for (const t of tracked) t.feed.fail(error)
  }

  #own(w: Watch): { watch: Watch; feed: WatchFeed } | undefined {
    const own = this.#watches.get(w.id)
    return own?.watch === w ? own : undefined
  }

  #forget(w: Watch): void {
    this.#drop(w)
    this.#updateRef()
  }

  /** Forgets a watch of this monitor's (its caller checked that). */
  #drop(w: Watch): void {
    this.#watches.delete(w.id)
    if (this.#byPid.get(w.pid) === w) this.#byPid.delete(w.pid)
  }

  #resolve(target: Watch | number): Watch | undefined {
    if (target instanceof Watch) {
      if (!this.#own(target) && target.active) {
        throw invalid(`watch ${target.id} belongs to another monitor`)
      }
      return target
    }
    // An exited watch stays mapped until its exit's bookkeeping has run (`#exit`).
    const w = this.#byPid.get(checkPid(target))
    return w?.active ? w : undefined
  }

  /** A signal to a process that already exited is not an error: its exit event is on its way. */
  #trySignal(w: Watch, signo: number): void {
    if (!w.active) return
    try {
      this.#native.signal(w.id, signo)
    } catch (e) {
      if ((e as LifewatchError).code !== 'ERR_NO_SUCH_PROCESS') throw e
    }
  }

  #checkOpen(): void {
    if (this.#abortReason) throw this.#abortReason
    if (this.#closed) throw new LifewatchError('ERR_CLOSED', 'the monitor is closed')
  }

  #onAbort(signal: AbortSignal): void {
    this.#abortReason = new AbortError(undefined, { cause: signal.reason })
    this.close()
  }

  /**
   * Ref'd exactly when wanted, open, and watching something or awaited by a persistent
   * `next()`: as with `fs.promises.watch`, a loop waiting for events keeps Node alive (Node
   * would otherwise abandon a pending top-level await and exit with code 13).
   */
  #updateRef(): void {
    const waited = this.#pending.some((p) => p.persistent)
    const want = this.#wantRef && !this.#closed && (this.#watches.size + this.#tracked.size > 0 || waited)
    if (want === this.#refed) return
    this.#refed = want
    if (want) {
      this.#native.ref()
      keptAlive.add(this)
    } else {
      if (!this.#closed) this.#native.unref()
      keptAlive.delete(this)
    }
  }
}
