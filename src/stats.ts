import { binding, type FdKindStats } from './native.js'

export type FdKind = 'epoll' | 'pidfd' | 'eventfd' | 'inotify' | 'psi' | 'control' | 'timerfd' | 'netlink' | 'kmsg'

/** Fds closed by one call (`Monitor.close()`, `Platform.closeOomWatcher()`), by kind. */
export type ReleasedFds = Record<FdKind, number>

export interface FdCounters {
  allocated: number
  released: number
  inUse: number
  /** Closed by a path that exists only to stop a leak (error paths, finalizers). */
  leakPrevented: number
}

/** Every fd lifewatch opened in this process, by kind: opened, closed, open now, closed only to stop a leak. */
export function fdStats(): Record<FdKind, FdCounters> {
  const out = {} as Record<FdKind, FdCounters>
  for (const s of binding.fdStats() as FdKindStats[]) {
    out[s.kind as FdKind] = { allocated: s.allocated, released: s.released, inUse: s.inUse, leakPrevented: s.leakPrevented }
  }
  return out
}

/** CLOCK_MONOTONIC ns: the clock of every event's `time`. */
export function monotonicTime(): bigint {
  return binding.monotonicNs()
}
