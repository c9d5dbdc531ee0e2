import test from 'ava'
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'

import { AbortError, fdStats, LifewatchError, Monitor } from '../src/index.js'
import { fixture, node, anonFds, reaped, sh, take } from './helpers.js'

test.serial('close during a pending iteration ends it; close is idempotent and releases every fd', async (t) => {
  const before = anonFds().length
  const monitor = new Monitor()
  const child = spawn('sleep', ['30'], { stdio: 'ignore' })
  const w = monitor.watchPid(child.pid!)
  t.is(anonFds().length, before + 7, "sources epoll, reactor epoll, waker eventfd, the backstop's eventfd and epoll, timerfd, pidfd")
  const it = monitor[Symbol.asyncIterator]()
  const pending = it.next()
  const waiting = w.wait()
  const released = monitor.close()
  t.like(released, { epoll: 3, eventfd: 2, timerfd: 1, pidfd: 1 })
  t.deepEqual(await pending, { done: true, value: undefined })
  await t.throwsAsync(waiting, { instanceOf: LifewatchError, code: 'ERR_CLOSED' })
  t.like(monitor.close(), { epoll: 0, eventfd: 0, pidfd: 0 })
  t.deepEqual(await it.next(), { done: true, value: undefined })
  t.is(anonFds().length, before)
  t.throws(() => monitor.watchPid(child.pid!), { code: 'ERR_CLOSED' })
  t.throws(() => monitor.signal(child.pid!), { code: 'ERR_CLOSED' })
  child.kill()
  await reaped(child)
})

test('many callers of next() on a closing monitor all end', async (t) => {
  const monitor = new Monitor()
  const it = monitor[Symbol.asyncIterator]()
  const calls = Array.from({ length: 50 }, () => it.next())
  monitor.close()
  const results = await Promise.all(calls)
  t.true(results.every((r) => r.done === true))
})

test('breaking out of for await closes the monitor', async (t) => {
  const monitor = new Monitor()
  const a = sh('exit 1')
  const b = spawn('sleep', ['30'], { stdio: 'ignore' })
  monitor.watchPid(a.pid!)
  const wb = monitor.watchPid(b.pid!)
  for await (const ev of monitor) {
    t.is(ev.type, 'exit')
    break
  }
  t.true(monitor.closed)
  t.false(wb.active)
  b.kill()
  await Promise.all([reaped(a), reaped(b)])
})

test.serial('await using closes at the end of the scope', async (t) => {
  const before = anonFds().length
  let escaped: Monitor
  {
    await using monitor = new Monitor()
    escaped = monitor
    t.is(anonFds().length, before + 6, "two epolls, the waker, the backstop's eventfd and epoll, and the timerfd")
  }
  t.true(escaped.closed)
  t.is(anonFds().length, before)
})

test('AbortSignal: abort rejects pending and later next() with AbortError and closes', async (t) => {
  const ac = new AbortController()
  const monitor = new Monitor({ signal: ac.signal })
  const child = spawn('sleep', ['30'], { stdio: 'ignore' })
  monitor.watchPid(child.pid!)
  const it = monitor[Symbol.asyncIterator]()
  const pending = it.next()
  ac.abort(new Error('stop now'))
  const err = await t.throwsAsync(pending, { instanceOf: AbortError })
  t.is(err!.code, 'ABORT_ERR')
  t.true(monitor.closed)
  await t.throwsAsync(it.next(), { instanceOf: AbortError })
  t.throws(() => monitor.watchPid(child.pid!), { instanceOf: AbortError })
  child.kill()
  await reaped(child)
})

test.serial('an already-aborted signal throws AbortError before anything is opened', (t) => {
  const before = anonFds().length
  t.throws(() => new Monitor({ signal: AbortSignal.abort() }), { instanceOf: AbortError })
  t.is(anonFds().length, before)
})

test('a monitor has one consumer: iterating twice is ERR_INVALID_STATE', (t) => {
  const monitor = new Monitor()
  monitor[Symbol.asyncIterator]()
  t.throws(() => monitor[Symbol.asyncIterator](), { instanceOf: LifewatchError, code: 'ERR_INVALID_STATE' })
  monitor.close()
})

