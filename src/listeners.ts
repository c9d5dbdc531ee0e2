// Calling user listeners without letting one break lifewatch's bookkeeping. Every listener
// runs even when one throws; the error is then thrown on a later tick, where it reaches
// 'uncaughtException' as a throwing EventEmitter listener's error does when the event came
// from the event loop.
export function callEach<A extends unknown[]>(listeners: Iterable<(...args: A) => void>, ...args: A): void {
  for (const listener of [...listeners]) {
    try {
      listener(...args)
    } catch (e) {
      process.nextTick(() => {
        throw e
      })
    }
  }
}
