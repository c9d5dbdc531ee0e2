// Waits of any length. Node fires a timer of more than 2**31 - 1 ms after 1 ms: longer waits
// are chained, and Infinity never fires.

const MAX_TIMER_MS = 2 ** 31 - 1

/** Calls `fn` after `ms` (any length, Infinity: never); returns a cancel function. */
export function after(ms: number, fn: () => void): () => void {
  let timer: NodeJS.Timeout | undefined
  const due = performance.now() + ms
  const arm = () => {
    if (ms === Infinity) return
    const left = due - performance.now()
    if (left <= 0) return fn()
    timer = setTimeout(arm, Math.min(left, MAX_TIMER_MS))
  }
  arm()
  return () => clearTimeout(timer)
}

/** Resolves after `ms` (Infinity: never). */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => after(ms, resolve))
}
