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
    // v1 on the host, then v2 in the VM guest (full runs: a TCG boot plus slower kills).
    timeout: { full: 240, quick: 30 },
    run: async (cfg) => (await import('./oom-latency.js')).run(cfg),
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
    timeout: { full: 120, quick: 30 },
    run: async (cfg) => (await import('./shutdown.js')).run(cfg),
  },
  {
    id: 'footprint',
    number: 6,
    title: 'Footprint: addon load time and size',
    timeout: { full: 90, quick: 30 },
    run: async (cfg) => (await import('./footprint.js')).run(cfg),
  },
]
