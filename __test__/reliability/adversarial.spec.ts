// The adversarial cases: what a demanding user tried and lifewatch once got wrong. Each test
// reports its case with what was expected and what was observed, for the "adversarial" table
// of `npm run reliability`.
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { dirname } from 'node:path'

import test, { type ExecutionContext } from 'ava'

import { Cgroup, fdStats, Monitor, monotonicTime, Platform, shutdown, Task } from '../../src/index.js'
import { reaped } from '../helpers.js'
import { fixture, have, isRoot, lastJson, nodeArgv, report, run, tool } from './helpers.js'

/** Records the case for the table once its assertions passed. */
function observed(t: ExecutionContext, expected: string, observed: string): void {
  t.log(`${expected} :: ${observed}`)
  report({ section: 'adversarial', case: t.title, expected, observed, fdsLeaked: 0, eventsLost: 0 })
}

/** A shell that ignores SIGTERM; resolves once its trap is in place. */
async function stubborn(extra = 'while :; do sleep 1; done') {
  const child = spawn('sh', ['-c', `trap "" TERM; echo ready; ${extra}`], { stdio: ['ignore', 'pipe', 'ignore'] })
  await new Promise((r) => child.stdout.once('data', r))
  return child
}

const noUnpriv = !isRoot || !have('setpriv') ? 'needs root and setpriv(1) to drop to an unprivileged user' : undefined
if (noUnpriv) console.log(`adversarial.spec: SKIPPED: refused signals: ${noUnpriv}`)
;(noUnpriv ? test.skip : test)('a refused signal rejects the caught call and nothing else: no unhandled rejection, no watch left', async (t) => {
  const r = await run(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', ...nodeArgv(fixture('refused-signal.ts'))], {
    env: { HOME: '/tmp' },
  })
  t.is(r.code, 0, r.stderr)
  const out = lastJson<Record<string, unknown>>(r.stdout)
  t.deepEqual(out, { oneShotKill: 'ERR_PERMISSION', monitorKill: 'ERR_PERMISSION', watchesAfter: 0, shutdownAttached: 'ERR_PERMISSION', unhandled: [] })
  observed(t, 'ERR_PERMISSION x3, 0 watches, 0 unhandled, exit 0', `${JSON.stringify(out)}, exit ${r.code}`)
})

test('shutdown with stepTimeout 0 still sends SIGKILL after killTimeout and confirms the exit or says it cannot', async (t) => {
  const monitor = new Monitor()
  const child = await stubborn()
  const task = Task.attach(child.pid!, { monitor })
  const t0 = Date.now()
  const outcome = await shutdown(task, { monitor, stepTimeout: 0, killTimeout: 300 }).then(
    (r) => ({ ok: true as const, r }),
    (e: { result: { forced: boolean; killed: boolean; running: boolean } }) => ({ ok: false as const, r: e.result }),
  )
  const ms = Date.now() - t0
  await reaped(child)
  t.is(child.signalCode, 'SIGKILL', 'SIGKILL was sent')
  t.true(ms >= 290, `SIGKILL after the 300 ms grace, not before (${ms} ms)`)
  t.true(outcome.r.forced)
  t.true(outcome.r.killed)
  // With no time to confirm, the call may only succeed when the exit was already seen.
  t.is(outcome.ok, !outcome.r.running)
  observed(t, 'SIGKILL at 300 ms; forced; resolved iff the exit was seen', `${child.signalCode} at ${ms} ms; forced ${outcome.r.forced}; ${outcome.ok ? 'resolved' : 'rejected'}, running ${outcome.r.running}`)
})

test('a kill timeout of 2**31 ms never escalates early (Node clamps such timers to 1 ms)', async (t) => {
  const monitor = new Monitor()
  // Cleans up for 400 ms after SIGTERM, then exits 3.
  const child = spawn('sh', ['-c', 'trap "sleep 0.4; exit 3" TERM; echo ready; while :; do sleep 0.05; done'], { stdio: ['ignore', 'pipe', 'ignore'] })
  await new Promise((r) => child.stdout.once('data', r))
  const { exit, forced } = await monitor.kill(child.pid!, { timeout: 2 ** 31 })
  monitor.close()
  t.false(forced)
  t.is(exit.exitCode, 3)
  observed(t, 'exit 3 after its own cleanup, not forced', `exitCode ${exit.exitCode}, forced ${forced}`)
})

