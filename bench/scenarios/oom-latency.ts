// Scenario 2: OOM → JavaScript latency, on both cgroup layouts. A hog allocates and touches
// memory in a 32 MiB memory cgroup (swap 0) until the OOM killer ends it, storing
// CLOCK_MONOTONIC ns into a shared page after every touched page (far more often than every
// 1 ms). Every peer observes the same kill; latency = the observer's CLOCK_MONOTONIC on
// arrival − the hog's last heartbeat. v1 runs on the host; v2 runs on the host when it has a
// v2 memory controller, else in the QEMU guest of scripts/vm (full runs only).
import { layoutMissing, measureOom, type OomLayout, type OomSamples } from '../lib/oom-measure.js'
import { oomReport, oomSkipped, type OomPlace } from '../lib/oom-report.js'
import type { ScenarioConfig, ScenarioOutput } from '../lib/types.js'
import { runInVm } from '../lib/vm.js'

type Part = ReturnType<typeof oomReport>

/** One run's bound: a hog fills 32 MiB in well under a second on the host, seconds under TCG. */
const RUN_TIMEOUT_MS = { host: 10_000, vm: 30_000 }

async function onHost(layout: OomLayout, runs: number): Promise<Part> {
  return oomReport(await measureOom(layout, runs, 1, RUN_TIMEOUT_MS.host), 'host')
}

/** The v2 half in the VM guest: skipped (with the reason) when the kit cannot run here. */
async function inVm(runs: number): Promise<{ part: Part; wallS: number }> {
  process.stderr.write('  oom-latency v2: booting the VM guest (scripts/vm/run.sh)\n')
  // 1 GiB: the initramfs (node alone is ~100 MB) lives in guest RAM beside node and the hog.
  const vm = await runInVm('bench/vm/oom-v2.ts', [JSON.stringify({ runs, warmup: 1, timeoutMs: RUN_TIMEOUT_MS.vm })], {
    memMb: 1024,
    timeoutS: 60 + runs * 5,
  })
  process.stderr.write(`  oom-latency v2: VM ${vm.ok ? 'done' : vm.skipped ? 'skipped' : 'failed'} in ${vm.wallS.toFixed(1)} s${vm.ok ? '' : `: ${vm.reason}`}\n`)
  if (vm.ok) return { part: oomReport(vm.result as OomSamples, 'vm', vm.accel), wallS: vm.wallS }
  const part = oomSkipped('v2', 'vm', vm.skipped ? vm.reason : `failed: ${vm.reason}`)
  // A failure is not a skip: it must show as a goal not met.
  if (!vm.skipped) part.goals[0]!.met = false
  return { part, wallS: vm.wallS }
}

export async function run(cfg: ScenarioConfig): Promise<ScenarioOutput> {
  // 40 kills: the kernel's time from the OOM to its counted kill varies from kill to kill
  // (0.3–2.5 ms here), and the p50 of 20 moved by a quarter from run to run.
  const runs = cfg.rounds ?? (cfg.quick ? 3 : 40)
  const parts: Part[] = []
  let vmWallS: number | undefined
  const v1Missing = layoutMissing('v1')
  parts.push(v1Missing ? oomSkipped('v1', 'host', v1Missing) : await onHost('v1', runs))
  let v2Place: OomPlace = 'host'
  if (!layoutMissing('v2')) parts.push(await onHost('v2', runs))
  else if (cfg.quick) {
    v2Place = 'vm'
    const why = 'not in --quick runs (booting the VM with node takes ~15 s under TCG, a quarter of the 1 min budget, before any kill)'
    process.stderr.write(`  oom-latency v2: ${why}\n`)
    parts.push(oomSkipped('v2', 'vm', why))
  } else {
    v2Place = 'vm'
    const vm = await inVm(runs)
    vmWallS = vm.wallS
    parts.push(vm.part)
  }
  return {
    tables: parts.flatMap((p) => p.tables),
    goals: parts.flatMap((p) => p.goals),
    notes: [
      ...parts.flatMap((p) => p.notes),
      'Heartbeat: the hog stores CLOCK_MONOTONIC after every 4 KiB page it touches; the last one precedes the page fault that ran into the limit, so every row includes the kernel’s reclaim attempts before the kill.',
      "lifewatch 'oom' event: monitor.watchCgroup(path, { oom: true }) → waitFor(oom) (v1: eventfd on memory.oom_control; v2: inotify on memory.events). lifewatch 'exit' of the hog: the Watch of Cgroup.spawn (SIGKILL exit).",
      ...(vmWallS === undefined ? [] : [`The v2 half ran in the VM guest: ${vmWallS.toFixed(1)} s wall from transpiling and booting to power-off.`]),
    ],
    distributions: Object.assign({}, ...parts.map((p) => p.distributions)),
    data: { v1: parts[0]!.data, v2: parts[1]!.data, v2Place, vmWallS },
  }
}
