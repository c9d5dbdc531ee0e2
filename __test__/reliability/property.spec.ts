// The property-based adversarial run: fast-check generates sequences of real operations — spawn
// puppets (tools/puppet.c) as Node children, non-children, monitor and cgroup spawns, tasks and
// platform tasks; watch, signal and kill them through every path with random grace periods (0,
// 2**31 ms, Infinity...); close or abort monitors and waits mid-wait; create, kill, wait on and
// delete cgroups (the v1 memory hierarchy where mounted); shut tasks down; terminate worker
// threads holding a monitor; try signals and kills as an unprivileged user (setpriv) — and a
// model (property/commands.ts) says what each must do. After each sequence everything left is
// killed and the invariants are checked: no unhandled rejection or uncaught exception, every
// exit reported once per watch with a status the sequence caused, every pending wait settled,
// no process left running or a zombie, fds back to the baseline (the core's counters and the
// /proc/self/fd set), no cgroup directory left.
//
//   LIFEWATCH_PROPERTY_OPS=n           operations to run at least (default 250; the full
//                                      `npm run reliability` runs 2,000)
//   LIFEWATCH_PROPERTY_MAX_COMMANDS=n  operations per sequence at most (default 40)
//   LIFEWATCH_PROPERTY_SHRINK_SECONDS  time given to shrinking a failure (default 20, so that a
//                                      failure in `npm test` stays short; the full reliability
//                                      run gives it 300)
//   LIFEWATCH_PROPERTY_VERBOSE=1       each sequence as it ends (stderr), and every one tried while
//                                      shrinking in the failure report
// A failure prints its seed, path and the commands' replay path, and how to replay it:
//   LIFEWATCH_PROPERTY_SEED=<seed> LIFEWATCH_PROPERTY_PATH=<path> LIFEWATCH_PROPERTY_REPLAY=<replay> \
//     npx ava __test__/reliability/property.spec.ts
// (the seed alone replays the whole run). Real processes race: a timing-dependent failure may
// need a few replays. Every run prints its seed first (so a crash of the test process leaves it).
import test from 'ava'
import fc from 'fast-check'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { Worker } from 'node:worker_threads'

import { Cgroup, kill, Monitor, Platform, shutdown, Task } from '../../src/index.js'
import { binding } from '../../src/native.js'
import { fixture as testFixture } from '../helpers.js'
import { fixture, have, isRoot, nodeArgv, report, tool } from './helpers.js'
import { allCommands, emptyModel, type Model, type Setup } from './property/commands.js'
import {
  Agent,
  alive,
  bounded,
  cgroupDirsLeft,
  cgroupMounts,
  children,
  codeOf,
  fdDiff,
  fdSnapshot,
  removeDirs,
  settle,
  Violation,
  World,
  zombies,
  type FdSnapshot,
} from './property/world.js'

const OPS = Number(process.env.LIFEWATCH_PROPERTY_OPS ?? 250)
const MAX_COMMANDS = Number(process.env.LIFEWATCH_PROPERTY_MAX_COMMANDS ?? 40)
const SHRINK_MS = Number(process.env.LIFEWATCH_PROPERTY_SHRINK_SECONDS ?? 20) * 1000
const SEED = process.env.LIFEWATCH_PROPERTY_SEED === undefined ? Date.now() ^ (process.pid << 16) : Number(process.env.LIFEWATCH_PROPERTY_SEED)
const PATH = process.env.LIFEWATCH_PROPERTY_PATH
const REPLAY = process.env.LIFEWATCH_PROPERTY_REPLAY
const VERBOSE = process.env.LIFEWATCH_PROPERTY_VERBOSE === '1'

// A full collection on demand (the test process does not run with --expose-gc).
setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

interface Ctx {
  base: FdSnapshot
  unhandled: string[]
  mounts: string[]
}

/**
 * Ends what the sequence left running and checks the invariants; returns what failed. Leaves
 * nothing behind either way, so the next sequence starts from the baseline.
 */
