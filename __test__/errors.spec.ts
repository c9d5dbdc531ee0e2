// No error code escapes the documented set: the codes the core can create are exactly those of
// `ErrorCode` that TypeScript does not create itself, and every public call given bad input
// throws (or rejects with) a LifewatchError of a listed code or an AbortError, nothing else.
import test from 'ava'
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'

import * as lifewatch from '../src/index.js'
import { AbortError, Cgroup, LifewatchError, Monitor, Platform, Subreaper, Task } from '../src/index.js'
import { reaped, root } from './helpers.js'

const source = (path: string) => readFileSync(`${root}${path}`, 'utf8')
const listed = new Set(source('src/errors.ts').match(/(?<=\| ')ERR_[A-Z_]+(?=')/g))
const readmeRows = new Set(source('README.md').match(/(?<=^\| `)ERR_[A-Z_]+(?=`)/gm))

test('the core creates only listed codes, and every listed code has a README row', (t) => {
  const core = new Set(source('crates/lifewatch-core/src/error.rs').match(/(?<==> ")ERR_[A-Z_]+(?=")/g))
  t.true(core.size >= 10, `read the core's codes: ${[...core]}`)
  for (const code of core) t.true(listed.has(code), `${code} (core) is not in ErrorCode`)
  // Codes only TypeScript creates: each must be created somewhere in src/ (no dead code).
  const tsOnly = [...listed].filter((c) => !core.has(c))
  const src = ['src/monitor.ts', 'src/native.ts', 'src/shutdown.ts', 'src/kill.ts', 'src/cgroup.ts', 'src/task.ts'].map(source).join('\n')
  for (const code of tsOnly) t.true(src.includes(`'${code}'`), `${code} is listed but never created`)
  t.deepEqual([...listed].filter((c) => !readmeRows.has(c)), [], 'codes without a README row')
  t.deepEqual([...readmeRows].filter((c) => !listed.has(c)), [], 'README rows for codes that do not exist')
})

/** Values that are wrong for nearly every parameter. */
const garbage: unknown[] = [undefined, null, -1, 0, 1.5, Number.NaN, Infinity, 2 ** 31, 2 ** 53, '', '\n', '../x', {}, [], () => {}, Symbol('s'), 10n]

/** Waits given valid (empty) options: still pending after a moment, settled at cleanup. */
const pending: Array<[string, Promise<unknown>]> = []

/** The error of a call (thrown or rejected), or undefined when it succeeded or still waits. */
async function failure(name: string, call: () => unknown): Promise<unknown> {
  try {
    const r = call()
    if (!(r instanceof Promise)) return undefined
    const settled = await Promise.race([r.then(() => 'done'), new Promise((resolve) => setTimeout(resolve, 100, 'waiting'))])
    if (settled === 'waiting') pending.push([name, r])
    return undefined
  } catch (e) {
    return e
  }
}

function escapedError(e: unknown): boolean {
  return !((e instanceof LifewatchError && listed.has(e.code)) || e instanceof AbortError)
}

