// Every scenario of issue 7, in its order. A scenario is a module exporting `run(cfg)`;
// adding one is a file in this folder plus an entry here. Scenarios whose feature has not
// landed stay `pending` with the reason: the runner lists them and measures nothing.
import type { Scenario } from '../lib/types.js'

export const scenarios: Scenario[] = [
  {
    id: 'exit-latency',
    number: 1,
    title: 'Exit → JavaScript latency',
    timeout: { full: 240, quick: 40 },
    run: async (cfg) => (await import('./exit-latency.js')).run(cfg),
  },
  {
    id: 'oom-latency',
    number: 2,
    title: 'OOM → JavaScript latency',
    // Extension point: once Monitor.watchCgroup(path, { oom: true }) exists, add
    // scenarios/oom-latency.ts with the same peers shape as exit-latency.ts (a heartbeat hog
    // writing CLOCK_MONOTONIC into a StampFile slot every 1 ms; peers: lifewatch v1 here and
    // v2 in the VM kit, memory.events / memory.oom_control pollers at 100 ms and 1 s, and an
    // eventfd / inotify floor added to lifewatch-floor) and drop `pending`.
    pending: 'needs cgroup OOM watching (Monitor.watchCgroup), not on main yet',
    timeout: { full: 120, quick: 30 },
  },
  {
    id: 'scale',
    number: 3,
    title: 'Scale: many sleeping processes, many watches',
    timeout: { full: 180, quick: 30 },
    run: async (cfg) => (await import('./scale.js')).run(cfg),
  },
  {
    id: 'burst',
    number: 4,
    title: 'Burst: every process killed at once',
    timeout: { full: 150, quick: 30 },
    run: async (cfg) => (await import('./burst.js')).run(cfg),
  },
  {
    id: 'shutdown',
    number: 5,
    title: 'Shutdown beyond the task’s own exit',
    // Extension point: once shutdown(task, platform) exists, add scenarios/shutdown.ts timing
    // graceful and forced shutdown minus the task's own exit (its stamp), against a runc-style
    // kill-then-poll loop, and drop `pending`.
    pending: 'needs shutdown(task, platform) and Task, not on main yet',
    timeout: { full: 120, quick: 30 },
  },
  {
    id: 'footprint',
    number: 6,
    title: 'Footprint: addon load time and size',
    timeout: { full: 90, quick: 30 },
    run: async (cfg) => (await import('./footprint.js')).run(cfg),
  },
]