test('shutdown with killTimeout 2**31 ms waits for the exit, not 5 ms', async (t) => {
  const monitor = new Monitor()
  const child = spawn('sh', ['-c', 'trap "sleep 0.4; exit 4" TERM; echo ready; while :; do sleep 0.05; done'], { stdio: ['ignore', 'pipe', 'ignore'] })
  await new Promise((r) => child.stdout.once('data', r))
  const task = Task.attach(child.pid!, { monitor })
  const r = await shutdown(task, { monitor, killTimeout: 2 ** 31 })
  t.false(r.forced)
  t.is(r.exit?.exitCode, 4)
  observed(t, 'resolved with exit 4, not forced', `exitCode ${r.exit?.exitCode}, forced ${r.forced}`)
})

const noCgroups = !isRoot ? 'needs root to create cgroups' : undefined
if (noCgroups) console.log(`adversarial.spec: SKIPPED: throwing listeners: ${noCgroups}`)
;(noCgroups ? test.skip : test)('a throwing listener stops neither the other listeners nor the bookkeeping: Node still exits', async (t) => {
  const r = await run(nodeArgv(fixture('throwing-listener.ts'), `lw-adv-${process.pid}`), { timeoutMs: 20_000 })
  t.is(r.signal, null, 'ended on its own, not killed after the timeout')
  t.is(r.code, 0, r.stderr)
  const out = lastJson<{ second: string[]; platform: string[]; caught: string[]; active: boolean }>(r.stdout)
  t.deepEqual(out.second, ['removed'], 'the listener after the throwing one ran')
  t.true(out.platform.includes('removed'), 'the platform listener after the throwing one ran')
  t.deepEqual(out.caught.sort(), ['listener boom', 'platform listener boom'], "errors reached 'uncaughtException'")
  t.false(out.active)
  observed(t, "every listener ran; errors to 'uncaughtException'; exits by itself", `${JSON.stringify(out)}, exit ${r.code} in ${r.ms} ms`)
})

const noCc = !have('cc') ? 'needs a C compiler for tools/leader-exits.c' : undefined
if (noCc) console.log(`adversarial.spec: SKIPPED: a leader that calls pthread_exit: ${noCc}`)
;(noCc ? test.skip : test)('fallback: a leader that called pthread_exit is not an exit while another thread runs', async (t) => {
  const monitor = new Monitor({ forceFallback: true })
  // Not our child (Node would reap it at once): a parent that reaps it a second late, so the
  // status stays readable from the zombie.
  const script = '$|=1; my $p = fork // die; if (!$p) { exec @ARGV } sleep 3; waitpid($p, 0)'
  const started = monotonicTime()
  const parent = spawn('perl', ['-e', script, tool('leader-exits'), '800'], { stdio: ['ignore', 'pipe', 'ignore'] })
  const pid = Number((await new Promise<Buffer>((r) => parent.stdout!.once('data', r))).toString())
  const w = monitor.watchPid(pid)
  const exit = await w.wait()
  // Stamped when seen: an exit taken from the leader alone would come right after the start.
  const ms = Number(exit.time - started) / 1e6
  monitor.close()
  parent.kill()
  t.is(exit.source, 'fallback')
  t.is(exit.exitCode, 42, 'the status of the real exit')
  t.true(ms >= 800, `seen ${ms} ms after the start: when the process really ended`)
  observed(t, 'exitCode 42 once the last thread ends (800 ms after the start)', `exitCode ${exit.exitCode}, ${Math.round(ms)} ms after the start`)
})

test('task.running follows the kernel: true after its monitor closed while the process lives; shutdown still kills it', async (t) => {
  const monitor = new Monitor()
  const child = await stubborn()
  const task = Task.attach(child.pid!, { monitor })
  monitor.close()
  t.true(task.running, 'the process lives on after its monitor closed')
  const r = await shutdown(task, { killTimeout: 100 })
  await reaped(child)
  t.true(r.forced)
  t.false(task.running)
  t.is(task.exit?.signal, 'SIGKILL')
  t.is(child.signalCode, 'SIGKILL')
  observed(t, 'running true after close; shutdown forced, exit SIGKILL', `forced ${r.forced}, exit ${task.exit?.signal}, running ${task.running}`)
})

