// A watch whose events are a stream (cgroup, host, tree and OOM-kill watches): listeners, a
// wait for the first event that matches, its last event, disposal. The monitor that made it
// feeds it.
import { abortError, invalid, LifewatchError } from './errors.js'
import type { LifewatchEvent } from './events.js'
import { callEach } from './listeners.js'
import { checkAbortSignal, checkOptions, describe } from './validate.js'
import type { WaitOptions } from './watch.js'

/** @internal How the monitor that made a stream watch feeds it. */
export interface StreamFeed {
  /** Delivers one of its events; true when it was the last. */
  event(ev: LifewatchEvent): boolean
  fail(error: LifewatchError): void
}

/**
 * The events of one cgroup, host, tree or OOM-kill watch. They also arrive through the
 * monitor's iterator; `onEvent` and `waitFor` see them too. An `error` event for the watch
 * ends it (its waits reject with that error).
 */
export abstract class StreamWatch<E extends LifewatchEvent> {
  readonly id: number
  #ended = false
  /** The event that ended it, kept for waits that come later. */
  #last: E | undefined
  #failed: LifewatchError | undefined
  #listeners = new Set<(ev: E) => void>()
  #failers = new Set<{ fail(e: LifewatchError): void; end(): void }>()
  #unwatch: () => void

  /** @internal Made by a Monitor: `connect` gets the feed and gives back how to end the watch. */
  protected constructor(id: number, connect: (feed: StreamFeed) => () => void) {
    this.id = id
    this.#unwatch = connect({ event: (ev) => this.#onEvent(ev), fail: (e) => this.#fail(e) })
  }

  /** Until its last event, an error, `unwatch` or its monitor's close. */
  get active(): boolean {
    return !this.#ended && this.#failed === undefined
  }

  /** Calls `fn` with each of its events; returns the function that stops it. A listener that
   *  throws does not stop the others (its error is rethrown on a later tick). */
  onEvent(fn: (ev: E) => void): () => void {
    if (typeof fn !== 'function') throw invalid(`the listener must be a function, got ${describe(fn)}`)
    this.#listeners.add(fn)
    return () => this.#listeners.delete(fn)
  }

  /**
   * The first event from now on that `match` accepts, or the last event once the watch has
   * ended if it matches. Rejects with `ERR_CLOSED` when the watch ends first (unless its last
   * event matches), with its error when it fails, with `AbortError` when `signal` aborts, and
   * with what `match` throws.
   */
  async waitFor(match: (ev: E) => boolean, options?: WaitOptions): Promise<E> {
    if (typeof match !== 'function') throw invalid(`match must be a function, got ${describe(match)}`)
    const signal = checkAbortSignal(checkOptions<WaitOptions>(options, 'options', { signal: true }).signal)
    if (this.#failed) throw this.#failed
    if (this.#ended) {
      if (this.#last !== undefined && match(this.#last)) return this.#last
      throw this.endedError()
    }
    return new Promise<E>((resolve, reject) => {
      const stop = (): void => {
        this.#listeners.delete(listener)
        this.#failers.delete(failer)
        signal?.removeEventListener('abort', onAbort)
      }
      const onAbort = (): void => {
        stop()
        reject(abortError(signal!))
      }
      const listener = (ev: E): void => {
        let hit: boolean
        try {
          hit = match(ev)
        } catch (e) {
          stop()
          return reject(e)
        }
        if (hit) {
          stop()
          resolve(ev)
        }
      }
      const failer = {
        fail: (e: LifewatchError) => (stop(), reject(e)),
        end: () => (stop(), reject(this.endedError())),
      }
      this.#failers.add(failer)
      this.#listeners.add(listener)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  /** Stops watching (as `monitor.unwatch`); nothing once the watch has ended. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.active) this.#unwatch()
  }

  /** The event types this watch delivers. */
  protected abstract accepts(ev: LifewatchEvent): ev is E

  /** Whether `ev` is the watch's last event. */
  protected isLast(_ev: E): boolean {
    return false
  }

  /** The event that ended the watch, once it came. */
  protected get last(): E | undefined {
    return this.#last
  }

  /** What waits reject with once the watch has ended. */
  protected endedError(): LifewatchError {
    return new LifewatchError('ERR_CLOSED', `watch ${this.id} has ended`)
  }

  #onEvent(ev: LifewatchEvent): boolean {
    if (ev.type === 'error') {
      this.#fail(ev.error)
      return true
    }
    if (!this.accepts(ev)) return false
    const last = this.isLast(ev)
    if (last) {
      this.#ended = true
      this.#last = ev
    }
    callEach(this.#listeners, ev)
    if (last) {
      this.#listeners.clear()
      for (const f of [...this.#failers]) f.end()
      this.#failers.clear()
    }
    return last
  }

  #fail(error: LifewatchError): void {
    if (!this.active) return
    this.#failed = error
    this.#listeners.clear()
    for (const f of [...this.#failers]) f.fail(error)
    this.#failers.clear()
  }
}