test('events that arrive before anyone iterates are queued, not dropped', async (t) => {
  const monitor = new Monitor()
  const children = [sh('exit 3'), sh('exit 4')]
  const watches = children.map((c) => monitor.watchPid(c.pid!))
  await Promise.all(watches.map((w) => w.wait()))
  const events = await take(monitor, 2)
  t.deepEqual(events.map((e) => e.type === 'exit' && e.exitCode).sort(), [3, 4])
})

test.serial('1,000 watch/close cycles return /proc/self/fd and the counters to baseline', async (t) => {
  const child = spawn('sleep', ['30'], { stdio: 'ignore' })
  const before = anonFds().length
  const stats = fdStats()
  for (let i = 0; i < 1000; i++) {
    const monitor = new Monitor()
    monitor.watchPid(child.pid!)
    monitor.close()
  }
  t.is(anonFds().length, before)
  const after = fdStats()
  t.is(after.pidfd.inUse, stats.pidfd.inUse)
  t.is(after.epoll.inUse, stats.epoll.inUse)
  t.is(after.epoll.allocated - stats.epoll.allocated, 3000)
  t.is(after.pidfd.released - stats.pidfd.released, 1000)
  child.kill()
  await reaped(child)
})

test.serial('closing monitors leaves the CPUs this thread may run on as they were', async (t) => {
  // Closing moves the monitor's own threads to the closing thread's CPU before joining them;
  // a thread that has already ended must not turn that into pinning the closing thread.
  const cpus = () => /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync('/proc/thread-self/status', 'utf8'))![1]
  const before = cpus()
  const child = spawn('sleep', ['30'], { stdio: 'ignore' })
  for (let i = 0; i < 50; i++) {
    const monitor = new Monitor()
    monitor.watchPid(child.pid!)
    // Time for the backstop thread to stop on its own before close joins it, in some cycles.
    if (i % 2) await new Promise((r) => setTimeout(r, 1))
    monitor.close()
  }
  t.is(cpus(), before)
  child.kill()
  await reaped(child)
})

test('an unref-ed monitor does not keep Node alive; a ref-ed one does until its process exits', async (t) => {
  const unrefd = await node([fixture('hold.ts'), 'unref'])
  t.is(unrefd.code, 0, unrefd.stderr)
  t.true(unrefd.ms < 5000, `exited after ${unrefd.ms} ms`)
  t.regex(unrefd.stdout, /^watching \d+\n$/)
  const refd = await node([fixture('hold.ts'), 'ref'])
  t.is(refd.code, 0, refd.stderr)
  t.regex(refd.stdout, /exit code 0/, 'stayed alive until the watched process exited')
})

test('a pending iteration keeps Node alive after the last watch ended, until the monitor closes', async (t) => {
  const refd = await node([fixture('loop.ts'), 'ref'])
  t.is(refd.code, 0, refd.stderr)
  t.is(refd.stdout, 'event exit\nafter the loop\n', 'the loop ended when the monitor closed, not when Node gave up')
  for (const mode of ['unref', 'transient']) {
    const r = await node([fixture('loop.ts'), mode])
    t.is(r.code, 13, `${mode}: Node abandons the pending top-level await`)
    t.false(r.stdout.includes('after the loop'))
  }
  const monitor = new Monitor()
  t.throws(() => monitor.events({ persistent: 1 as never }), { code: 'ERR_INVALID_ARGUMENT' })
  t.throws(() => monitor.events({ persistant: false } as never), { code: 'ERR_INVALID_ARGUMENT' })
  monitor.close()
})

test('a monitor dropped without close is freed by its finalizer', async (t) => {
  const r = await node(['--expose-gc', fixture('gc.ts')])
  t.is(r.code, 0, r.stderr)
  const out = JSON.parse(r.stdout) as { inUseAfter: number; leakPrevented: number; leftOpen: string[] }
  t.is(out.inUseAfter, 0)
  t.deepEqual(out.leftOpen, [], 'fds opened during the run and still open')
  t.true(out.leakPrevented >= 100, `finalizer counted ${out.leakPrevented} prevented leaks`)
})
