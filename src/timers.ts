// Timers that never fire early, and bounded, cancellable waits built on them. Node clamps a
// delay above 2**31−1 ms to 1 ms, so a long wait is chained in steps; Infinity never fires
// (and holds no handle).
import { abortError } from './errors.js'

/** The longest delay Node's setTimeout honours. */
export const MAX_TIMER_MS = 2 ** 31 - 1

export interface Timer {
  /** Resolves when the time is up; never, for Infinity. */
  readonly done: Promise<void>
  cancel(): void
}

/** A one-shot timer of `ms` milliseconds (0..Infinity), correct at any length; `ref: false`
 *  lets Node exit while it runs. */
export function timer(ms: number, options: { ref?: boolean } = {}): Timer {
  let handle: NodeJS.Timeout | undefined
  let fire!: () => void
  const done = new Promise<void>((resolve) => (fire = resolve))
  if (ms !== Infinity) {
    const end = performance.now() + ms
    const arm = (): void => {
      const left = end - performance.now()
      if (left <= 0) fire()
      else {
        handle = setTimeout(arm, Math.min(Math.ceil(left), MAX_TIMER_MS))
        if (options.ref === false) handle.unref()
      }
    }
    arm()
  }
  return { done, cancel: () => clearTimeout(handle) }
}

/** What `within` returns when the time ran out first. */
export const TIMED_OUT: unique symbol = Symbol('timed out')

/**
 * Runs `work` with a signal that aborts after `ms` (0..Infinity) or when `signal` aborts; `work`
 * should then stop waiting and unregister what it registered, but the wait ends either way.
 * Resolves with its result, or `TIMED_OUT`; rejects with `AbortError` when `signal` aborted
 * first, or with what `work` threw.
 */
export async function within<T>(
  ms: number,
  signal: AbortSignal | undefined,
  work: (signal: AbortSignal) => Promise<T>,
): Promise<T | typeof TIMED_OUT> {
  if (signal?.aborted) throw abortError(signal)
  const ctl = new AbortController()
  const stopped = new Promise<never>((_, reject) => ctl.signal.addEventListener('abort', () => reject(ctl.signal.reason), { once: true }))
  const t = timer(ms)
  let timedOut = false
  void t.done.then(() => {
    timedOut = true
    ctl.abort()
  })
  const onAbort = (): void => ctl.abort(signal!.reason)
  signal?.addEventListener('abort', onAbort, { once: true })
  try {
    const done = work(ctl.signal)
    // Once the wait has ended, how the work ends is no longer anyone's to handle.
    done.catch(() => {})
    return await Promise.race([done, stopped])
  } catch (e) {
    if (signal?.aborted) throw abortError(signal)
    if (timedOut) return TIMED_OUT
    throw e
  } finally {
    t.cancel()
    signal?.removeEventListener('abort', onAbort)
  }
}
