// Reliability part 4: one table of bad inputs across the public API and the CLI. Each gets a
// LifewatchError (or AbortError) with its documented code, nothing crashes, the test
// process and its watched child keep running, and no fd is opened or lost.
import test from 'ava'
import { spawn } from 'node:child_process'
import { existsSync, readFileSync, rmSync, symlinkSync } from 'node:fs'
import { join } from 'node:path'

import { AbortError, Cgroup, cgroupLayout, kill, LifewatchError, Monitor, signal } from '../../src/index.js'
import { CLI, reaped, sh } from '../helpers.js'
import { addedFds, baseline, fdTable, mismatch, report, run } from './helpers.js'

type Expect = { code: string; abort?: boolean } | { returns: (v: unknown) => boolean }

interface Fx {
  m: Monitor
  childPid: number
  w: ReturnType<Monitor['watchPid']>
  dead: number
  closed: Monitor
  aborted: Monitor
  foreign: ReturnType<Monitor['watchPid']>
  /** A test cgroup (relative path) with limits set, for the rows that must not change it. */
  cg: string
}

const layout = cgroupLayout()
const isRoot = process.getuid?.() === 0
const CG = `lifewatch-test-${process.pid}-badinput`
/** A name no row may create. */
const NEW = `lifewatch-test-${process.pid}-badinput-new`
const LINK = `/tmp/lifewatch-test-${process.pid}-link`
const mounts = [...Object.values(layout.v1).map((h) => h!.mount), ...(layout.unified ? [layout.unified.mount] : [])]
/** Every cgroup file a rejected input could have written, and whether NEW exists anywhere. */
function cgroupState(): string {
  const out: string[] = []
  for (const m of mounts) {
    out.push(`${m}/${NEW}: ${existsSync(join(m, NEW))}`)
    for (const f of ['memory.limit_in_bytes', 'memory.max', 'pids.max', 'memory.pressure', 'cgroup.event_control']) {
      const p = join(m, CG, f)
      try {
        if (f !== 'cgroup.event_control' && f !== 'memory.pressure') out.push(`${p}: ${readFileSync(p, 'utf8').trim()}`)
        else out.push(`${p}: ${existsSync(p)}`)
      } catch {
        // not in this hierarchy
      }
    }
  }
  return out.join('\n')
}
const psiOk = { stallUs: 100_000, windowUs: 2_000_000 }
const cgPaths: Array<[string, string]> = [
  ['..', '..'],
  ['relative escape', 'a/../../b'],
  ['outside the root', '/tmp'],
  ['a regular file', '/sys/fs/cgroup/memory/memory.limit_in_bytes'],
  ['a regular file (relative)', 'cgroup.procs'],
  ['/proc', '/proc'],
  ['a tmpfs dir', '/dev/shm'],
  ['symlink into the hierarchy from outside', LINK],
  ['5000-char path', 'a'.repeat(5000)],
  ['NUL inside', `${NEW}\0x`],
  ['newline inside', `${NEW}\nx`],
]
const badLimits: Array<[string, unknown]> = [
  ['-1', -1], ['10Q', '10Q'], ['1e400', '1e400'], ["'64M\\n1'", '64M\n1'], ['NaN', NaN], ['{}', {}], ['[64]', [64]],
]
const badPsi: Array<[string, unknown]> = [
  ['window 0', { stallUs: 100_000, windowUs: 0 }],
  ['stall > window', { stallUs: 3_000_000, windowUs: 2_000_000 }],
  ['stall 0', { stallUs: 0, windowUs: 2_000_000 }],
  ['non-integer stall', { stallUs: 1.5, windowUs: 2_000_000 }],
  ['non-integer window', { stallUs: 100_000, windowUs: 2_000_000.5 }],
  ["string stall '1'", { stallUs: '1', windowUs: 2_000_000 }],
  ["resource 'disk'", { ...psiOk, resource: 'disk' }],
  ["kind 'all'", { ...psiOk, kind: 'all' }],
]
const badLevels = ['extreme', 'LOW', '', 'low,global', 'low\n', 'low,local,x', 'medium,']

const bad = (code: string): Expect => ({ code })
const invalid = bad('ERR_INVALID_ARGUMENT')
const any = (x: unknown) => x as never

