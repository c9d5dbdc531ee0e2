import { abortError, type LifewatchError } from './errors.js'
import type { ExitEvent } from './events.js'
import { checkAbortSignal, checkOptions } from './validate.js'

export interface WaitOptions {
  /** Stops waiting: the call rejects with `AbortError` and nothing stays registered. */
  signal?: AbortSignal
}

interface Waiter {
  resolve(e: ExitEvent): void
  reject(e: Error): void
}

/** One watched process. `wait()` resolves with its exit, however long ago that was. */
export class Watch {
  readonly id: number
  readonly pid: number
  #exit: ExitEvent | undefined
  #failed: LifewatchError | undefined
  #waiters = new Set<Waiter>()

  /** @internal */
  constructor(id: number, pid: number) {
    this.id = id
    this.pid = pid
  }

  /** The exit event, once it has arrived. */
  get exit(): ExitEvent | undefined {
    return this.#exit
  }

  get active(): boolean {
    return this.#exit === undefined && this.#failed === undefined
  }

  /** Resolves with the exit event; rejects with `ERR_CLOSED` if the monitor closes first. */
  async wait(options?: WaitOptions): Promise<ExitEvent> {
    const signal = checkAbortSignal(checkOptions<WaitOptions>(options, 'options', { signal: true }).signal)
    if (this.#exit) return this.#exit
    if (this.#failed) throw this.#failed
    return new Promise<ExitEvent>((resolve, reject) => {
      const onAbort = (): void => {
        this.#waiters.delete(waiter)
        reject(abortError(signal!))
      }
      const done = (): void => signal?.removeEventListener('abort', onAbort)
      const waiter: Waiter = {
        resolve: (e) => (done(), resolve(e)),
        reject: (e) => (done(), reject(e)),
      }
      this.#waiters.add(waiter)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  /** @internal */
  settle(exit: ExitEvent): void {
    this.#exit = exit
    for (const w of this.#take()) w.resolve(exit)
  }

  /** @internal */
  fail(error: LifewatchError): void {
    if (!this.active) return
    this.#failed = error
    for (const w of this.#take()) w.reject(error)
  }

  #take(): Waiter[] {
    const all = [...this.#waiters]
    this.#waiters.clear()
    return all
  }
}