test.serial('every public call given bad input fails with a listed code or AbortError, nothing else', async (t) => {
  const monitor = new Monitor()
  const platform = new Platform()
  // The target of every call whose other argument is the garbage: a call that succeeds (an
  // undefined signal is SIGTERM) may only ever reach this child.
  const victim = spawn('sleep', ['1000'], { stdio: 'ignore' })
  const pid = victim.pid!
  const calls: Array<[string, (x: unknown) => unknown]> = [
    ['new Monitor', (x) => new Monitor(x as never).close()],
    ['monitor.watchPid', (x) => monitor.watchPid(x as never)],
    ['monitor.watchCgroup', (x) => monitor.watchCgroup(x as never)],
    ['monitor.watchCgroup options', (x) => monitor.watchCgroup('/', x as never)],
    ['monitor.watchPressure', (x) => monitor.watchPressure(x as never)],
    ['monitor.watchHost', (x) => monitor.watchHost(x as never)],
    ['monitor.watchTree', (x) => monitor.watchTree(x as never)],
    ['monitor.watchTree options', (x) => monitor.watchTree(pid, x as never)],
    ['monitor.watchOomKills', (x) => monitor.watchOomKills(x as never)],
    ['observeCgroups', (x) => lifewatch.observeCgroups(x as never).close()],
    ['observeCgroups options', (x) => lifewatch.observeCgroups('/', x as never).close()],
    ['monitor.signal', (x) => monitor.signal(x as never)],
    ['monitor.signal sig', (x) => monitor.signal(pid, x as never)],
    ['monitor.kill', (x) => monitor.kill(x as never)],
    ['monitor.kill options', (x) => monitor.kill(pid, { timeout: 0, ...(x as object) })],
    ['monitor.unwatch', (x) => monitor.unwatch(x as never)],
    ['monitor.spawn', (x) => monitor.spawn(x as never)],
    ['monitor.spawn args', (x) => monitor.spawn('true', x as never)],
    ['monitor.events', (x) => monitor.events(x as never)],
    ['signal', (x) => lifewatch.signal(x as never)],
    ['signal sig', (x) => lifewatch.signal(pid, x as never)],
    ['kill', (x) => lifewatch.kill(x as never)],
    ['signalNumber', (x) => lifewatch.signalNumber(x as never)],
    ['signalName', (x) => lifewatch.signalName(x as never)],
    ['cgroupOf', (x) => lifewatch.cgroupOf(x as never)],
    ['cgroupStats', (x) => lifewatch.cgroupStats(x as never)],
    ['Cgroup.create', (x) => Cgroup.create(x as never)],
    ['Cgroup.create limits', (x) => Cgroup.create('../x', x as never)],
    ['Cgroup.open', (x) => Cgroup.open(x as never)],
    ['Task.spawn', (x) => Task.spawn(x as never, [], { monitor })],
    ['Task.spawn options', (x) => Task.spawn('true', [], x as never)],
    ['Task.attach', (x) => Task.attach(x as never, { monitor })],
    ['Task.attach options', (x) => Task.attach(pid, x as never)],
    ['new Platform', (x) => new Platform(x as never).close()],
    ['platform.watchOom', (x) => platform.watchOom(x as never, '/')],
    ['shutdown', (x) => lifewatch.shutdown(x as never)],
    ['Subreaper.enable', (x) => Subreaper.enable(x as never).disable()],
    ['registerFdMetrics', (x) => lifewatch.registerFdMetrics(x as never)],
  ]
  // Instances, each on something the test owns: a watch and a task of the victim, a cgroup.
  const watch = monitor.watchPid(pid)
  const task = Task.attach(pid, { monitor })
  const tree = monitor.watchTree(pid)
  calls.push(
    ['tree.wait', (x) => tree.wait(x as never)],
    ['tree.waitFor', (x) => tree.waitFor(x as never)],
    ['tree.onEvent', (x) => tree.onEvent(x as never)()],
    ['watch.wait', (x) => watch.wait(x as never)],
    ['task.wait', (x) => task.wait(x as never)],
    ['task.signal', (x) => (x === undefined ? 0 : task.signal(x as never))],
    ['task.kill', (x) => (x === undefined ? 0 : task.kill(x as never))],
    ['task.kill options', (x) => task.kill('SIGCONT', x as never)],
  )
  const cg = process.getuid?.() === 0 ? Cgroup.create(`lifewatch-test-${process.pid}-errors`) : undefined
  if (!cg) t.log('the Cgroup instance methods are left out: not root, no cgroup to call them on')
  if (cg) {
    const cgroupWatch = monitor.watchCgroup(cg.path)
    calls.push(
      ['cgroupWatch.waitFor', (x) => cgroupWatch.waitFor(x as never)],
      ['cgroupWatch.waitFor options', (x) => cgroupWatch.waitFor(() => true, { signal: AbortSignal.timeout(1), ...(x as object) })],
      ['cgroupWatch.removed', (x) => cgroupWatch.removed(x as never)],
      ['cgroupWatch.onEvent', (x) => cgroupWatch.onEvent(x as never)()],
      ['cg.add', (x) => cg.add(x as never)],
      ['cg.spawn', (x) => cg.spawn(x as never, [], { monitor })],
      ['cg.spawn options', (x) => cg.spawn('true', [], x as never)],
      ['cg.kill', (x) => cg.kill(x as never)],
      ['cg.freeze', (x) => cg.freeze(x as never)],
      ['cg.thaw', (x) => cg.thaw(x as never)],
      ['cg.waitEmpty', (x) => cg.waitEmpty(x as never)],
      ['cg.waitPopulated', (x) => cg.waitPopulated({ timeout: 0, ...(x as object) })],
      ['cg.waitFrozen', (x) => cg.waitFrozen(x as never, { timeout: 0 })],
    )
  }
  const escaped: string[] = []
  /** Messages carrying Rust's "(os error N)" instead of only the C library's words. */
  const rustText: string[] = []
  let failures = 0
  for (const [name, call] of calls) {
    for (const x of garbage) {
      const e = await failure(name, () => call(x))
      if (e === undefined) continue
      failures++
      if (/\(os error \d+\)/.test(String((e as Error)?.message))) rustText.push(`${name}: ${(e as Error).message}`)
      if (escapedError(e)) escaped.push(`${name}(${typeof x === 'symbol' ? 'Symbol' : String(x)}): ${(e as Error)?.constructor?.name} ${(e as { code?: string }).code ?? ''} ${(e as Error)?.message}`)
    }
  }
  await cg?.delete({ kill: true })
  monitor.close()
  await platform.close()
  victim.kill('SIGKILL')
  await reaped(victim)
  // The waits left pending end with the monitor, the process or the cgroup: with listed codes.
  for (const [name, r] of pending) {
    const e = await r.then(() => undefined, (err: unknown) => err)
    if (e !== undefined && escapedError(e)) escaped.push(`${name}, once it ended: ${(e as Error)?.constructor?.name} ${(e as Error)?.message}`)
  }
  t.log(`${pending.length} waits were still pending after 100 ms; each ended with the cleanup`)
  t.true(failures > calls.length * 5, `${failures} failures seen`)
  t.deepEqual(escaped, [])
  t.deepEqual(rustText, [])
})
