// Issue 6, part 7 (process part): 100 tasks at a time, spawned and killed concurrently for
// LIFEWATCH_STRESS_SECONDS (5 in npm test, 60 from `npm run reliability -- --long`): every
// exit reported exactly once, with the right status, no fd left and RSS within a bound.
// The cgroup part (tasks spawned into cgroups) plugs in with the cgroup manager.
import test from 'ava'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'

import { Monitor, type ExitEvent, type Watch } from '../../src/index.js'
import { baseline, mismatch, openFds, report, rssKiB } from './helpers.js'

const SECONDS = Number(process.env.LIFEWATCH_STRESS_SECONDS ?? 5)
const CONCURRENT = 100
/** RSS growth allowed between the first second and the end (V8 heap and libuv included). */
const RSS_BOUND_KIB = 64 * 1024

type Plan = { how: 'exit'; code: number } | { how: 'kill'; signal: 'SIGTERM' | 'SIGKILL' } | { how: 'escalate' }

test.serial(`stress: ${CONCURRENT} concurrent tasks spawned and killed for ${SECONDS} s`, async (t) => {
  t.timeout((SECONDS + 60) * 1000)
  const b = baseline()
  const monitor = new Monitor()
  const seen = new Map<number, ExitEvent[]>()
  const consumer = (async () => {
    for await (const ev of monitor) {
      if (ev.type !== 'exit') throw new Error(`unexpected event ${ev.type}`)
      seen.set(ev.watch, [...(seen.get(ev.watch) ?? []), ev])
    }
  })()
  const started = new Map<number, { plan: Plan; child: ChildProcess; w: Watch }>()
  let wrong = 0
  let rss0 = 0
  const t0 = Date.now()
  const until = t0 + SECONDS * 1000
  let rnd = 12345
  const random = (n: number) => ((rnd = (rnd * 1103515245 + 12345) & 0x7fffffff) % n)

  async function task(): Promise<void> {
    while (Date.now() < until) {
      if (!rss0 && Date.now() - t0 > 1000) rss0 = rssKiB()
      const r = random(4)
      const plan: Plan = r === 0 ? { how: 'exit', code: random(100) } : r === 1 ? { how: 'kill', signal: 'SIGTERM' } : r === 2 ? { how: 'kill', signal: 'SIGKILL' } : { how: 'escalate' }
      const script = plan.how === 'exit' ? `sleep 0.0${random(10)}; exit ${plan.code}` : plan.how === 'escalate' ? 'trap "" TERM; while :; do sleep 1; done' : 'exec sleep 30'
      const child = spawn('sh', ['-c', script], { stdio: 'ignore' })
      await once(child, 'spawn')
      const w = monitor.watchPid(child.pid!)
      started.set(w.id, { plan, child, w })
      let ev: ExitEvent
      if (plan.how === 'exit') ev = await w.wait()
      else {
        await new Promise((res) => setTimeout(res, random(30)))
        const k = await monitor.kill(w, plan.how === 'escalate' ? { signal: 'SIGTERM', timeout: 20 } : { signal: plan.signal })
        ev = k.exit
        if (plan.how === 'escalate' && !k.forced) wrong++
      }
      const expectOk =
        plan.how === 'exit' ? ev.exitCode === plan.code : plan.how === 'kill' ? ev.signal === plan.signal : ev.signal === 'SIGKILL'
      if (!expectOk) wrong++
      if (child.exitCode === null && child.signalCode === null) await once(child, 'exit')
    }
  }
  await Promise.all(Array.from({ length: CONCURRENT }, task))
  // Every exit event is queued before its Watch settles: wait for the consumer to catch up.
  for (let i = 0; i < 100 && [...started.keys()].some((id) => !seen.has(id)); i++) await new Promise((r) => setTimeout(r, 20))
  monitor.close()
  await consumer
  const lost = [...started.keys()].filter((id) => !seen.has(id)).length
  const duplicated = [...seen.values()].filter((evs) => evs.length > 1).length
  const grew = Math.max(0, rssKiB() - rss0)
  t.log(`${started.size} tasks in ${SECONDS} s: ${lost} lost, ${duplicated} duplicated, ${wrong} wrong statuses, rss +${grew} KiB`)
  t.true(started.size >= CONCURRENT, 'tasks ran')
  t.is(lost, 0, 'no lost exit')
  t.is(duplicated, 0, 'no duplicated exit')
  t.is(seen.size, started.size, 'no event for a watch never started')
  t.is(wrong, 0, 'each status is the one the plan caused')
  t.is(openFds(), b.fds, 'fds back to baseline')
  t.deepEqual(mismatch(b), {})
  t.true(grew <= RSS_BOUND_KIB, `RSS grew ${grew} KiB (bound ${RSS_BOUND_KIB} KiB)`)
  report({ section: 'stress', case: `node: ${CONCURRENT} concurrent tasks, ${SECONDS} s`, fdsLeaked: openFds() - b.fds, eventsLost: lost + duplicated, tasks: started.size, rssGrowthKiB: grew, rssBoundKiB: RSS_BOUND_KIB })
})
