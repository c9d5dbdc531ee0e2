// Opt-in child subreaper (prctl PR_SET_CHILD_SUBREAPER), as runc and the containerd shim use:
// descendants orphaned by their parent are reparented to this process instead of PID 1 (which
// on some machines never reaps them), and lifewatch reaps and reports them. Never switched on
// silently: only `Subreaper.enable()` (or the `subreaper` option of `Task.spawn`) does it.
//
// Reaping is driven by SIGCHLD, not polling. Only zombies are reaped, never a running child,
// and never one somebody else will wait for: children lifewatch's own watches reap, the
// caller's `exclude`, and a zombie is reaped only once it has been a zombie for a settle
// period (Node's libuv reaps its own children in the loop turn it sees SIGCHLD, so a
// child_process child is never taken from it). Orphans adopted while enabled are reaped until
// the last of them has exited, even after the last `disable()`: none is left a zombie.
import { EventEmitter } from 'node:events'

import { binding } from './native.js'
import { monotonicTime } from './stats.js'
import { timer, type Timer } from './timers.js'
import { checkDuration, checkOptions, describe } from './validate.js'
import { invalid } from './errors.js'

/** The longest settle period accepted. */
const MAX_SETTLE_MS = 60_000

export interface OrphanEvent {
  type: 'orphan'
  /** PID of the reaped orphan. */
  pid: number
  /** Its name (`comm`, at most 15 bytes). */
  comm: string
  exitCode?: number
  /** e.g. `'SIGKILL'` when a signal ended it. */
  signal?: string
  core?: boolean
  /** CLOCK_MONOTONIC ns when it was reaped. */
  time: bigint
}

export interface SubreaperOptions {
  /** PIDs of children that someone else waits for: never reaped. Called at each reap. */
  exclude?: () => Iterable<number>
  /** Milliseconds a zombie must stay unreaped after SIGCHLD before it counts as an orphan:
   *  0..60000 (0: reaped at once), default 50. Longer, or Infinity, is refused: a zombie left
   *  that long is what a subreaper exists to prevent. */
  settle?: number
}

/**
 * The process-wide subreaper. `enable()` marks this process (reference-counted: each call
 * needs one `disable()`, or a `using` scope); `'orphan'` events report each orphan reaped.
 */
export class Subreaper extends EventEmitter<{ orphan: [OrphanEvent] }> implements Disposable {
  static #current: Subreaper | undefined
  #users = 0
  #wasOn = false
  #listening = false
  #timer: Timer | undefined
  #excludes = new Set<() => Iterable<number>>()
  #settle = 50
  /** Zombie children seen, and when each was first seen (performance.now() ms). */
  #seen = new Map<number, number>()
  readonly #onChld = () => this.#schedule()

  private constructor() {
    super()
  }

  /** Whether this process is a child subreaper now (set by lifewatch or by anyone else). */
  static get active(): boolean {
    return binding.isChildSubreaper()
  }

  /**
   * Makes this process a child subreaper. Returns the shared instance (listen to its
   * `'orphan'` events); each `enable()` is undone by one `disable()`.
   */
  static enable(options?: SubreaperOptions): Subreaper {
    const o = checkOptions<SubreaperOptions>(options, 'options', { exclude: true, settle: true })
    if (o.exclude !== undefined && typeof o.exclude !== 'function') throw invalid(`options.exclude must be a function, got ${describe(o.exclude)}`)
    const settle = o.settle === undefined ? undefined : checkDuration(o.settle, 'settle')
    if (settle !== undefined && settle > MAX_SETTLE_MS) {
      throw invalid(`settle must be at most ${MAX_SETTLE_MS} ms (a zombie left longer is the leak a subreaper prevents), got ${settle}`)
    }
    const s = (Subreaper.#current ??= new Subreaper())
    if (s.#users++ === 0) {
      // Still draining the orphans of an earlier enable: it marked the process off already.
      s.#wasOn = Subreaper.active
      binding.setChildSubreaper(true)
      s.#listen(true)
    }
    if (o.exclude) s.#excludes.add(o.exclude)
    if (settle !== undefined) s.#settle = settle
    return s
  }

  /**
   * Undoes one `enable()`. The last one reaps what has exited and unmarks the process (unless
   * it was a subreaper before); orphans adopted and still running are reaped as they exit.
   */
  disable(): OrphanEvent[] {
    if (this.#users === 0) return []
    if (--this.#users > 0) return []
    if (!this.#wasOn) binding.setChildSubreaper(false)
    const last = this.reap()
    this.#stopWhenDone()
    return last
  }

  [Symbol.dispose](): void {
    this.disable()
  }

  get enabled(): boolean {
    return this.#users > 0
  }

  /**
   * Live orphans: children of this process that are running and that nobody else waits for
   * (not a child lifewatch reaps itself, not excluded): descendants reparented here that have
   * not exited. (Needs CONFIG_PROC_CHILDREN or a readable /proc.)
   */
  liveOrphans(): number[] {
    return binding.runningChildren(this.#excluded())
  }

  /**
   * Reaps every zombie child that is not excluded and has been a zombie for the settle period
   * (a younger one may be a child Node's libuv is about to reap: it is reaped later, once
   * settled); emits and returns the orphans reaped.
   */
  reap(): OrphanEvent[] {
    const zombies = new Set(binding.zombieChildren(this.#excluded()))
    const now = performance.now()
    for (const pid of this.#seen.keys()) if (!zombies.has(pid)) this.#seen.delete(pid)
    const settled: number[] = []
    for (const pid of zombies) {
      const since = this.#seen.get(pid) ?? now
      this.#seen.set(pid, since)
      if (now - since >= this.#settle) settled.push(pid)
    }
    if (settled.length < zombies.size) this.#schedule()
    if (settled.length === 0) return []
    for (const pid of settled) this.#seen.delete(pid)
    const out = binding.reapZombies(settled).map((r): OrphanEvent => ({ type: 'orphan', ...r, time: monotonicTime() }))
    for (const ev of out) this.emit('orphan', ev)
    return out
  }

  /**
   * Reaps the zombie children there are now, waiting the settle period for those too young to
   * be reaped yet; resolves with the orphans reaped (each also emitted).
   */
  async drain(): Promise<OrphanEvent[]> {
    const out = this.reap()
    if (this.#seen.size === 0) return out
    await timer(this.#settle).done
    return [...out, ...this.reap()]
  }

  #excluded(): number[] {
    const out: number[] = []
    for (const f of this.#excludes) out.push(...f())
    return out
  }

  #listen(on: boolean): void {
    if (on === this.#listening) return
    this.#listening = on
    if (on) process.on('SIGCHLD', this.#onChld)
    else {
      process.off('SIGCHLD', this.#onChld)
      this.#timer?.cancel()
      this.#timer = undefined
    }
  }

  /** After the last `disable()`: keeps reaping until no adopted orphan is left, running or
   *  a zombie waiting to settle. */
  #stopWhenDone(): void {
    if (this.#users > 0 || this.#seen.size > 0 || this.liveOrphans().length > 0) return
    this.#listen(false)
    this.#excludes.clear()
    if (Subreaper.#current === this) Subreaper.#current = undefined
  }

  /** SIGCHLD: reap the zombies still unreaped one settle period later. */
  #schedule(): void {
    if (this.#timer || !this.#listening) return
    const t = timer(this.#settle, { ref: false })
    this.#timer = t
    void t.done.then(() => {
      if (this.#timer !== t) return
      this.#timer = undefined
      this.reap()
      this.#stopWhenDone()
    })
  }
}
