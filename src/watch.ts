import { LifewatchError } from './errors.js'
import type { ExitEvent } from './events.js'

/** One watched process. `wait()` resolves with its exit, however long ago that was. */
export class Watch {
  readonly id: number
  readonly pid: number
  #exit: ExitEvent | undefined
  #failed: LifewatchError | undefined
  #waiters: Array<{ resolve: (e: ExitEvent) => void; reject: (e: Error) => void }> = []

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
  wait(): Promise<ExitEvent> {
    if (this.#exit) return Promise.resolve(this.#exit)
    if (this.#failed) return Promise.reject(this.#failed)
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }))
  }

  /** @internal */
  settle(exit: ExitEvent): void {
    this.#exit = exit
    for (const w of this.#waiters.splice(0)) w.resolve(exit)
  }

  /** @internal */
  fail(error: LifewatchError): void {
    if (!this.active) return
    this.#failed = error
    for (const w of this.#waiters.splice(0)) w.reject(error)
  }
}