async function teardown(m: Model, w: World, ctx: Ctx): Promise<string[]> {
  const problems: string[] = []
  const guard = async (what: string, p: Promise<unknown>, ms = 10_000) => {
    try {
      await bounded(p, ms, what)
    } catch (e) {
      problems.push(e instanceof Violation ? e.message : `${what}: ${codeOf(e)}`)
    }
  }
  // 1. Every process ends by SIGKILL now (so that is in every fate), cgroups with their members.
  for (const [i, p] of w.procs.entries()) {
    if (!m.procs[i].fate.includes('SIGKILL')) m.procs[i].fate.push('SIGKILL')
    w.killProc(p)
  }
  for (const c of w.cgs) await guard(`deleting cgroup ${c.path}`, c.cg.delete({ kill: true, timeout: 5000 }))
  const running = await settle(5000, () => w.procs.filter((p) => alive(p.pid, p.start)).map((p) => p.pid))
  if (running.length) problems.push(`still running 5 s after SIGKILL: ${running.join(', ')}`)

  // 2. Every pending operation settles (each judged its own outcome).
  for (const p of w.pendings) await guard(p.what, p.done)

  // 3. Watches on monitors still open: each exit arrives; each cgroup watch ends with `removed`.
  for (const [k, rec] of w.watches.entries()) {
    if (m.watches[k].live) await guard(`the exit of watch ${k} (pid ${rec.watch.pid})`, rec.watch.wait(), 5000)
  }
  for (const [k, rec] of w.cgWatches.entries()) {
    if (m.cgWatches[k].live) await guard(`the removal seen by cgroup watch ${k}`, rec.watch.removed(), 5000)
  }
  // Events of iterated monitors follow the waits: each exit once, and only for its own watch.
  for (const [mon, rec] of w.mons.entries()) {
    if (!rec.consumer) continue
    const mine = w.watches.map((x, k) => [x, k] as const).filter(([x]) => x.mon === mon)
    const lost = await settle(2000, () => mine.filter(([x, k]) => m.watches[k].live && !rec.events.some((e) => e.type === 'exit' && e.watch === x.watch.id)))
    for (const [x, k] of lost) problems.push(`monitor ${mon}: exit of watch ${k} (pid ${x.watch.pid}) never delivered by its iterator`)
    const ids = new Set(mine.map(([x]) => x.watch.id))
    const cgIds = new Set(w.cgWatches.filter((x) => x.mon === mon).map((x) => x.watch.id))
    const seen = new Map<number, number>()
    for (const e of rec.events) {
      if (e.type === 'exit') {
        seen.set(e.watch, (seen.get(e.watch) ?? 0) + 1)
        // A kill by PID watches the PID for the call when no watch of it was there.
        const own = ids.has(e.watch) || rec.killedPids?.has(e.pid)
        if (!own) problems.push(`monitor ${mon}: exit of pid ${e.pid} for watch id ${e.watch}, which it never made`)
        const proc = w.procs.findIndex((p) => p.pid === e.pid)
        if (proc >= 0) w.observe(proc, `monitor ${mon}'s iterator`, e, rec.fallback)
      } else if (e.type === 'error') problems.push(`monitor ${mon}: error event ${codeOf(e.error)}: ${e.error.message}`)
      else if (!cgIds.has(e.watch)) problems.push(`monitor ${mon}: ${e.type} event for watch id ${e.watch}, not a cgroup watch of it`)
    }
    for (const [id, n] of seen) if (n > 1) problems.push(`monitor ${mon}: exit of watch id ${id} delivered ${n} times`)
    for (const x of w.cgWatches.filter((x) => x.mon === mon)) {
      const removed = rec.events.filter((e) => e.type === 'removed' && e.watch === x.watch.id).length
      const after = rec.events.findIndex((e) => e.type === 'removed' && e.watch === x.watch.id)
      if (removed > 1) problems.push(`monitor ${mon}: cgroup watch ${x.watch.id} removed ${removed} times`)
      if (after >= 0 && rec.events.slice(after + 1).some((e) => e.watch === x.watch.id)) problems.push(`monitor ${mon}: events for cgroup watch ${x.watch.id} after its removal`)
    }
  }

  // 4. Every task knows its exit, whatever happened to its monitor.
  for (const [k, t] of w.tasks.entries()) {
    await guard(`task ${k} (pid ${t.task.pid}) wait()`, t.task.wait().then((ev) => w.observe(t.proc, `task ${k} at teardown`, ev, t.unknownOk)), 5000)
  }

  // 5. Close the rest: workers, tasks' cgroups (idempotent deletes), platforms, monitors.
  for (const [k, x] of w.workers.entries()) await guard(`terminating worker ${k}`, x.terminate())
  for (const [k, t] of w.tasks.entries()) if (!t.platform) await guard(`task ${k} delete()`, t.task.delete())
  for (const [k, p] of w.platforms.entries()) await guard(`closing platform ${k}`, p.close())
  for (const [k, rec] of w.mons.entries()) {
    rec.monitor.close()
    if (m.mons[k].state !== 'closed') m.mons[k].state = 'closed'
    if (rec.consumer) await guard(`monitor ${k}'s iterator ending`, rec.consumer, 5000)
    const aborted = m.mons[k].aborted
    if (rec.loopError !== undefined && !(aborted && codeOf(rec.loopError) === 'ABORT')) problems.push(`monitor ${k}'s iterator threw ${codeOf(rec.loopError)}`)
    if (aborted && rec.consumer && codeOf(rec.loopError) !== 'ABORT') problems.push(`monitor ${k} was aborted, but its iterator ended with ${codeOf(rec.loopError)}`)
  }
  for (const w2 of m.watches) w2.live = false
  for (const w2 of m.cgWatches) w2.live = false

  // 6. Nothing unhandled (rejections surface a turn or two after the fact).
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r))
  problems.push(...w.violations.splice(0))
  problems.push(...ctx.unhandled.splice(0).map((u) => `unhandled: ${u}`))

  // 7. Every exit seen has a status the sequence caused, and all agree.
  for (const [i, p] of w.procs.entries()) {
    const fate = m.procs[i].fate
    const known = p.observed.filter((o) => o.status !== 'unknown')
    for (const o of p.observed) {
      if (o.status === 'unknown' && !o.unknownOk) problems.push(`pid ${p.pid} (${p.kind}): ${o.via} reported an exit without a status`)
      else if (o.status !== 'unknown' && !fate.includes(o.status)) problems.push(`pid ${p.pid} (${p.kind}): ${o.via} reported ${o.status}; the sequence could cause only ${fate.join(' or ')}`)
    }
    const distinct = [...new Set(known.map((o) => o.status))]
    if (distinct.length > 1) problems.push(`pid ${p.pid} (${p.kind}): exits disagree: ${known.map((o) => `${o.via}: ${o.status}`).join(', ')}`)
  }

  // 8. No process of ours left, running or a zombie.
  const strays = await settle(3000, () => children().filter((c) => !c.endsWith(' Z')))
  if (strays.length) {
    problems.push(`children left: ${strays.join(', ')}`)
    // Killed, so that the next sequence starts clean (our unreaped children keep their PIDs).
    for (const c of strays) process.kill(Number(c.split(' ')[0]), 'SIGKILL')
  }
  const z = await settle(3000, zombies)
  if (z.length) {
    problems.push(`zombie children: ${z.join(', ')}`)
    // Reaped here, so that the next sequence (a shrunk one) starts clean.
    binding.reapZombies(z.map((x) => Number(x.split(' ')[0])))
  }

  // 9. No cgroup directory left.
  const dirs = w.cgs.flatMap((c) => cgroupDirsLeft(ctx.mounts, c.path))
  if (dirs.length) {
    problems.push(`cgroup directories left: ${dirs.join(', ')}`)
    await removeDirs(dirs)
  }

  // 10. fds back to the baseline (closing a pipe to a dead child may take a turn or two).
  const fds = await settle(3000, () => fdDiff(ctx.base, fdSnapshot()))
  if (fds.length) {
    problems.push(`fds not back to the baseline: ${fds.join('; ')}`)
    // What nothing references any more is freed by its finalizer: collected here so that the
    // next sequence (a shrunk one) starts from the baseline; what is still open after that is
    // the new baseline, so that only a sequence that leaks again fails.
    const left = await settle(3000, () => {
      gc()
      return fdDiff(ctx.base, fdSnapshot())
    })
    if (left.length) ctx.base = fdSnapshot()
  }
  return problems
}

