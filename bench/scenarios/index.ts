// Every scenario of the bench, in report order. A scenario is a module exporting `run(cfg)`;
// adding one is a file in this folder plus an entry here. Scenarios whose feature has not
// landed stay `pending` with the reason: the runner lists them and measures nothing.
import type { Scenario } from '../lib/types.js'

/** Scenario `id` lives in `./<id>.ts`; timeouts in seconds. */
const scenario = (number: number, id: string, title: string, full: number, quick: number): Scenario => ({
  id,
  number,
  title,
  timeout: { full, quick },
  run: async (cfg) => ((await import(`./${id}.js`)) as { run: NonNullable<Scenario['run']> }).run(cfg),
})

export const scenarios: Scenario[] = [
  scenario(1, 'exit-latency', 'Exit → JavaScript latency', 240, 40),
  // v1 on the host, then v2 in the VM guest (full runs: a TCG boot plus slower kills).
  scenario(2, 'oom-latency', 'OOM → JavaScript latency', 240, 30),
  scenario(3, 'scale', 'Scale: many sleeping processes, many watches', 180, 30),
  scenario(4, 'burst', 'Burst: every process killed at once', 150, 30),
  scenario(5, 'shutdown', 'Shutdown beyond the task’s own exit', 120, 30),
  scenario(6, 'footprint', 'Footprint: addon load time and size', 90, 30),
  scenario(7, 'host', 'Host-wide scale: 5,000 exits/s through the process events connector', 60, 30),
]
