// One run of an operation that concurrent callers share (a task's deletion, its shutdown),
// where each caller's AbortSignal stops that caller's wait only: a caller without a signal, or
// one that has not aborted, still gets the run's outcome. The run itself is stopped (its own
// signal aborts) only once every caller has stopped waiting and none of them came without one.
import { abortError } from './errors.js'

export class SharedRun<T> {
  readonly #stop = new AbortController()
  /** Callers with a signal still waiting. */
  #waiting = 0
  /** A caller without a signal: the run is never stopped. */
  #pinned = false
  readonly #done: Promise<T>
  #settled = false

  /** Starts `work` with the run's own signal. */
  constructor(work: (signal: AbortSignal) => Promise<T>) {
    this.#done = work(this.#stop.signal)
    this.#done.then(
      () => (this.#settled = true),
      () => (this.#settled = true),
    )
  }

  /** Whether the run was stopped because every caller gave up (a later call may start anew). */
  get stopped(): boolean {
    return this.#stop.signal.aborted
  }

  /** The run's outcome for one caller; rejects with `AbortError` when `signal` aborts first. */
  join(signal: AbortSignal | undefined): Promise<T> {
    if (!signal) {
      this.#pinned = true
      return this.#done
    }
    if (signal.aborted) return Promise.reject(abortError(signal))
    this.#waiting++
    return new Promise<T>((resolve, reject) => {
      let left = false
      /** Once per caller: false if it had already left. */
      const leave = (): boolean => {
        if (left) return false
        left = true
        signal.removeEventListener('abort', onAbort)
        this.#waiting--
        return true
      }
      const onAbort = (): void => {
        if (!leave()) return
        const fail = (): void => reject(abortError(signal))
        if (this.#waiting > 0 || this.#pinned || this.#settled) return fail()
        // The last one waiting: the run stops, and this call ends once it has (nothing of it is
        // left registered by then).
        this.#stop.abort(signal.reason)
        this.#done.then(fail, fail)
      }
      signal.addEventListener('abort', onAbort, { once: true })
      this.#done.then(
        (v) => leave() && resolve(v),
        (e: unknown) => leave() && reject(e),
      )
    })
  }
}
