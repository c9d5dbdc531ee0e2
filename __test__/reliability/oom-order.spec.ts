// OOM before exit, under CPU contention: one monitor watches a memory cgroup and the hog it
// spawns into it (the documented Cgroup example), run after run while busy loops keep every
// CPU contended. The `oom` event must come before the hog's `exit` and be stamped no later.
// LIFEWATCH_OOM_RUNS sets the number of runs (npm run reliability: 1,000; npm test: 100).
import { spawn } from 'node:child_process'
import { availableParallelism, loadavg } from 'node:os'

import test from 'ava'

import { Cgroup, cgroupLayout, Monitor, type ExitEvent, type OomEvent } from '../../src/index.js'
import { reaped } from '../helpers.js'
import { isRoot, report } from './helpers.js'

const runs = Number(process.env.LIFEWATCH_OOM_RUNS ?? 100)
const layout = cgroupLayout()
const why = !isRoot ? 'needs root to create cgroups' : !layout.v1.memory && !layout.unified ? 'no memory cgroup hierarchy' : undefined
if (why) console.log(`oom-order.spec: SKIPPED: ${why}`)

interface Run {
  oom?: OomEvent
  exit?: ExitEvent
  /** Events up to the exit, in delivery order. */
  order: string[]
}

/** One hog in its own cgroup, watched with the cgroup by one monitor; the events it got. */
async function once(name: string): Promise<Run> {
  const cg = Cgroup.create(name, { memory: '16M', swap: 0 })
  const monitor = new Monitor()
  const run: Run = { order: [] }
  try {
    const w = monitor.watchCgroup(cg.path, { oom: true })
    const hog = cg.spawn('tail', ['/dev/zero'], { monitor, stdio: 'ignore' })
    let late = setTimeout(() => monitor.close(), 20_000)
    for await (const ev of monitor) {
      if (ev.watch === w.id && ev.type === 'oom') {
        run.oom ??= ev
        run.order.push('oom')
      } else if (ev.watch === hog.id && ev.type === 'exit') {
        run.exit = ev
        run.order.push('exit')
        // An OOM that comes after the exit is still waited for (a wrong order, not a lost one).
        clearTimeout(late)
        late = setTimeout(() => monitor.close(), 1000)
      }
      if (run.oom && run.exit) break
    }
    clearTimeout(late)
  } finally {
    monitor.close()
    await cg.delete({ kill: true })
  }
  return run
}

;(why ? test.skip : test.serial)(`OOM before exit under CPU contention: ${runs} runs, order and time`, async (t) => {
  t.timeout(30 * 60_000)
  const busy = Array.from({ length: availableParallelism() * 2 }, () => spawn('sh', ['-c', 'while :; do :; done'], { stdio: 'ignore' }))
  const base = `lw-oom-order-${process.pid}`
  const bad: string[] = []
  let ordered = 0
  let timed = 0
  const load: number[] = []
  try {
    for (let i = 0; i < runs; i++) {
      const r = await once(`${base}/r${i}`)
      if (i % 10 === 0) load.push(loadavg()[0])
      const first = r.order[0] === 'oom' && r.exit !== undefined
      const stamp = r.oom !== undefined && r.exit !== undefined && r.oom.time <= r.exit.time
      if (first) ordered++
      if (stamp) timed++
      if (!first || !stamp || r.exit?.signal !== 'SIGKILL' || !(r.oom!.kills >= 1)) {
        bad.push(`run ${i}: ${r.order.join(' > ') || 'nothing'}, exit ${r.exit?.signal ?? r.exit?.exitCode}, oom ${r.oom ? `${r.oom.kills} kill(s), ${Number(r.oom.time - (r.exit?.time ?? 0n)) / 1e6} ms vs the exit` : 'none'}`)
      }
    }
  } finally {
    for (const b of busy) b.kill('SIGKILL')
    await Promise.all(busy.map(reaped))
  }
  const avg = load.length ? (load.reduce((a, b) => a + b, 0) / load.length).toFixed(1) : '?'
  t.deepEqual(bad, [], `${bad.length} of ${runs} runs broke the order`)
  t.is(ordered, runs)
  t.is(timed, runs)
  const observed = `${ordered}/${runs} oom first, ${timed}/${runs} oom.time <= exit.time, load average ${avg} (${busy.length} busy loops on ${availableParallelism()} CPUs)`
  t.log(observed)
  report({ section: 'adversarial', case: t.title, expected: `oom before exit and stamped no later, ${runs} of ${runs}`, observed, runs, fdsLeaked: 0, eventsLost: runs - ordered })
})