/** One pass over every kind of operation, so that what Node opens once for good (its SIGCHLD
 *  pipe, a worker's first start) is in the baseline. */
async function warmUp(s: Setup): Promise<void> {
  const monitor = new Monitor()
  const puppet = () => spawn(s.puppet, ['0', '0'], { stdio: 'ignore' })
  const c = puppet()
  monitor.watchPid(c.pid!)
  const worker = new Worker(s.workerBoot, { workerData: { pid: c.pid, script: s.workerScript } })
  await once(worker, 'message')
  await worker.terminate()
  await kill(c.pid!, { killSignal: 'SIGKILL' })
  const cg = Cgroup.create(`${s.parent}/warm`, { memory: '64M' })
  const sw = cg.spawn(s.puppet, ['0', '0'], { monitor, stdio: 'ignore' })
  await cg.delete({ kill: true })
  await sw.wait()
  const task = await Task.spawn(s.puppet, ['0', '0'], { monitor, stdio: 'ignore' })
  await shutdown(task, { killTimeout: 0 })
  const platform = new Platform()
  const t2 = await platform.spawn(s.puppet, ['0', '0'], { monitor, cgroupPath: `${s.parent}/warm2`, stdio: 'ignore' })
  await shutdown(t2, { killTimeout: 0, platform })
  const sh = spawn('sh', ['-c', 'true & wait'], { stdio: 'ignore' })
  await once(sh, 'exit')
  if (s.agent) await s.agent.ask({ op: 'signal', pid: 1 })
  monitor.close()
}

