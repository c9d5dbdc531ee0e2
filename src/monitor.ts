import { AbortError, LifewatchError, native } from './errors.js'
import { toEvent, type LifewatchEvent } from './events.js'
import { binding, type NativeEvent, type NativeMonitor, type ReleasedFds } from './native.js'
import { checkAbortSignal, checkBool, checkDuration, checkOptions, checkPid, signalNumber, type Signal } from './validate.js'
import { escalate, type Killable, type KillResult } from './kill.js'
import { Watch } from './watch.js'

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
   *  The reactor thread keeps running either way: events are timestamped and queued while
   *  JS is busy. Default true; false delivers through the reactor thread alone. */
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

/**
 * For lifewatch's own modules that extend a monitor from their own files (cgroup watches,
 * spawning): the native handle, and adopting a watch id the native side registered.
 * @internal
 */
export const internals = {} as {
  native(monitor: Monitor): NativeMonitor
  adopt(monitor: Monitor, id: number, pid: number): Watch
  /** Tracks a non-process watch (a cgroup watch): it sees its events, keeps the monitor ref'd
   *  while active, and is failed on close. */
  track(monitor: Monitor, id: number, handle: Tracked): void
}

/** A watch kept by another module. `onEvent` returns true when the watch has ended. @internal */
export interface Tracked {
  /** The public object the caller holds, so a watch from another monitor is recognised. */
  watch: object
  onEvent(ev: LifewatchEvent): boolean
  fail(error: LifewatchError): void
}

type Pending = { resolve: (r: IteratorResult<LifewatchEvent>) => void; reject: (e: Error) => void }

// Open, ref'd monitors with active watches are GC roots, as Node's own ref'd handles are:
// a `for await` over a monitor nothing else references must not be collected mid-loop.
const keptAlive = new Set<Monitor>()

/**
 * Watches processes and delivers their events as an async iterable. One epoll reactor in
 * Rust per monitor; events reach JavaScript in batches.
 */
export class Monitor implements AsyncIterable<LifewatchEvent>, AsyncDisposable {
  #native: NativeMonitor
  #queue: LifewatchEvent[] = []
  #pending: Pending[] = []
  #watches = new Map<number, Watch>()
  #byPid = new Map<number, Watch>()
  #tracked = new Map<number, Tracked>()
  #closed = false
  #abortReason: AbortError | undefined
  #iterating = false
  #wantRef: boolean
  #refed = false
  /** Every watch this monitor ever made: ids are per monitor, so another monitor's watch
   *  with the same id must never reach this monitor's native side. */
  #own = new WeakSet<Watch>()
  #abort: { signal: AbortSignal; onAbort: () => void } | undefined

