// Reliability part 7: 100 tasks at a time for LIFEWATCH_STRESS_SECONDS (5 in npm test, 60 from
// `npm run reliability`), each spawned into a cgroup of its own (memory-limited, so the v1
// memory hierarchy is used too) and watched there, killed at a random moment in one of five
// ways, its cgroup deleted. Checked: every exit reported exactly once with the status the kill
// caused, every cgroup watch ended by exactly one `removed` and no OOM, every directory gone,
// fds (kernel and core counters) back to baseline, RSS growth within a stated bound.
import test from 'ava'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

import { Cgroup, cgroupLayout, Monitor, Task, type ExitEvent, type LifewatchEvent } from '../../src/index.js'
import { addedFds, baseline, coreInUse, isRoot, mismatch, report, rssKiB } from './helpers.js'

const SECONDS = Number(process.env.LIFEWATCH_STRESS_SECONDS ?? 5)
const CONCURRENT = 100
/** RSS growth allowed between the first second and the end (V8 heap and libuv included).
 *  Measured on the 2-core hybrid host, release addon, 60 s: +33 MiB over 17,136 tasks (and
 *  +78 MiB over 17,712 while the test still kept every event it received). */
const RSS_BOUND_KIB = 64 * 1024
const PARENT = `lifewatch-test-${process.pid}-stress`

if (!isRoot) console.log('stress.spec: SKIPPED: creating cgroups needs root')
const rooted = isRoot ? test.serial : test.serial.skip

/** How a task ends, and the exit status that way must give. */
type How = 'exit' | 'sigterm' | 'escalate' | 'cgroup.kill' | 'delete'
const HOWS: How[] = ['exit', 'sigterm', 'escalate', 'cgroup.kill', 'delete']

function script(how: How, code: number, ms: number): string {
  if (how === 'exit') return `sleep 0.0${ms % 10}; exit ${code}`
  // Ignores SIGTERM, so only the SIGKILL after the timeout ends it.
  if (how === 'escalate') return 'trap "" TERM; while :; do sleep 1; done'
  return 'exec sleep 30'
}

function statusOk(how: How, code: number, ev: ExitEvent): boolean {
  if (how === 'exit') return ev.exitCode === code && ev.signal === undefined
  if (how === 'sigterm') return ev.signal === 'SIGTERM'
  return ev.signal === 'SIGKILL'
}

/** Resolves once `pid` ignores SIGTERM (its shell ran `trap`): a TERM sent earlier would
 *  end it before the trap, which is not the escalation this plan tests. */
async function termIgnored(pid: number): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    const m = /^SigIgn:\s+([0-9a-f]+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    if (m && (BigInt(`0x${m[1]}`) & (1n << 14n)) !== 0n) return
    await new Promise((r) => setTimeout(r, 1))
  }
  throw new Error(`process ${pid} never ignored SIGTERM`)
}

/** Directories left under the stress parent, in every hierarchy. */
function leftovers(mounts: string[]): string[] {
  return mounts.flatMap((m) => {
    const d = join(m, PARENT)
    return existsSync(d) ? readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => join(d, e.name)) : []
  })
}