const cases: Array<[string, (f: Fx) => unknown, Expect]> = [
  // PIDs
  ['watchPid(0)', (f) => f.m.watchPid(0), invalid],
  ['watchPid(-1)', (f) => f.m.watchPid(-1), invalid],
  ['watchPid(-0)', (f) => f.m.watchPid(-0), invalid],
  ['watchPid(2**31)', (f) => f.m.watchPid(2 ** 31), invalid],
  ['watchPid(2**22 + 1) above PID_MAX_LIMIT', (f) => f.m.watchPid(2 ** 22 + 1), invalid],
  ['watchPid(NaN)', (f) => f.m.watchPid(NaN), invalid],
  ['watchPid(Infinity)', (f) => f.m.watchPid(Infinity), invalid],
  ['watchPid(1.5)', (f) => f.m.watchPid(1.5), invalid],
  ["watchPid('123')", (f) => f.m.watchPid(any('123')), invalid],
  ['watchPid(123n)', (f) => f.m.watchPid(any(123n)), invalid],
  ['watchPid(undefined)', (f) => f.m.watchPid(any(undefined)), invalid],
  ['watchPid(null)', (f) => f.m.watchPid(any(null)), invalid],
  ['watchPid({})', (f) => f.m.watchPid(any({})), invalid],
  ['watchPid(dead pid)', (f) => f.m.watchPid(f.dead), bad('ERR_NO_SUCH_PROCESS')],
  ['watchPid(2**22) in range, never a pid', (f) => f.m.watchPid(2 ** 22), bad('ERR_NO_SUCH_PROCESS')],
  // Signals
  ["signal(w, 'SIGNOPE')", (f) => f.m.signal(f.w, any('SIGNOPE')), invalid],
  ["signal(w, '')", (f) => f.m.signal(f.w, any('')), invalid],
  ["signal(w, 'SIG')", (f) => f.m.signal(f.w, any('SIG')), invalid],
  ["signal(w, '9') digits as a string", (f) => f.m.signal(f.w, any('9')), invalid],
  ['signal(w, 0)', (f) => f.m.signal(f.w, 0), invalid],
  ['signal(w, -1)', (f) => f.m.signal(f.w, -1), invalid],
  ['signal(w, 65)', (f) => f.m.signal(f.w, 65), invalid],
  ['signal(w, 2**31)', (f) => f.m.signal(f.w, 2 ** 31), invalid],
  ['signal(w, 1.5)', (f) => f.m.signal(f.w, 1.5), invalid],
  ['signal(w, NaN)', (f) => f.m.signal(f.w, NaN), invalid],
  ['signal(w, {})', (f) => f.m.signal(f.w, any({})), invalid],
  ['signal(0)', (f) => f.m.signal(0), invalid],
  ["signal('abc')", (f) => f.m.signal(any('abc')), invalid],
  ['signal({ id, pid } look-alike)', (f) => f.m.signal(any({ id: f.w.id, pid: f.w.pid })), invalid],
  ['signal(dead pid)', (f) => f.m.signal(f.dead, 'SIGTERM'), bad('ERR_NO_SUCH_PROCESS')],
  ["signal(another monitor's watch)", (f) => f.m.signal(f.foreign), invalid],
  ['top-level signal(0)', () => signal(0), invalid],
  ["top-level signal(pid, 'SIGNOPE')", (f) => signal(f.childPid, any('SIGNOPE')), invalid],
  ['top-level signal(dead pid)', (f) => signal(f.dead, 'SIGCONT'), bad('ERR_NO_SUCH_PROCESS')],
  // kill() options
  ['kill(w, { timeout: -1 })', (f) => f.m.kill(f.w, { timeout: -1 }), invalid],
  ['kill(w, { timeout: NaN })', (f) => f.m.kill(f.w, { timeout: NaN }), invalid],
  ["kill(w, { timeout: '5' })", (f) => f.m.kill(f.w, { timeout: any('5') }), invalid],
  ["kill(w, 'SIGTERM') options as a string", (f) => f.m.kill(f.w, any('SIGTERM')), invalid],
  ['kill(w, { timeout: null }) not taken for the default', (f) => f.m.kill(f.w, { timeout: any(null) }), invalid],
  ['kill(w, { killSignal: null }) not taken for the default', (f) => f.m.kill(f.w, { killSignal: any(null) }), invalid],
  ["kill(w, { signal: 'SIGFOO' })", (f) => f.m.kill(f.w, { signal: any('SIGFOO') }), invalid],
  ['kill(NaN)', (f) => f.m.kill(NaN), invalid],
  ['top-level kill(-1)', () => kill(-1), invalid],
  ['top-level kill(pid, { timeout: -5 })', (f) => kill(f.childPid, { timeout: -5 }), invalid],
  ['top-level kill(pid, { timeout: null })', (f) => kill(f.childPid, { timeout: any(null) }), invalid],
  ['top-level kill(dead pid)', (f) => kill(f.dead), bad('ERR_NO_SUCH_PROCESS')],
  // Options of the wrong type
  ['new Monitor(null)', () => new Monitor(any(null)), invalid],
  ["new Monitor('x')", () => new Monitor(any('x')), invalid],
  ['new Monitor([])', () => new Monitor(any([])), invalid],
  ["new Monitor({ forceFallback: 'yes' })", () => new Monitor({ forceFallback: any('yes') }), invalid],
  ['new Monitor({ unref: 1 })', () => new Monitor({ unref: any(1) }), invalid],
  ["new Monitor({ directWake: 'yes' })", () => new Monitor({ directWake: any('yes') }), invalid],
  ["new Monitor({ signal: 'x' })", () => new Monitor({ signal: any('x') }), invalid],
  // Lifecycle
  ['abort before start', () => new Monitor({ signal: AbortSignal.abort() }), { code: 'ABORT_ERR', abort: true }],
  ['watchPid on an aborted monitor', (f) => f.aborted.watchPid(f.childPid), { code: 'ABORT_ERR', abort: true }],
  ['double close returns nothing released', (f) => f.closed.close(), { returns: (v) => Object.values(v as object).every((n) => n === 0) }],
  ['watchPid after close', (f) => f.closed.watchPid(f.childPid), bad('ERR_CLOSED')],
  ['signal after close', (f) => f.closed.signal(f.childPid), bad('ERR_CLOSED')],
  ['kill after close', (f) => f.closed.kill(f.childPid), bad('ERR_CLOSED')],
  ['unwatch after close', (f) => f.closed.unwatch(f.w), bad('ERR_CLOSED')],
  ['unwatch(null)', (f) => f.m.unwatch(any(null)), invalid],
  ['unwatch(42)', (f) => f.m.unwatch(any(42)), invalid],
  ["unwatch(another monitor's watch)", (f) => f.m.unwatch(f.foreign), invalid],
  // Cgroup paths: watchCgroup and Cgroup.create
  ...cgPaths.flatMap(([what, p]): Array<[string, (f: Fx) => unknown, Expect]> => [
    [`watchCgroup(${what})`, (f) => f.m.watchCgroup(p), invalid],
    [`Cgroup.create(${what})`, () => Cgroup.create(p), invalid],
  ]),
  // Limits: rejected before anything is made or written, on a new and on an existing cgroup
  ...badLimits.flatMap(([what, v]): Array<[string, (f: Fx) => unknown, Expect]> => [
    [`Cgroup.create(new, { memory: ${what} })`, () => Cgroup.create(NEW, { memory: any(v) }), invalid],
    [`Cgroup.create(existing, { memory: ${what} })`, (f) => Cgroup.create(f.cg, { memory: any(v) }), invalid],
  ]),
  ["Cgroup.create(new, { pids: '5\\n6' })", () => Cgroup.create(NEW, { pids: any('5\n6') }), invalid],
  ['Cgroup.create(new, limits as a string)', () => Cgroup.create(NEW, any('64M')), invalid],
  // PSI triggers: on a cgroup and system-wide
  ...badPsi.flatMap(([what, trig]): Array<[string, (f: Fx) => unknown, Expect]> => [
    [`watchCgroup psi ${what}`, (f) => f.m.watchCgroup(f.cg, { psi: [any(trig)] }), invalid],
    [`watchPressure ${what}`, (f) => f.m.watchPressure(any(trig)), invalid],
  ]),
  ['watchCgroup psi not an array', (f) => f.m.watchCgroup(f.cg, { psi: any(psiOk) }), invalid],
  // v1 pressure level strings
  ...badLevels.map((lv): [string, (f: Fx) => unknown, Expect] =>
    [`watchCgroup pressure ${JSON.stringify(lv)}`, (f) => f.m.watchCgroup(f.cg, { pressure: any(lv) }), invalid]),
  ["watchCgroup(path, 'oom')", (f) => f.m.watchCgroup(f.cg, any('oom')), invalid],
  ['iterating twice', (f) => {
    f.m[Symbol.asyncIterator]()
    return f.m[Symbol.asyncIterator]()
  }, bad('ERR_INVALID_STATE')],
]