const why = !isRoot ? 'needs root (cgroups, a setpriv user, signals to its own processes only)' : !have('cc') ? 'needs a C compiler for tools/puppet.c' : undefined
if (why) console.log(`property.spec: SKIPPED: ${why}`)
;(why ? test.serial.skip : test.serial)('property: random sequences of real operations keep every invariant', async (t) => {
  // Printed first: if the test process itself dies, the seed replays the run.
  console.error(`property.spec: seed ${SEED}${PATH ? `, path ${PATH}` : ''}, at least ${OPS} operations`)
  t.timeout(Math.max(120_000, OPS * 1000) + SHRINK_MS, 'about 100 ms per operation with teardowns, with room; plus shrinking')
  const unhandled: string[] = []
  const onRejection = (e: unknown) => unhandled.push(`rejection ${codeOf(e)}${e instanceof Error && e.stack ? `\n${e.stack}` : ''}`)
  const onException = (e: unknown) => unhandled.push(`exception ${codeOf(e)}${e instanceof Error && e.stack ? `\n${e.stack}` : ''}`)
  process.on('unhandledRejection', onRejection)
  process.on('uncaughtException', onException)

  const parent = `lifewatch-test-${process.pid}-prop`
  const parentCg = Cgroup.create(parent)
  let agent: Agent | undefined
  let agentWhy: string | undefined
  if (!have('setpriv')) agentWhy = 'setpriv(1) not found: no unprivileged operations'
  else {
    agent = new Agent(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '--expose-gc', ...nodeArgv(fixture('unprivileged-agent.ts')).slice(1)], { ...process.env, HOME: '/tmp' })
    agent.baseInUse = (await bounded(agent.ask({ op: 'noop' }), 60_000, 'the unprivileged agent starting')).inUse
  }
  if (agentWhy) {
    t.log(`SKIPPED: ${agentWhy}`)
    console.log(`property.spec: SKIPPED: ${agentWhy}`)
  }
  const setup: Setup = {
    puppet: tool('puppet'),
    parent,
    agent,
    agentWhy,
    workerBoot: testFixture('boot.mjs'),
    workerScript: testFixture('worker.ts'),
  }
  const mounts = cgroupMounts()
  const t0 = performance.now()
  let ops = 0
  let sequences = 0
  let failing = false
  let shrinkStart = 0
  let lastProblems: string[] = []
  try {
    await warmUp(setup)
    // The baseline: what this process holds between sequences (the agent's pipes included).
    await new Promise((r) => setTimeout(r, 200))
    const ctx: Ctx = {
      base: fdSnapshot(),
      unhandled,
      mounts,
    }
    unhandled.length = 0
    const cmds = fc.commands(allCommands(setup), { maxCommands: MAX_COMMANDS, size: 'max', replayPath: REPLAY })
    const property = fc.asyncProperty(cmds, async (list) => {
      // Enough operations ran: stop (fast-check counts the run interrupted, not failed). A
      // failure being shrunk goes on, within its time.
      if (!failing && !PATH && ops >= OPS) throw new fc.PreconditionFailure(true)
      if (failing && performance.now() - shrinkStart > SHRINK_MS) throw new fc.PreconditionFailure(true)
      const w = new World(sequences++, mounts)
      const m = emptyModel()
      // Each sequence starts with one open, iterated monitor.
      const first = { monitor: new Monitor(), fallback: false, events: [] }
      w.mons.push(first)
      m.mons.push({ state: 'open', aborted: false, abortable: false })
      w.consume(first)
      let error: unknown
      try {
        await fc.asyncModelRun(() => ({ model: m, real: w }), list)
      } catch (e) {
        error = e
      }
      const problems = await teardown(m, w, ctx)
      if (VERBOSE) {
        const all = [...(error !== undefined ? [String(error)] : []), ...problems]
        console.error(`property.spec: sequence ${w.seq}: ${w.ops} operations, ${all.length} problem(s): ${[...list].map(String).join(', ')}${all.map((p) => `\n  ${p}`).join('')}`)
      }
      ops += w.ops
      if (error !== undefined || problems.length) {
        if (!failing) shrinkStart = performance.now()
        failing = true
        lastProblems = [...(error !== undefined ? [error instanceof Error ? error.message : String(error)] : []), ...problems]
        throw new Violation(lastProblems.join('\n'))
      }
    })
    const details = await fc.check(property, { seed: SEED, path: PATH, numRuns: PATH ? 1 : 1_000_000, endOnFailure: false, verbose: VERBOSE ? 2 : 1 })
    const seconds = ((performance.now() - t0) / 1000).toFixed(1)
    t.log(`seed ${details.seed}: ${ops} operations in ${sequences} sequences, ${seconds} s${details.numShrinks ? `, ${details.numShrinks} shrinks` : ''}`)
    if (details.failed) {
      const replay = /replayPath="([^"]*)"/.exec(String(details.counterexample?.[0] ?? ''))?.[1]
      const how = `LIFEWATCH_PROPERTY_SEED=${details.seed} LIFEWATCH_PROPERTY_PATH=${details.counterexamplePath}${replay ? ` LIFEWATCH_PROPERTY_REPLAY='${replay}'` : ''} npx ava __test__/reliability/property.spec.ts`
      t.log(fc.defaultReportMessage(details))
      console.error(`property.spec: failing seed ${details.seed}, path ${details.counterexamplePath}; replay with:\n  ${how}`)
      t.fail(`a sequence broke an invariant (seed ${details.seed}, path ${details.counterexamplePath}); replay with: ${how}\n${lastProblems.join('\n')}`)
    } else {
      t.true(ops >= OPS || PATH !== undefined, `${ops} operations ran (wanted ${OPS})`)
    }
    report({
      section: 'property',
      case: `fast-check model run, seed ${details.seed}`,
      fdsLeaked: details.failed ? lastProblems.filter((p) => p.startsWith('fds not back')).length : 0,
      eventsLost: details.failed ? lastProblems.filter((p) => p.includes('never delivered')).length : 0,
      operations: ops,
      sequences,
      seed: details.seed,
      seconds: Number(seconds),
      ...(agentWhy ? { skipped: agentWhy } : {}),
    })
  } finally {
    process.off('unhandledRejection', onRejection)
    process.off('uncaughtException', onException)
    await agent?.stop()
    await removeDirs(mounts.map((mnt) => `${mnt}/${parent}`).filter((d) => existsSync(d)))
    await parentCg.delete().catch(() => {})
  }
})