rooted(`stress: ${CONCURRENT} concurrent tasks in cgroups of their own, spawned and killed for ${SECONDS} s`, async (t) => {
  t.timeout((SECONDS + 90) * 1000)
  const layout = cgroupLayout()
  const mounts = [layout.unified?.mount, ...Object.values(layout.v1).map((h) => h.mount)].filter((m): m is string => !!m)
  const b = baseline()
  // The parent exists before any task's cgroup, so deleting a task's cgroup never removes it.
  const parent = Cgroup.create(PARENT)
  // On a failure midway: kill and remove what is left (a no-op after a passing run).
  t.teardown(async () => {
    const paths = new Set(leftovers(mounts).map((d) => `${PARENT}/${d.split('/').at(-1)}`))
    for (const p of paths) await Cgroup.open(p).delete({ kill: true }).catch(() => {})
    await parent.delete({ kill: true }).catch(() => {})
  })
  const exits = new Monitor() // spawns, reaps and reports the tasks' exits
  const watcher = new Monitor() // the OOM / cgroup watcher, as Platform's
  // Kept per watch: how many exits, and the cgroup events' types (`populated` with its value),
  // not the events themselves (a `removed` carries every counter and stat): RSS then measures
  // lifewatch, not this test's own records, which grow with the number of tasks.
  const seen = new Map<number, number>()
  const cgEvents = new Map<number, string[]>()
  const consume = async (m: Monitor, record: (ev: LifewatchEvent) => void) => {
    for await (const ev of m) record(ev)
  }
  const consumers = [
    consume(exits, (ev) => seen.set(ev.watch, (seen.get(ev.watch) ?? 0) + 1)),
    consume(watcher, (ev) => {
      const types = cgEvents.get(ev.watch) ?? []
      types.push(ev.type === 'populated' ? `populated:${ev.value}` : ev.type)
      cgEvents.set(ev.watch, types)
    }),
  ]
  const started = new Map<number, { how: How; code: number }>()
  const watches = new Map<number, string>()
  const wrong: string[] = []
  const counts = Object.fromEntries(HOWS.map((h) => [h, 0])) as Record<How, number>
  let rss0 = 0
  let n = 0
  let rnd = 12345
  const random = (k: number) => ((rnd = (rnd * 1103515245 + 12345) & 0x7fffffff) % k)
  const t0 = Date.now()
  const until = t0 + SECONDS * 1000

  // The first error stops every worker; all of them finish before the test fails with it,
  // so the cleanup never races a worker still creating cgroups.
  let failure: unknown
  async function worker(): Promise<void> {
    try {
      await work()
    } catch (e) {
      failure ??= e
    }
  }
  async function work(): Promise<void> {
    while (Date.now() < until && failure === undefined) {
      if (!rss0 && Date.now() - t0 > 1000) rss0 = rssKiB()
      const how = HOWS[random(HOWS.length)]
      const code = random(100)
      const path = `${PARENT}/t${n++}`
      const cg = Cgroup.create(path, { memory: '64M' })
      const w = watcher.watchCgroup(path)
      watches.set(w.id, path)
      const task = await Task.spawn('sh', ['-c', script(how, code, random(10))], { monitor: exits, cgroup: cg, stdio: 'ignore' })
      started.set(task.watch.id, { how, code })
      counts[how]++
      if (how !== 'exit') await new Promise((r) => setTimeout(r, random(30)))
      let ev: ExitEvent
      if (how === 'exit') ev = await task.wait()
      else if (how === 'sigterm') ev = (await task.kill('SIGTERM', { timeout: Infinity })).exit
      else if (how === 'escalate') {
        await termIgnored(task.pid)
        const k = await task.kill('SIGTERM', { timeout: 20 })
        if (!k.forced) wrong.push(`${path}: escalation not forced`)
        ev = k.exit
      } else if (how === 'cgroup.kill') {
        await cg.kill()
        ev = await task.wait()
      } else {
        await task.delete() // the cgroup's delete({ kill: true })
        ev = await task.wait()
      }
      if (!statusOk(how, code, ev)) wrong.push(`${path} (${how}${how === 'exit' ? ` ${code}` : ''}): ${JSON.stringify({ exitCode: ev.exitCode, signal: ev.signal })}`)
      await task.delete() // idempotent; removes the cgroup (and whatever the shell left in it)
    }
  }
  await Promise.all(Array.from({ length: CONCURRENT }, worker))
  if (failure !== undefined) {
    exits.close()
    watcher.close()
    throw failure
  }
  const elapsed = (Date.now() - t0) / 1000
  // Every event is queued before its Watch settles; `removed` follows the last rmdir (for a v1
  // memory cgroup, once the kernel has let go of it). Up to 30 s is allowed; one run missed or
  // doubled one removal in 18,107 with no cause found yet, so such a watch is named below.
  const settled = () => [...started.keys()].every((id) => seen.has(id)) && [...watches.keys()].every((id) => cgEvents.get(id)?.includes('removed'))
  const settling = Date.now()
  for (let i = 0; i < 1500 && !settled(); i++) await new Promise((r) => setTimeout(r, 20))
  t.log(`settled ${Date.now() - settling} ms after the last task`)
  exits.close()
  watcher.close()
  await Promise.all(consumers)
  await parent.delete()
  const lost = [...started.keys()].filter((id) => !seen.has(id)).length
  const duplicated = [...seen.values()].filter((count) => count > 1).length
  const removedOff = [...watches.keys()].filter((id) => (cgEvents.get(id) ?? []).filter((e) => e === 'removed').length !== 1)
  const removedLost = removedOff.length
  for (const id of removedOff.slice(0, 3)) t.log(`${watches.get(id)}: ${JSON.stringify(cgEvents.get(id) ?? [])}`)
  const ooms = [...cgEvents.values()].flat().filter((e) => e === 'oom').length
  // populated 1 -> 0 may coalesce into no change at all, but a watch never ends populated.
  const endedPopulated = [...cgEvents.values()].filter((types) => types.filter((e) => e.startsWith('populated:')).at(-1) === 'populated:true').length
  const left = leftovers(mounts)
  const grew = Math.max(0, rssKiB() - rss0)
  const perSecond = Math.round(started.size / elapsed)
  t.log(`${started.size} tasks in ${watches.size} cgroups in ${elapsed.toFixed(1)} s (${perSecond}/s), by way of ending ${JSON.stringify(counts)}`)
  t.log(`${lost} exits lost, ${duplicated} duplicated, ${wrong.length} wrong statuses, ${removedLost} removals lost or doubled, ${ooms} OOMs, rss +${grew} KiB`)
  for (const w of wrong.slice(0, 5)) t.log(w)
  t.true(started.size >= CONCURRENT, 'tasks ran')
  t.true(HOWS.every((h) => counts[h] > 0), 'every way of ending was used')
  t.is(lost, 0, 'no lost exit')
  t.is(duplicated, 0, 'no duplicated exit')
  t.is(seen.size, started.size, 'no exit for a watch never started')
  t.deepEqual(wrong, [], 'each status is the one the kill caused')
  t.is(removedLost, 0, 'every cgroup watch ended by exactly one removed event')
  t.is(ooms, 0, 'no OOM under a 64 MiB limit')
  t.is(endedPopulated, 0, 'no watch ended populated')
  t.deepEqual(left, [], 'every task cgroup directory is gone')
  t.false(mounts.some((m) => existsSync(join(m, PARENT))), 'the parent is gone')
  t.deepEqual(addedFds(b.table), [], 'no fd left open (/proc/self/fd)')
  t.deepEqual(coreInUse(), b.core, "the core's fd counters back to baseline")
  t.deepEqual(mismatch(b), {})
  t.true(grew <= RSS_BOUND_KIB, `RSS grew ${grew} KiB (bound ${RSS_BOUND_KIB} KiB)`)
  report({
    section: 'stress',
    case: `node: ${CONCURRENT} concurrent tasks in cgroups, ${SECONDS} s`,
    fdsLeaked: addedFds(b.table).length,
    eventsLost: lost + duplicated + removedLost,
    tasks: started.size,
    cgroups: watches.size,
    tasksPerSecond: perSecond,
    rssGrowthKiB: grew,
    rssBoundKiB: RSS_BOUND_KIB,
  })
})