/** `lifewatch <args>`: expected exit status and what stderr must show. Every bad command line is
 *  125 (lifewatch's own failure, never a status the command could have returned). */
const runFlag = (flag: string, value: string, shows: RegExp): [string[], number, RegExp] => [['run', flag, value, '--', 'true'], 125, shows]
const durations = ['--kill-timeout', '--deadline', '--step-timeout'].flatMap((flag) => [
  runFlag(flag, '-1', new RegExp(`${flag}: not a duration`)),
  runFlag(flag, 'soon', new RegExp(`${flag}: not a duration`)),
  runFlag(flag, 'NaN', new RegExp(`${flag}: not a duration`)),
  runFlag(flag, '1e3', new RegExp(`${flag}: not a duration`)),
  runFlag(flag, '5 s', new RegExp(`${flag}: not a duration`)),
  runFlag(flag, '', new RegExp(`${flag}: not a duration`)),
  [['run', flag], 125, /argument missing/] as [string[], number, RegExp],
])
const cli: Array<[string[], number, RegExp]> = [
  [['watch', '--pid', '0'], 125, /--pid: not a valid PID/],
  [['watch', '--pid', '-1'], 125, /lifewatch: /],
  [['watch', '--pid', 'abc'], 125, /not a valid PID/],
  [['watch', '--pid', '1.5'], 125, /not a valid PID/],
  [['watch', '--pid', '2147483648'], 125, /not a valid PID/],
  [['watch', '--pid', ''], 125, /not a valid PID/],
  [['watch', '--pid', '0x10'], 125, /not a valid PID/],
  [['watch', '--pid', '1e3'], 125, /not a valid PID/],
  [['watch', '--pid', '12\n3'], 125, /not a valid PID/],
  [['watch', '--pid', '5', '--pid', 'x'], 125, /not a valid PID/],
  [['watch'], 125, /at least one --pid/],
  [['watch', '--pid'], 125, /argument missing/],
  [['watch', '--bogus'], 125, /unknown option '--bogus'/],
  [['watch', '--pid', 'DEAD'], 125, /ERR_NO_SUCH_PROCESS/],
  [['watch', '--cgroup', 'x', '--pressure', 'extreme'], 125, /--pressure: not a level/],
  [['frobnicate'], 125, /unknown command 'frobnicate'/],
  [['demo', '--bogus'], 125, /unknown option/],
  [['demo', 'extra'], 125, /too many arguments/],
  [['run'], 125, /missing required argument 'command'/],
  [['run', '--bogus', '--', 'true'], 125, /unknown option '--bogus'/],
  runFlag('--memory', '0', /--memory: must be more than 0/),
  runFlag('--memory', '-1', /--memory: not a size/),
  runFlag('--memory', '12X', /--memory: not a size/),
  runFlag('--memory', '1e400', /--memory: not a size/),
  runFlag('--memory', '64M\n1', /--memory: not a size/),
  runFlag('--swap', '-5', /--swap: not a size/),
  runFlag('--pids', '0', /--pids: not a whole number/),
  runFlag('--pids', '1.5', /--pids: not a whole number/),
  runFlag('--pids', '99999999999999999999', /--pids: not a whole number/),
  runFlag('--cpu', '0', /--cpu: not a CPU limit/),
  runFlag('--cpu', 'NaN', /--cpu: not a CPU limit/),
  runFlag('--cpu', 'Infinity', /--cpu: not a CPU limit/),
  runFlag('--stop-signal', 'SIGFOO', /--stop-signal: not a signal/),
  runFlag('--stop-signal', '0', /--stop-signal: not a signal/),
  runFlag('--stop-signal', '99', /--stop-signal: not a signal/),
  runFlag('--name', 'a/b', /--name: not a cgroup name/),
  runFlag('--name', '..', /--name: not a cgroup name/),
  runFlag('--parent', '../..', /cannot create cgroup .*ERR_INVALID_ARGUMENT/),
  runFlag('--events-fd', '-1', /--events-fd: not a file descriptor number/),
  runFlag('--events-fd', '987', /--events-fd 987: not an open file descriptor/),
  runFlag('--events', '/nonexistent/dir/events', /--events \/nonexistent\/dir\/events: cannot open for writing/),
  ...durations,
  [['top', '--interval', 'soon'], 125, /--interval: not a duration/],
  [['top', '--interval', '-1'], 125, /--interval: not a duration/],
  [['top', '--once', '--root', '../../..'], 125, /--root: not a cgroup path/],
  [['top', '--once', '--root', 'a/../../b'], 125, /--root: not a cgroup path/],
  [['completion', 'tcsh'], 125, /completion: not a shell/],
  [['completion'], 125, /missing required argument 'shell'/],
]

