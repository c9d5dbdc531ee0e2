import test from 'ava'
import { spawn } from 'node:child_process'

import { fdStats, kill, LifewatchError, Monitor, signal, signalName, signalNumber, Task, type Signal } from '../src/index.js'
import { nonChild, reaped, threaded } from './helpers.js'

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
  t.is(signalNumber(ev.signal!), 40, 'the name an event gives reads back as its number')
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

test('every signal name round-trips: what an event names, signal() and signalNumber() accept', async (t) => {
  for (let n = 1; n <= 64; n++) {
    const name = signalName(n)
    t.is(signalNumber(name), n, `${n} named ${name}`)
  }
  t.is(signalName(34), 'SIGRTMIN')
  t.is(signalName(35), 'SIGRTMIN+1')
  t.is(signalName(63), 'SIGRTMAX-1')
  t.is(signalName(64), 'SIGRTMAX')
  t.is(signalName(32), 'SIG32')
  for (const [alias, n] of [['SIGIOT', 6], ['SIGPOLL', 29], ['SIGCLD', 17], ['rtmin+2', 36], ['SIGRTMAX-2', 62], ['SIG33', 33]] as const) {
    t.is(signalNumber(alias), n, alias)
  }
  for (const bad of ['SIGRTMIN-1', 'SIGRTMAX+1', 'SIGRTMIN+31', 'SIG0', 'SIG65', 'SIGINFO', 'SIGBREAK', ' SIGTERM', 'SIGTERM ', '15', '']) {
    t.throws(() => signalNumber(bad), { code: 'ERR_INVALID_ARGUMENT' }, JSON.stringify(bad))
  }
  for (const bad of [0, 65, -1, 1.5, Number.NaN, '9' as unknown as number]) {
    t.throws(() => signalName(bad), { code: 'ERR_INVALID_ARGUMENT' }, String(bad))
  }
  // Real processes killed by every catchable-or-not signal whose default action ends them:
  // the exit event's name is the one signal() accepts back.
  const monitor = new Monitor()
  for (const n of [6, 9, 15, 31, 34, 40, 50, 64]) {
    const child = spawn('sleep', ['30'])
    const w = monitor.watchPid(child.pid!)
    monitor.signal(w, signalName(n) as Signal)
    const ev = await w.wait()
    t.is(ev.signal, signalName(n))
    t.is(signalNumber(ev.signal!), n)
    await reaped(child)
  }
  monitor.close()
})

// Serial: the fd counters are process-wide, and other tests of this file open pidfds meanwhile.
test.serial('a thread ID is refused as "a thread of process X" (ERR_INVALID_ARGUMENT), in every mode and call', async (t) => {
  const { child, tid } = await threaded()
  t.teardown(() => child.kill('SIGKILL'))
  const message = `pid ${tid} is a thread of process ${child.pid}, not a process`
  const expect = { code: 'ERR_INVALID_ARGUMENT', message: new RegExp(message) }
  const before = fdStats()
  for (const forceFallback of [false, true]) {
    const monitor = new Monitor({ forceFallback })
    t.throws(() => monitor.watchPid(tid), expect, `watchPid, forceFallback ${forceFallback}`)
    t.throws(() => monitor.signal(tid, 'SIGCONT'), expect)
    await t.throwsAsync(monitor.kill(tid), expect)
    t.throws(() => Task.attach(tid, { monitor }), expect)
    t.is(monitor.stats.watches, 0, 'nothing left registered')
    monitor.close()
  }
  t.throws(() => signal(tid, 'SIGCONT'), expect)
  await t.throwsAsync(kill(tid), expect)
  const after = fdStats()
  t.is(after.pidfd.inUse, before.pidfd.inUse)
  t.is(after.epoll.inUse, before.epoll.inUse)
  t.is(child.exitCode, null, 'no signal reached the process the thread belongs to')
  child.kill('SIGKILL')
  await reaped(child)
})
