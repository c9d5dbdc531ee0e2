import test from 'ava'
import { spawn } from 'node:child_process'

import { kill, LifewatchError, Monitor, signal } from '../src/index.js'
import { nonChild, reaped } from './helpers.js'

test('kill escalates TERM -> KILL on a process that ignores TERM, and resolves on the confirmed exit', async (t) => {
  const monitor = new Monitor()
  const child = spawn('sh', ['-c', 'trap "" TERM; echo ready; while :; do sleep 1; done'], { stdio: ['ignore', 'pipe', 'ignore'] })
  await new Promise((r) => child.stdout.once('data', r)) // the trap is installed
  const t0 = Date.now()
  const { exit, forced } = await monitor.kill(child.pid!, { timeout: 300 })
  const ms = Date.now() - t0
  t.true(forced)
  t.like(exit, { type: 'exit', pid: child.pid, signal: 'SIGKILL' })
  t.true(ms >= 290, `escalated after ${ms} ms, not before the timeout`)
  monitor.close()
  await reaped(child)
})

test('kill of a process that obeys TERM is not forced', async (t) => {
  const monitor = new Monitor()
  const child = spawn('sleep', ['30'])
  const { exit, forced } = await monitor.kill(child.pid!, { timeout: 10_000 })
  t.false(forced)
  t.is(exit.signal, 'SIGTERM')
  monitor.close()
  await reaped(child)
})

test('kill of a process whose exit was already reported resolves with that exit', async (t) => {
  const monitor = new Monitor()
  const child = spawn('sh', ['-c', 'exit 4'])
  const w = monitor.watchPid(child.pid!)
  await w.wait()
  const { exit, forced } = await monitor.kill(w)
  t.is(exit.exitCode, 4)
  t.false(forced)
  monitor.close()
})

test('the one-shot kill() and signal() helpers', async (t) => {
  const a = await nonChild('exec sleep 30')
  const r = await kill(a.pid, { killSignal: 'SIGHUP', timeout: 5000 })
  t.like(r.exit, { pid: a.pid, signal: 'SIGHUP' })
  t.false(r.forced)
  await reaped(a.parent)
  const b = spawn('sleep', ['30'])
  signal(b.pid!, 'SIGKILL')
  await reaped(b)
  t.is(b.signalCode, 'SIGKILL')
  const err = t.throws(() => signal(b.pid!, 'SIGTERM'), { instanceOf: LifewatchError })
  t.is(err!.code, 'ERR_NO_SUCH_PROCESS')
})

test('signals by number and by short name; real-time signals are named', async (t) => {
  const monitor = new Monitor()
  const child = spawn('sleep', ['30'])
  const w = monitor.watchPid(child.pid!)
  monitor.signal(w, 40)
  const ev = await w.wait()
  t.regex(ev.signal!, /^SIGRTMIN\+\d+$/)
  const other = spawn('sleep', ['30'])
  const w2 = monitor.watchPid(other.pid!)
  monitor.signal(w2, 'usr1' as NodeJS.Signals)
  t.is((await w2.wait()).signal, 'SIGUSR1')
  monitor.close()
  await Promise.all([reaped(child), reaped(other)])
})

test('signalling a watch of another monitor is refused', (t) => {
  const a = new Monitor()
  const b = new Monitor()
  const child = spawn('sleep', ['30'])
  const w = a.watchPid(child.pid!)
  t.throws(() => b.signal(w, 'SIGTERM'), { code: 'ERR_INVALID_ARGUMENT' })
  a.signal(w, 'SIGKILL')
  a.close()
  b.close()
})