  static {
    internals.native = (m) => m.#checkedNative()
    internals.adopt = (m, id, pid) => m.#adopt(id, pid)
    internals.track = (m, id, handle) => {
      m.#tracked.set(id, handle)
      m.#updateRef()
    }
  }

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
    if (opts.cgroupRoot !== undefined && typeof opts.cgroupRoot !== 'string') {
      throw new LifewatchError('ERR_INVALID_ARGUMENT', 'cgroupRoot must be a string')
    }
    const cgroupRoot = opts.cgroupRoot
    this.#wantRef = !checkBool(opts.unref, 'unref')
    const directWake = checkBool(opts.directWake, 'directWake') ?? true
    const onBatch = Monitor.#batchCallback(new WeakRef(this))
    this.#native = native(() => new binding.NativeMonitor(onBatch, { forceFallback, cgroupRoot, directWake }))
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
   * Active watches, how many batch deliveries (N-API calls) the monitor has made, and how
   * many times the kernel's inotify queue overflowed (each one re-read every cgroup v2
   * watch, so no state was lost; a steady count means a monitor too busy to keep up).
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
    return this.#adopt(native(() => this.#native.watchPid(pid)), pid)
  }

  #adopt(id: number, pid: number): Watch {
    const w = new Watch(id, pid)
    this.#own.add(w)
    this.#watches.set(id, w)
    this.#byPid.set(pid, w)
    this.#updateRef()
    return w
  }

  #checkedNative(): NativeMonitor {
    this.#checkOpen()
    return this.#native
  }

  /** Stops watching; the process's exit will not be reported. Returns false if it already ended. */
  unwatch(watch: Watch | { readonly id: number }): boolean {
    if (watch === null || typeof watch !== 'object') {
      throw new LifewatchError('ERR_INVALID_ARGUMENT', 'unwatch takes a watch returned by this monitor')
    }
    this.#checkOpen()
    if (!(watch instanceof Watch)) {
      const t = this.#tracked.get(watch.id)
      if (t && t.watch !== watch) {
        throw new LifewatchError('ERR_INVALID_ARGUMENT', `watch ${watch.id} belongs to another monitor`)
      }
      if (!t) return false
      const stopped = native(() => this.#native.unwatch(watch.id))
      this.#tracked.delete(watch.id)
      t.fail(new LifewatchError('ERR_CLOSED', `watch ${watch.id} was removed`))
      this.#updateRef()
      return stopped
    }
    this.#resolve(watch)
    const stopped = native(() => this.#native.unwatch(watch.id))
    this.#forget(watch)
    watch.fail(new LifewatchError('ERR_CLOSED', `watch ${watch.id} of pid ${watch.pid} was removed`))
    return stopped
  }

  /**
   * Sends a signal. Through a `Watch` (or the PID of an active watch) it goes through that
   * watch's pidfd and can never reach another process that reused the PID.
   */
  signal(target: Watch | number, sig: Signal = 'SIGTERM'): void {
    const signo = signalNumber(sig)
    this.#checkOpen()
    const w = this.#resolve(target)
    if (w) native(() => this.#native.signal(w.id, signo))
    else native(() => binding.signalPid(checkPid(target), signo))
  }

  /**
   * Signals (SIGTERM by default), waits up to `timeout` ms for the exit, then SIGKILL.
   * Resolves only on a confirmed exit, from the exit event itself: no polling. A bare PID with
   * no active watch is watched for the call and unwatched again if it fails or is aborted.
   */
  async kill(target: Watch | number, options?: KillOptions): Promise<KillResult> {
    const opts = checkOptions<KillOptions>(options, 'options', { killSignal: true, timeout: true, signal: true })
    const signo = signalNumber(opts.killSignal ?? 'SIGTERM', 'killSignal')
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

  /** Keeps Node's event loop alive while there are active watches (the default). */
  ref(): this {
    this.#wantRef = true
    this.#updateRef()
    return this
  }

  /** Lets Node exit even while this monitor watches something. */
  unref(): this {
    this.#wantRef = false
    this.#updateRef()
    return this
  }

  /** Stops everything and closes every fd; ends pending iterations. Idempotent. */
  close(): ReleasedFds {
    if (this.#closed) return { epoll: 0, pidfd: 0, eventfd: 0, inotify: 0, psi: 0, control: 0 }
    this.#closed = true
    keptAlive.delete(this)
    if (this.#abort) this.#abort.signal.removeEventListener('abort', this.#abort.onAbort)
    const released = this.#native.close()
    this.#queue.length = 0
    const closedError = new LifewatchError('ERR_CLOSED', 'the monitor was closed')
    for (const w of this.#watches.values()) w.fail(closedError)
    this.#watches.clear()
    for (const t of this.#tracked.values()) t.fail(closedError)
    this.#tracked.clear()
    this.#byPid.clear()
    for (const p of this.#pending.splice(0)) {
      if (this.#abortReason) p.reject(this.#abortReason)
      else p.resolve({ done: true, value: undefined })
    }
    return released
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close()
  }

  /** One iteration per monitor; breaking out of `for await` closes the monitor. */
  [Symbol.asyncIterator](): AsyncIterator<LifewatchEvent> {
    if (this.#iterating) {
      throw new LifewatchError('ERR_INVALID_STATE', 'this monitor is already being iterated; a monitor has one consumer')
    }
    this.#iterating = true
    return {
      next: () => this.#next(),
      return: async () => {
        this.close()
        return { done: true, value: undefined }
      },
    }
  }

  /**
   * The native side holds this callback strongly, so it must not reach the monitor: built
   * here, not in the constructor, so it shares no closure context with `this`. An unreferenced,
   * unref'd monitor can then be collected, and its finalizer frees the fds.
   */
  static #batchCallback(self: WeakRef<Monitor>): (batch: NativeEvent[]) => void {
    return (batch) => {
      const monitor = self.deref()
      if (monitor) monitor.#deliver(batch)
    }
  }

  #next(): Promise<IteratorResult<LifewatchEvent>> {
    const value = this.#queue.shift()
    if (value) return Promise.resolve({ done: false, value })
    if (this.#abortReason) return Promise.reject(this.#abortReason)
    if (this.#closed) return Promise.resolve({ done: true, value: undefined })
    return new Promise((resolve, reject) => this.#pending.push({ resolve, reject }))
  }

  #deliver(batch: NativeEvent[]): void {
    if (this.#closed) return
    for (const n of batch) {
      const ev = toEvent(n)
      const tracked = this.#tracked.get(ev.watch)
      if (tracked?.onEvent(ev)) this.#tracked.delete(ev.watch)
      if (ev.type === 'exit') {
        const w = this.#watches.get(ev.watch)
        if (w) {
          this.#forget(w)
          w.settle(ev)
        }
      } else if (ev.type === 'error' && ev.watch === 0) {
        // The monitor itself failed (its wait loop stopped): no watch will ever settle.
        for (const w of this.#watches.values()) w.fail(ev.error)
        for (const t of this.#tracked.values()) t.fail(ev.error)
        this.#watches.clear()
        this.#byPid.clear()
        this.#tracked.clear()
      }
      const p = this.#pending.shift()
      if (p) p.resolve({ done: false, value: ev })
      else this.#queue.push(ev)
    }
    this.#updateRef()
  }

  #forget(w: Watch): void {
    this.#watches.delete(w.id)
    if (this.#byPid.get(w.pid) === w) this.#byPid.delete(w.pid)
  }

  #resolve(target: Watch | number): Watch | undefined {
    if (target instanceof Watch) {
      if (!this.#own.has(target)) {
        throw new LifewatchError('ERR_INVALID_ARGUMENT', `watch ${target.id} belongs to another monitor`)
      }
      return target
    }
    return this.#byPid.get(checkPid(target))
  }

  /** A signal to a process that already exited is not an error: its exit event is on its way. */
  #trySignal(w: Watch, signo: number): void {
    if (!w.active) return
    try {
      native(() => this.#native.signal(w.id, signo))
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

  /** Ref'd exactly when wanted, open, and watching something. */
  #updateRef(): void {
    const want = this.#wantRef && !this.#closed && this.#watches.size + this.#tracked.size > 0
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
