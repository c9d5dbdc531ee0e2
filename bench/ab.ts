// A/B of exit → JS latency between builds of lifewatch, for profiling a change: each tree (a
// checkout with its addon built, e.g. a `git worktree`) is loaded into this one process, and
// every round times one non-child exit per tree and one for the JS floor, in a shuffled order.
// Each tree is compared with the first one round by round (paired), which resolves
// differences of a few µs that separate runs, minutes apart on a shared machine, do not.
//
//   node --import tsx bench/ab.ts <tree> [<tree>...] [--rounds N]
//
// A tree may be given twice: the same build in two places measures the method's own bias.
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'

import { exited, jsFloor, spawnNonChild, StampFile } from './lib/natives.js'
import { percentile, shuffled, summarize } from './lib/stats.js'

interface WatchLike {
  wait(): Promise<unknown>
}
interface MonitorLike {
  watchPid(pid: number): WatchLike
  close(): unknown
}

const args = process.argv.slice(2)
const at = args.indexOf('--rounds')
const rounds = at >= 0 ? Number(args.splice(at, 2)[1]) : 500
if (args.length === 0 || !Number.isInteger(rounds) || rounds < 10) {
  console.error('usage: node --import tsx bench/ab.ts <tree> [<tree>...] [--rounds N ≥ 10]')
  process.exit(2)
}
const trees = args.map((t) => resolve(t))
const monitors: MonitorLike[] = []
for (const t of trees) {
  const { Monitor } = (await import(pathToFileURL(`${t}/src/index.ts`).href)) as { Monitor: new () => MonitorLike }
  monitors.push(new Monitor())
}
const floor = jsFloor()
const stamps = new StampFile((trees.length + 1) * rounds + 16)
const now = () => process.hrtime.bigint()

/** µs from the dying process's stamp to the observer, per round: index 0 the floor, then one per tree. */
const samples: number[][] = Array.from({ length: trees.length + 1 }, () => [])
async function sample(who: number): Promise<number> {
  const d = await spawnNonChild(stamps)
  const arrived =
    who === 0
      ? new Promise<bigint>((r) => floor.watchExit(d.pid, () => r(now())))
      : monitors[who - 1]!.watchPid(d.pid).wait().then(() => now())
  d.trigger()
  const t = await arrived
  await exited(d.parent)
  return Number(t - stamps.read(d.slot)) / 1000
}
try {
  for (let r = 0; r < rounds; r++) {
    const order = shuffled(samples.map((_, i) => i))
    for (const who of order) samples[who]!.push(await sample(who))
  }
} finally {
  for (const m of monitors) m.close()
  stamps.close()
}

const f = summarize(samples[0]!)
console.log(`${rounds} rounds; non-child exits; µs from the exit's stamp to JS`)
console.log(`JS floor: p50 ${f.p50.toFixed(1)}, p99 ${f.p99.toFixed(1)}`)
trees.forEach((t, i) => {
  const s = summarize(samples[i + 1]!)
  const p90 = percentile([...samples[i + 1]!].sort((a, b) => a - b), 90)
  const over = (us: number) => samples[i + 1]!.filter((x) => x > us).length
  let line = `${t}: p50 ${s.p50.toFixed(1)} (${(s.p50 / f.p50).toFixed(3)}× the floor), p90 ${p90.toFixed(1)}, p99 ${s.p99.toFixed(1)}, over 300/500 µs: ${over(300)}/${over(500)}`
  if (i > 0) {
    const diff = samples[i + 1]!.map((x, k) => x - samples[1]![k]!)
    const faster = diff.filter((x) => x < 0).length / diff.length
    line += `; paired with the first: median ${summarize(diff).p50.toFixed(1)} µs, faster in ${(faster * 100).toFixed(0)}% of rounds`
  }
  console.log(line)
})
