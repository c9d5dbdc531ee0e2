// Opt-in child subreaper (prctl PR_SET_CHILD_SUBREAPER), as runc and the containerd shim use:
// descendants orphaned by their parent are reparented to this process instead of PID 1 (which
// on some machines never reaps them), and lifewatch reaps and reports them. Never switched on
// silently: only `Subreaper.enable()` (or the `subreaper` option of `Task.spawn`) does it.
//
// Reaping is driven by SIGCHLD, not polling. Only zombies are reaped, never a running child,
// and never one somebody else will wait for: the PIDs of running lifewatch tasks and the
// caller's `exclude` are skipped, and a zombie is reaped only when it is still a zombie one
// event-loop turn after SIGCHLD (Node's libuv reaps its own children in the same turn it sees
// SIGCHLD, so a child_process child is never taken from it).
import { EventEmitter } from 'node:events'
import { readdirSync, readFileSync } from 'node:fs'
import { constants } from 'node:os'

import { native } from './errors.js'
import { binding } from './native.js'
import { monotonicTime } from './stats.js'

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
  /** Milliseconds a zombie must stay unreaped after SIGCHLD before it counts as an orphan. Default 50. */
  settle?: number
}

/** Signal number to name, e.g. 9 -> 'SIGKILL'. */
export function signalName(signo: number): string {
  const hit = Object.entries(constants.signals).find(([, n]) => n === signo)
  return hit ? hit[0] : `SIG${signo}`
}

/** PIDs of processes lifewatch itself waits for (running tasks); registered by `Task`. */
export const claimed = new Set<number>()

/**
 * The process-wide subreaper. `enable()` marks this process; `'orphan'` events report each
 * orphan reaped. `disable()` restores the previous state and stops listening for SIGCHLD.
 */
export class Subreaper extends EventEmitter<{ orphan: [OrphanEvent] }> {
  static #current: Subreaper | undefined
  #users = 0
  #wasOn = false
  #timer: NodeJS.Timeout | undefined
  #excludes = new Set<() => Iterable<number>>()
  #settle = 50
  readonly #onChld = () => this.#schedule()

  private constructor() {
    super()
  }

  /** Whether this process is a child subreaper now (set by lifewatch or by anyone else). */
  static get active(): boolean {
    return native(() => binding.isChildSubreaper())
  }

  /**
   * Makes this process a child subreaper (reference-counted: each `enable()` needs one
   * `disable()`). Returns the shared instance; listen to its `'orphan'` events.
   */
  static enable(options: SubreaperOptions = {}): Subreaper {
    const s = (Subreaper.#current ??= new Subreaper())
    if (s.#users++ === 0) {
      s.#wasOn = Subreaper.active
      native(() => binding.setChildSubreaper(true))
      process.on('SIGCHLD', s.#onChld)
    }
    if (options.exclude) s.#excludes.add(options.exclude)
    if (options.settle !== undefined) s.#settle = options.settle
    return s
  }

  /** Undoes one `enable()`; the last one reaps what is left and unmarks the process. */
  disable(): OrphanEvent[] {
    if (this.#users === 0) return []
    if (--this.#users > 0) return []
    const last = this.reap()
    process.off('SIGCHLD', this.#onChld)
    clearTimeout(this.#timer)
    this.#timer = undefined
    this.#excludes.clear()
    if (!this.#wasOn) native(() => binding.setChildSubreaper(false))
    Subreaper.#current = undefined
    return last
  }

  get enabled(): boolean {
    return this.#users > 0
  }

  /**
   * Live orphans: children of this process that are running and that nobody claimed (not a
   * running lifewatch task, not excluded): descendants reparented here that have not exited.
   * (Needs CONFIG_PROC_CHILDREN; empty without it.)
   */
  liveOrphans(): number[] {
    const exclude = new Set(claimed)
    for (const f of this.#excludes) for (const pid of f()) exclude.add(pid)
    const zombies = new Set(native(() => binding.zombieChildren([])))
    const out = new Set<number>()
    try {
      for (const tid of readdirSync('/proc/self/task')) {
        const text = readFileSync(`/proc/self/task/${tid}/children`, 'utf8')
        for (const p of text.split(' ').filter(Boolean).map(Number)) if (!exclude.has(p) && !zombies.has(p)) out.add(p)
      }
    } catch {
      // no /proc/<pid>/task/<tid>/children here
    }
    return [...out]
  }

  /** Reaps every zombie child that is not excluded, now; emits and returns the orphans. */
  reap(): OrphanEvent[] {
    const exclude = new Set(claimed)
    for (const f of this.#excludes) for (const pid of f()) exclude.add(pid)
    const zombies = native(() => binding.zombieChildren([...exclude]))
    return this.#reap(zombies)
  }

  #reap(pids: number[]): OrphanEvent[] {
    if (pids.length === 0) return []
    const out = native(() => binding.reapZombies(pids)).map((r): OrphanEvent => {
      const ev: OrphanEvent = { type: 'orphan', pid: r.pid, comm: r.comm, time: monotonicTime() }
      if (r.exitCode != null) ev.exitCode = r.exitCode
      if (r.signal != null) {
        ev.signal = signalName(r.signal)
        ev.core = r.core ?? false
      }
      return ev
    })
    for (const ev of out) this.emit('orphan', ev)
    return out
  }

  /** SIGCHLD: note the zombies now, reap those still unreaped one settle period later. */
  #schedule(): void {
    if (this.#timer) return
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      if (this.#users > 0) this.reap()
    }, this.#settle)
    this.#timer.unref()
  }
}