test('subreaper: an orphan that outlives its task is still reaped, none left a zombie', async (t) => {
  const monitor = new Monitor()
  // The shell exits at once; its background sleep is reparented here and dies 2 s later.
  const task = await Task.spawn('sh', ['-c', 'sleep 2 & echo $!'], { monitor, stdio: ['ignore', 'pipe', 'ignore'], subreaper: true })
  const orphan = Number((await new Promise<Buffer>((r) => task.child!.stdout!.once('data', r))).toString())
  await task.wait()
  await task.delete()
  monitor.close()
  t.true(zombieOrAlive(orphan), 'the orphan still runs after the task ended')
  const deadline = Date.now() + 10_000
  while (zombieOrAlive(orphan) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
  t.false(zombieOrAlive(orphan), 'reaped once it exited: no zombie left')
  observed(t, 'the orphan reaped after it exited, no zombie', `pid ${orphan} ${zombieOrAlive(orphan) ? 'still there' : 'gone'}`)
})

/** Whether a PID is still in /proc (running or an unreaped zombie). */
function zombieOrAlive(pid: number): boolean {
  return existsSync(`/proc/${pid}`)
}

;(noCgroups ? test.skip : test.serial)('1,000 concurrent waitEmpty() on 1,000 populated cgroups: all resolve as their processes exit, no inotify instance, every fd released', async (t) => {
  const n = 1000
  const base = `lw-adv-waits-${process.pid}`
  const monitor = new Monitor()
  const cgs = Array.from({ length: n }, (_, i) => Cgroup.create(`${base}/c${i}`))
  try {
    // Each cgroup holds a process that outlives the start of every wait.
    const watches = cgs.map((cg) => cg.spawn('sleep', ['2'], { monitor }))
    const before = fdStats()
    let peak = 0
    const sampler = setInterval(() => (peak = Math.max(peak, fdStats().control.inUse - before.control.inUse)), 5)
    const results = await Promise.allSettled(cgs.map((cg) => cg.waitEmpty({ timeout: 60_000 })))
    clearInterval(sampler)
    const after = fdStats()
    const failed = results.filter((r) => r.status === 'rejected')
    t.is(failed.length, 0, JSON.stringify(failed.slice(0, 3)))
    t.is(after.inotify.allocated - before.inotify.allocated, 0, 'the waits follow cgroup.events without inotify')
    t.is(after.control.inUse, before.control.inUse, 'each wait closed the fd it followed its file with')
    t.true(peak > 0, 'the waits were pending at once (their fds were seen open)')
    t.true(peak <= n, `control fds open at once: ${peak}`)
    await Promise.all(watches.map((w) => w.wait()))
    observed(t, `${n} resolved, no inotify, control fds back to their count`, `${n - failed.length} resolved, ${after.inotify.allocated - before.inotify.allocated} inotify, peak ${peak} control fds, ${after.control.inUse - before.control.inUse} left`)
  } finally {
    monitor.close()
    await Promise.all(cgs.map((cg) => cg.delete({ kill: true })))
    await Cgroup.open(base).delete()
  }
})

;(noCgroups ? test.skip : test)('a state wait resolves when the state already holds: waitEmpty after a short-lived spawn, 30 of 30', async (t) => {
  const monitor = new Monitor()
  const cg = Cgroup.create(`lw-adv-state-${process.pid}`)
  let resolved = 0
  try {
    for (let i = 0; i < 30; i++) {
      const w = cg.spawn('true', [], { monitor })
      await cg.waitEmpty({ timeout: 10_000 })
      await w.wait()
      resolved++
    }
    const sleeper = cg.spawn('sleep', ['5'], { monitor })
    await cg.waitPopulated({ timeout: 10_000 })
    monitor.signal(sleeper, 'SIGKILL')
    await cg.waitEmpty({ timeout: 10_000 })
  } finally {
    monitor.close()
    await cg.delete({ kill: true })
  }
  t.is(resolved, 30)
  observed(t, '30 of 30 waitEmpty resolved; waitPopulated resolved', `${resolved} of 30`)
})

;(noCgroups ? test.skip : test)('shutdown after something else removed the task cgroup succeeds and removes the parents it made', async (t) => {
  const monitor = new Monitor()
  const platform = new Platform()
  const parent = `lw-adv-gone-${process.pid}`
  const task = await platform.spawn('sleep', ['30'], { monitor, cgroupPath: `${parent}/job`, stdio: 'ignore' })
  const dirs = Object.values(Cgroup.open(`${parent}/job`).dirs)
  // Someone else kills everything and removes the cgroup.
  await Cgroup.open(`${parent}/job`).delete({ kill: true })
  const r = await shutdown(task, { monitor, platform })
  t.deepEqual(r.errors, [])
  for (const d of dirs) t.false(existsSync(d), `${d} removed`)
  for (const d of dirs) t.false(existsSync(dirname(d)), `${dirname(d)}, made by create, removed`)
  observed(t, 'shutdown resolves; no directory left', `errors ${r.errors.length}, dirs left ${[...dirs, ...dirs.map((d) => dirname(d))].filter(existsSync).length}`)
})
