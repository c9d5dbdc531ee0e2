import { abortError, type LifewatchError } from './errors.js'
import type { ExitEvent } from './events.js'
import { checkAbortSignal, checkOptions } from './validate.js'

export interface WaitOptions {
  /** Stops waiting: the call rejects with `AbortError` and nothing stays registered. */
  signal?: AbortSignal
}

/** @internal How the monitor that made a watch settles it (given to the monitor at construction). */
export interface WatchFeed {
  settle(exit: ExitEvent): void
  fail(error: LifewatchError): void
}

interface Waiter {
  resolve(e: ExitEvent): void
  reject(e: Error): void
}

type Connect = (feed: WatchFeed) => () => void

// Watches are made by a Monitor alone: the constructor is private, and this, set once by the
// class's static block (the one place outside its body that may call it), is how `newWatch`
// reaches it.
let make!: (id: number, pid: number, connect: Connect) => Watch

/** One watched process. `wait()` resolves with its exit, however long ago that was. */
export class Watch {
  readonly id: number
  readonly pid: number
  #exit: ExitEvent | undefined
  #failed: LifewatchError | undefined
  /** The promise every `wait()` without a signal shares: made by the first, settled with the
   *  exit in one call (the exit's path to its waiter is the latency lifewatch is measured by). */
  #shared: (Waiter & { promise: Promise<ExitEvent> }) | undefined
  /** Waits with a signal: each its own promise, so that aborting one leaves the others. */
  #abortable: Set<Waiter> | undefined
  #unwatch: () => void

  private constructor(id: number, pid: number, connect: Connect) {
    this.id = id
    this.pid = pid
    this.#unwatch = connect({ settle: (e) => this.#settle(e), fail: (e) => this.#fail(e) })
  }

  static {
    make = (id, pid, connect) => new Watch(id, pid, connect)
  }

  /** The exit event, once it has arrived. */
  get exit(): ExitEvent | undefined {
    return this.#exit
  }

  /** Until the exit arrived or the watch ended (unwatched, or its monitor closed). */
  get active(): boolean {
    return this.#exit === undefined && this.#failed === undefined
  }

  /** Resolves with the exit event; rejects with `ERR_CLOSED` if the watch ends first. */
  wait(options?: WaitOptions): Promise<ExitEvent> {
    // Not an async function: the exit then reaches the caller's reaction in one microtask,
    // not after the extra ticks of an async function adopting a promise.
    let signal: AbortSignal | undefined
    try {
      signal = checkAbortSignal(checkOptions<WaitOptions>(options, 'options', { signal: true }).signal)
    } catch (e) {
      return Promise.reject(e)
    }
    if (this.#exit) return Promise.resolve(this.#exit)
    if (this.#failed) return Promise.reject(this.#failed)
    if (!signal) {
      if (!this.#shared) {
        let resolve!: Waiter['resolve'], reject!: Waiter['reject']
        const promise = new Promise<ExitEvent>((res, rej) => ((resolve = res), (reject = rej)))
        this.#shared = { resolve, reject, promise }
      }
      return this.#shared.promise
    }
    return new Promise<ExitEvent>((resolve, reject) => {
      const abortable = (this.#abortable ??= new Set())
      const onAbort = (): void => {
        abortable.delete(waiter)
        reject(abortError(signal))
      }
      const done = (): void => signal.removeEventListener('abort', onAbort)
      const waiter: Waiter = {
        resolve: (e) => (done(), resolve(e)),
        reject: (e) => (done(), reject(e)),
      }
      abortable.add(waiter)
      signal.addEventListener('abort', onAbort, { once: true })
    })
  }

  /** Stops watching (as `monitor.unwatch`); nothing once the watch has ended. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.active) this.#unwatch()
  }

  #settle(exit: ExitEvent): void {
    this.#exit = exit
    this.#shared?.resolve(exit)
    const abortable = this.#abortable
    this.#shared = this.#abortable = undefined
    if (abortable) for (const w of abortable) w.resolve(exit)
  }

  #fail(error: LifewatchError): void {
    if (!this.active) return
    this.#failed = error
    this.#shared?.reject(error)
    const abortable = this.#abortable
    this.#shared = this.#abortable = undefined
    if (abortable) for (const w of abortable) w.reject(error)
  }
}

/**
 * @internal A Monitor's watch of `pid`: `connect` gets the feed that settles it and gives back
 * how to end it.
 */
export function newWatch(id: number, pid: number, connect: Connect): Watch {
  return make(id, pid, connect)
}
