import test from 'ava'
import { spawn, spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { getSystemErrorName } from 'node:util'

import { fdStats, Monitor, monotonicTime, type ExitEvent, type LifewatchError } from '../src/index.js'
import { nonChild, reaped, sh, take } from './helpers.js'

test('a child that exits with a code', async (t) => {
  const monitor = new Monitor()
  const child = sh('sleep 0.1; exit 7')
  const w = monitor.watchPid(child.pid!)
  const before = monotonicTime()
  const [ev] = (await take(monitor, 1)) as ExitEvent[]
  t.like(ev, { type: 'exit', pid: child.pid, exitCode: 7, watch: w.id })
  t.is(ev.signal, undefined)
  t.true(ev.source === 'waitid' || ev.source === 'pidfd')
  t.true(ev.time > before && ev.time <= monotonicTime(), 'time is CLOCK_MONOTONIC at readiness')
  t.deepEqual(await w.wait(), ev)
  // Not reaped by lifewatch: Node still gets the child's own exit status.
  await reaped(child)
  t.is(child.exitCode, 7)
})

test('a child killed by a signal', async (t) => {
  const monitor = new Monitor()
  const child = spawn('sleep', ['30'])
  const w = monitor.watchPid(child.pid!)
  monitor.signal(w, 'SIGKILL')
  const ev = await w.wait()
  t.like(ev, { type: 'exit', pid: child.pid, signal: 'SIGKILL', core: false })
  t.is(ev.exitCode, undefined)
  monitor.close()
  await reaped(child)
})

// A core dump is written where the kernel is told to: a plain file name as core_pattern puts it
// in the dying process's directory (a pipe to a handler, or a path elsewhere, is not checked
// here), and the shell must be allowed to raise its core size limit.
const corePattern = readFileSync('/proc/sys/kernel/core_pattern', 'utf8').trim()
const noCore =
  corePattern === '' || corePattern.includes('|') || corePattern.includes('/')
    ? `core_pattern is ${JSON.stringify(corePattern)}, not a file name in the process's directory`
    : spawnSync('sh', ['-c', 'ulimit -c unlimited']).status !== 0
      ? 'the core size limit cannot be raised (hard limit)'
      : undefined
if (noCore) console.log(`exits.spec: SKIPPED: the core dump test: ${noCore}`)

;(noCore ? test.skip : test)('a process that dumped core: its signal and core: true, child and non-child, directWake on and off', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lifewatch-core-'))
  // A directory each: two dumps of one name at once would make one of them fail (the kernel
  // creates the file exclusively), and that process would then rightly say core: false. The
  // pause lets the watches begin before the dump.
  const dumping = (name: string) => {
    mkdirSync(join(dir, name))
    return `cd ${join(dir, name)} && ulimit -c unlimited && sleep 0.5 && kill -SEGV $$`
  }
  try {
    for (const directWake of [true, false]) {
      const monitor = new Monitor({ directWake })
      const child = spawn('sh', ['-c', dumping(`child-${directWake}`)], { stdio: 'ignore' })
      const other = await nonChild(dumping(`non-child-${directWake}`))
      const [ec, en] = await Promise.all([monitor.watchPid(child.pid!).wait(), monitor.watchPid(other.pid).wait()])
      t.like(ec, { pid: child.pid, signal: 'SIGSEGV', core: true }, `child, directWake ${directWake}`)
      t.like(en, { pid: other.pid, signal: 'SIGSEGV', core: true }, `non-child, directWake ${directWake}`)
      t.is(ec.exitCode, undefined)
      monitor.close()
      await Promise.all([reaped(child), reaped(other.parent)])
    }
    const prefix = corePattern.split('%')[0]!
    for (const d of readdirSync(dir)) t.true(readdirSync(join(dir, d)).some((f) => f.startsWith(prefix)), `the kernel wrote ${d}'s dump`)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('a non-child (started by a shell in the background) with its code', async (t) => {
  const monitor = new Monitor()
  const { pid, parent } = await nonChild('sleep 1; exit 5')
  t.not(pid, parent.pid)
  const w = monitor.watchPid(pid)
  const ev = await w.wait()
  t.like(ev, { type: 'exit', pid, exitCode: 5, source: 'pidfd' })
  monitor.close()
  await reaped(parent)
})

test('a non-child killed through its pidfd', async (t) => {
  const monitor = new Monitor()
  const { pid, parent } = await nonChild('exec sleep 30')
  const w = monitor.watchPid(pid)
  monitor.signal(pid, 'SIGTERM')
  t.like(await w.wait(), { pid, signal: 'SIGTERM', source: 'pidfd' })
  monitor.close()
  await reaped(parent)
})

test('an already-dead PID is ERR_NO_SUCH_PROCESS, with syscall and errno', async (t) => {
  const monitor = new Monitor()
  const child = sh('exit 0')
  await reaped(child)
  const err = t.throws(() => monitor.watchPid(child.pid!))
  t.like(err, { name: 'LifewatchError', code: 'ERR_NO_SUCH_PROCESS', syscall: 'pidfd_open', errno: -3 })
  t.is(getSystemErrorName((err as LifewatchError).errno!), 'ESRCH', "Node's name for the errno, as docs/api.md says")
  t.notRegex(err.message, /os error/, 'no Rust error text in the message')
  t.regex(err!.message, new RegExp(`pid ${child.pid}`))
  monitor.close()
})

test.serial('1,000 concurrent watches are all reported, once each, in batches', async (t) => {
  const monitor = new Monitor()
  const children = Array.from({ length: 1000 }, () => spawn('sleep', ['30'], { stdio: 'ignore' }))
  await Promise.all(children.map((c) => new Promise((r) => c.once('spawn', r))))
  const watches = children.map((c) => monitor.watchPid(c.pid!))
  t.is(monitor.stats.watches, 1000)
  for (const c of children) c.kill('SIGKILL')
  const events = (await take(monitor, 1000)) as ExitEvent[]
  t.is(events.length, 1000)
  t.is(new Set(events.map((e) => e.watch)).size, 1000, 'no duplicates')
  t.deepEqual(events.map((e) => e.pid).sort(), children.map((c) => c.pid!).sort())
  t.true(events.every((e) => e.signal === 'SIGKILL'))
  t.true(watches.every((w) => w.exit !== undefined))
  t.true(monitor.stats.deliveries < 1000, `batched: ${monitor.stats.deliveries} deliveries for 1000 events`)
  t.log(`1000 exits in ${monitor.stats.deliveries} batches`)
  await Promise.all(children.map(reaped))
})

test('several monitors watch the same process independently', async (t) => {
  const a = new Monitor()
  const b = new Monitor()
  const child = sh('sleep 0.1; exit 2')
  const [wa, wb] = [a.watchPid(child.pid!), b.watchPid(child.pid!)]
  const [ea, eb] = await Promise.all([wa.wait(), wb.wait()])
  t.is(ea.exitCode, 2)
  t.is(eb.exitCode, 2)
  a.close()
  b.close()
})

test.serial('watches of one process share its pidfd; each gets the exit, unwatching one keeps the rest', async (t) => {
  const monitor = new Monitor()
  const child = spawn('sleep', ['30'])
  const pidfds0 = fdStats().pidfd.inUse
  const [a, b, c] = [monitor.watchPid(child.pid!), monitor.watchPid(child.pid!), monitor.watchPid(child.pid!)]
  t.is(fdStats().pidfd.inUse - pidfds0, 1, 'one pidfd for three watches')
  t.is(monitor.stats.watches, 3)
  t.true(monitor.unwatch(a))
  monitor.signal(c, 'SIGKILL')
  const [eb, ec] = await Promise.all([b.wait(), c.wait()])
  t.like(eb, { pid: child.pid, signal: 'SIGKILL', watch: b.id })
  t.like(ec, { pid: child.pid, signal: 'SIGKILL', watch: c.id })
  t.is(fdStats().pidfd.inUse, pidfds0, 'closed with the last watch')
  monitor.close()
  await reaped(child)
})

test.serial("in an exit's first reaction the monitor treats the watch as ended; the exit still reaches the iterator", async (t) => {
  const monitor = new Monitor()
  const child = spawn('sleep', ['30'], { stdio: 'ignore' })
  const w = monitor.watchPid(child.pid!)
  const other = spawn('sleep', ['30'], { stdio: 'ignore' })
  const it = monitor[Symbol.asyncIterator]()
  child.kill('SIGKILL')
  // Runs in the delivery of the exit itself, before the monitor's own bookkeeping job.
  const seen = await w.wait().then((ev) => {
    const signalled = (() => {
      try {
        // The exited watch must not be used for its PID: the signal goes to the PID (a zombie
        // until Node reaps it, or gone), never through the ended watch.
        monitor.signal(child.pid!, 'SIGCONT')
        return 'sent'
      } catch (e) {
        return (e as LifewatchError).code
      }
    })()
    const again = monitor.watchPid(other.pid!)
    return { ev, signalled, unwatched: monitor.unwatch(w), watches: monitor.stats.watches, next: it.next(), again }
  })
  t.like(seen.ev, { type: 'exit', pid: child.pid, signal: 'SIGKILL', watch: w.id })
  t.false(w.active)
  t.true(seen.signalled === 'sent' || seen.signalled === 'ERR_NO_SUCH_PROCESS', String(seen.signalled))
  t.false(seen.unwatched, 'unwatch of an ended watch: false')
  t.is(seen.watches, 1, 'only the watch made in the reaction')
  t.deepEqual(await seen.next, { done: false, value: seen.ev }, 'the exit reaches a next() asked for in the reaction')
  t.true(seen.again.active)
  t.is(monitor.stats.watches, 1)
  other.kill('SIGKILL')
  t.like(await seen.again.wait(), { pid: other.pid, signal: 'SIGKILL' })
  t.like((await it.next()).value, { pid: other.pid })
  monitor.close()
  await Promise.all([reaped(child), reaped(other)])
})