test.serial(`${cases.length} bad API inputs: typed errors, no crash, no fd change`, async (t) => {
  const child = spawn('sleep', ['30'], { stdio: 'ignore' })
  const d = sh('exit 0')
  await reaped(d)
  const m = new Monitor()
  const other = new Monitor()
  const closed = new Monitor()
  closed.close()
  const ac = new AbortController()
  const aborted = new Monitor({ signal: ac.signal })
  ac.abort()
  symlinkSync(layout.unified?.mount ?? '/sys/fs/cgroup', LINK)
  // A real cgroup with limits, which the rejected rows must leave as it is.
  const made = isRoot ? Cgroup.create(CG, { memory: '64M', pids: 32 }) : undefined
  const f: Fx = { m, childPid: child.pid!, w: m.watchPid(child.pid!), dead: d.pid!, closed, aborted, foreign: other.watchPid(child.pid!), cg: made ? CG : '/' }
  const state = cgroupState()
  const b = baseline()
  let passed = 0
  for (const [name, call, expect] of cases) {
    const fds = fdTable()
    let outcome: { ok: true; value: unknown } | { ok: false; error: unknown }
    try {
      outcome = { ok: true, value: await call(f) }
    } catch (error) {
      outcome = { ok: false, error }
    }
    let good: boolean
    if ('returns' in expect) {
      good = outcome.ok && expect.returns(outcome.value)
      t.true(good, `${name}: returned ${outcome.ok ? JSON.stringify(outcome.value) : String((outcome as { error: unknown }).error)}`)
    } else {
      const e = outcome.ok ? undefined : (outcome.error as { code?: string })
      const klass = expect.abort ? AbortError : LifewatchError
      good = e instanceof klass && e.code === expect.code
      t.true(good, `${name}: expected ${klass.name} ${expect.code}, got ${outcome.ok ? 'no error' : `${(e as Error)?.name} ${e?.code}: ${(e as Error)?.message}`}`)
    }
    const added = addedFds(fds)
    t.deepEqual(added, [], `${name}: no fd left open`)
    const untouched = cgroupState() === state
    t.true(untouched, `${name}: no cgroup file written, no cgroup made`)
    if (good && untouched && added.length === 0) passed++
  }
  t.deepEqual(mismatch(b), {}, 'counters still match /proc')
  t.is(child.exitCode, null, 'the watched child is untouched')
  t.true(f.w.active, 'its watch is still active')
  report({ section: 'bad input', case: 'node: public API table', fdsLeaked: addedFds(b.table).length, eventsLost: 0, cases: cases.length, passed })
  m.close()
  other.close()
  child.kill()
  await reaped(child)
  rmSync(LINK)
  await made?.delete()
})

test(`${cli.length} bad CLI command lines: exit 125, one line, no stack`, async (t) => {
  const d = sh('exit 0')
  await reaped(d)
  let passed = 0
  await Promise.all(cli.map(async ([args, status, stderr]) => {
    const argv = args.map((a) => (a === 'DEAD' ? String(d.pid) : a))
    const r = await run([process.execPath, CLI, ...argv], { timeoutMs: 30_000 })
    const label = `lifewatch ${JSON.stringify(argv)}`
    const ok = r.code === status && stderr.test(r.stderr) && !/^\s+at /m.test(r.stderr) && r.signal === null && r.stderr.trim().split('\n').length === 1
    t.is(r.code, status, `${label}: exit status (stderr: ${r.stderr.trim()})`)
    t.regex(r.stderr, stderr, label)
    t.notRegex(r.stderr, /^\s+at /m, `${label}: no stack trace`)
    t.is(r.stderr.trim().split('\n').length, 1, `${label}: one line: ${r.stderr}`)
    if (ok) passed++
  }))
  report({ section: 'bad input', case: 'cli: lifewatch run/watch/top/demo/completion', fdsLeaked: 0, eventsLost: 0, cases: cli.length, passed })
})
