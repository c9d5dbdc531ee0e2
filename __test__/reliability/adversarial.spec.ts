// The adversarial cases: what a demanding user tried and lifewatch once got wrong. Each test
// reports its case with what was expected and what was observed, for the "adversarial" table
// of `npm run reliability`.
import { spawn } from 'node:child_process'

import test, { type ExecutionContext } from 'ava'

import { Monitor, shutdown, Task } from '../../src/index.js'
import { reaped } from '../helpers.js'
import { fixture, have, isRoot, lastJson, nodeArgv, report, run } from './helpers.js'

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
