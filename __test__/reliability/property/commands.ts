// The operations of the property run (property.spec.ts) as fast-check commands over a model.
// The model says what each operation must do with the real processes: which calls succeed,
// which typed error a call may end with, and each process's fate — the exit statuses the
// signals sent so far may have caused (empty: it must still run). Commands pick their targets
// by index into what the model holds, so shrinking a sequence keeps the rest meaningful.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { release } from 'node:os'
import { createInterface } from 'node:readline'
import { Worker } from 'node:worker_threads'

import fc from 'fast-check'

import {
  Cgroup,
  kill,
  LifewatchError,
  Monitor,
  Platform,
  shutdown,
  ShutdownError,
  signal,
  Subreaper,
  Task,
  type CgroupWatch,
  type ExitEvent,
  type KillResult,
  type ShutdownResult,
  type TaskKillResult,
  type Watch,
} from '../../../src/index.js'
import {
  alive,
  bounded,
  cgroupDirsLeft,
  codeOf,
  procStat,
  ready,
  SIG,
  Violation,
  type Agent,
  type CgRec,
  type ProcKind,
  type World,
} from './world.js'

// ---- the model -----------------------------------------------------------------------------

export interface MProc {
  kind: ProcKind
  code: number
  stubborn: boolean
  /** Exits by itself shortly after it starts (its handlers may not be in place when signalled). */
  natural: boolean
  /** The statuses its end may have: empty while nothing that ends it was sent. */
  fate: string[]
  /** The cgroup it is in (an index into `cgs`), or -1. */
  cg: number
}

export interface MMon {
  /** open; closed (by close or abort: calls must fail); doomed (a shutdown closes it some time). */
  state: 'open' | 'closed' | 'doomed'
  aborted: boolean
  abortable: boolean
}

export interface MWatch {
  proc: number
  mon: number
  /** Not unwatched, and its monitor not closed. */
  live: boolean
}

export interface MCg {
  /** live; doomed (a delete started: it may be gone any time). */
  state: 'live' | 'doomed'
  /** A kill ran on it: anything that joins may be killed too. */
  hostile: boolean
  /** The task that owns it (deletes it at its shutdown), or -1. */
  owner: number
}

export interface MTask {
  proc: number
  mon: number
  cg: number
  platform: boolean
  shut: boolean
}

export interface Model {
  procs: MProc[]
  mons: MMon[]
  watches: MWatch[]
  cgs: MCg[]
  tasks: MTask[]
  cgWatches: Array<{ cg: number; mon: number; live: boolean }>
  workers: Array<{ proc: number; live: boolean }>
  /** Pending operations that an AbortController can stop and that were not aborted yet. */
  abortable: boolean[]
}

export function emptyModel(): Model {
  return { procs: [], mons: [], watches: [], cgs: [], tasks: [], cgWatches: [], workers: [], abortable: [] }
}

/** What the commands need besides the model and the world. */
export interface Setup {
  puppet: string
  /** The cgroup every cgroup of the run is made under. */
  parent: string
  /** The setpriv'd agent, or why there is none. */
  agent: Agent | undefined
  agentWhy: string | undefined
  workerBoot: string
  workerScript: string
}

const isAlive = (p: MProc) => p.fate.length === 0

function addFate(p: MProc, ...statuses: string[]): void {
  for (const s of statuses) if (!p.fate.includes(s)) p.fate.push(s)
}

/** The statuses signal `sig` may cause: none for a signal it ignores or survives. */
function outcome(p: MProc, sig: number): string[] {
  switch (sig) {
    case SIG.SIGKILL:
      return ['SIGKILL']
    // Before its handler is in place (only a natural puppet is signalled that early), SIGUSR1 kills.
    case SIG.SIGUSR1:
      return p.natural ? [`code ${p.code}`, 'SIGUSR1'] : [`code ${p.code}`]
    case SIG.SIGTERM:
      return p.stubborn ? [] : ['SIGTERM']
    // A background job of a non-interactive shell ignores SIGINT, from when its shell sets that
    // up after the fork: a natural puppet may be signalled before (nothing waits for it to be
    // ready), and SIGINT then kills it.
    case SIG.SIGINT:
      return p.kind === 'nonchild' && !p.natural ? [] : ['SIGINT']
    case SIG.SIGHUP:
      return ['SIGHUP']
    default:
      return [] // SIGCONT, SIGWINCH: not fatal by default
  }
}

/** Every process in cgroup `cg` may be SIGKILLed from now on (a kill or a delete with kill). */
function killCgroup(m: Model, cg: number): void {
  m.cgs[cg].hostile = true
  for (const p of m.procs) if (p.cg === cg) addFate(p, 'SIGKILL')
}

function closeMon(m: Model, mon: number, state: 'closed' | 'doomed'): void {
  if (m.mons[mon].state !== 'closed') m.mons[mon].state = state
  for (const w of m.watches) if (w.mon === mon) w.live = false
  for (const w of m.cgWatches) if (w.mon === mon) w.live = false
}

/** Index of the `sel`-th (modulo) element that passes `ok`, or -1. */
function pick<T>(xs: readonly T[], sel: number, ok: (x: T, i: number) => boolean): number {
  const idx: number[] = []
  xs.forEach((x, i) => ok(x, i) && idx.push(i))
  return idx.length ? idx[sel % idx.length] : -1
}

const openMon = (m: Model, sel: number) => pick(m.mons, sel, (x) => x.state === 'open')
const aliveProc = (m: Model, sel: number) => pick(m.procs, sel, isAlive)
const liveCg = (m: Model, sel: number) => pick(m.cgs, sel, (c) => c.state === 'live')
const calmCg = (m: Model, sel: number) => pick(m.cgs, sel, (c) => c.state === 'live' && !c.hostile)

const finite = (ms: number | undefined) => ms === undefined || Number.isFinite(ms)

// ---- commands -------------------------------------------------------------------------------

class Op implements fc.AsyncCommand<Model, World> {
  constructor(
    readonly label: string,
    readonly can: (m: Model) => boolean,
    readonly act: (m: Model, w: World) => Promise<void> | void,
  ) {}

  check(m: Readonly<Model>): boolean {
    return this.can(m as Model)
  }

  async run(m: Model, w: World): Promise<void> {
    w.ops++
    await this.act(m, w)
    w.raise()
  }

  toString(): string {
    return this.label
  }
}

/** Runs `f`, which must throw a LifewatchError with one of `codes` (or an AbortError: 'ABORT'),
 *  synchronously or by rejecting. */
async function mustFail(what: string, codes: string[], f: () => unknown): Promise<void> {
  let outcome: string
  try {
    const r = f()
    if (r instanceof Promise) await bounded(r, 10_000, what)
    outcome = 'no error'
  } catch (e) {
    if (e instanceof Violation) throw e
    outcome = codeOf(e)
    if (codes.includes(outcome)) return
  }
  throw new Violation(`${what}: wanted ${codes.join(' or ')}, got ${outcome}`)
}

const SIGNALS = [SIG.SIGTERM, SIG.SIGKILL, SIG.SIGUSR1, SIG.SIGINT, SIG.SIGHUP, SIG.SIGCONT, SIG.SIGWINCH]
const NAMES: Record<number, string> = { 1: 'SIGHUP', 2: 'SIGINT', 9: 'SIGKILL', 10: 'SIGUSR1', 15: 'SIGTERM', 18: 'SIGCONT', 28: 'SIGWINCH' }
/** One signal in each form the API takes: `SIGTERM`, `TERM`, 15. */
const signalArb = fc.record({ sig: fc.constantFrom(...SIGNALS), form: fc.constantFrom('name', 'short', 'number') })
function sigArg(s: { sig: number; form: string }): NodeJS.Signals | number {
  if (s.form === 'number') return s.sig
  return (s.form === 'short' ? NAMES[s.sig].slice(3) : NAMES[s.sig]) as NodeJS.Signals
}
const showSig = (s: { sig: number; form: string }) => JSON.stringify(sigArg(s))

/** Kill grace periods and step limits, the edges included: 0, past 2**31 ms, Infinity, default. */
const timeoutArb = fc.constantFrom(0, 1, 30, 2 ** 31 - 1, 2 ** 31, Infinity, undefined)
const cgTimeoutArb = fc.constantFrom(0, 5, 50, Infinity, undefined)

/** The exits a pending operation saw, checked against the model when they arrive. */
function watchExit(w: World, proc: number, via: string, ev: ExitEvent, unknownOk: boolean): void {
  w.observe(proc, via, ev, unknownOk)
}

/** Linux 6.15+ tells a pidfd the exit status of a process its parent reaped (PIDFD_INFO_EXIT). */
const [major, minor] = release().split('.').map(Number)
const pidfdKnowsStatus = major > 6 || (major === 6 && minor >= 15)

/** A watch of a process it does not reap may not learn the status: a fallback (polling) one,
 *  or a pidfd one on a kernel older than 6.15 (docs/api.md, what the event stream does not do). */
function unknownOk(m: Model, w: World, mon: number, proc: number): boolean {
  return (w.mons[mon].fallback || !pidfdKnowsStatus) && !(m.procs[proc].kind === 'monitor' || m.procs[proc].kind === 'cgroup')
}

/** Registers a new watch in model and world, with a wait that records its exit. */
function addWatch(m: Model, w: World, proc: number, mon: number, watch: Watch): void {
  const k = w.watches.length
  w.watches.push({ proc, mon, watch })
  m.watches.push({ proc, mon, live: true })
  const unknown = unknownOk(m, w, mon, proc)
  w.pend(`watch ${k} (pid ${watch.pid}) wait()`, watch.wait(), (o) => {
    if ('value' in o) return void watchExit(w, proc, `watch ${k}`, o.value as ExitEvent, unknown)
    if (codeOf(o.error) === 'ERR_CLOSED' && !m.watches[k].live) return undefined
    return `rejected with ${codeOf(o.error)} while its watch was live`
  })
}

function addTask(m: Model, w: World, proc: number, mon: number, task: Task, cg: number, opts: { platform?: Platform; attached?: boolean } = {}): void {
  const k = w.tasks.length
  // A spawned task knows its status (lifewatch reaps it, or Node's child_process tells it); an
  // attached one knows what its watch can tell.
  const unknown = opts.attached === true && unknownOk(m, w, mon, proc)
  w.tasks.push({ proc, task, platform: opts.platform, unknownOk: unknown })
  m.tasks.push({ proc, mon, cg, platform: opts.platform !== undefined, shut: false })
  if (cg >= 0) m.cgs[cg].owner = k
  addWatch(m, w, proc, mon, task.watch)
  // Its own wait, from the start: a task follows its process whatever happens to its monitor.
  w.pend(`task ${k} (pid ${task.pid}) wait()`, task.wait(), (o) => {
    if ('value' in o) return void watchExit(w, proc, `task ${k}`, o.value as ExitEvent, unknown)
    return `rejected with ${codeOf(o.error)}`
  })
}

/** A pending operation an AbortController may stop later (an `abort` command picks it). */
function abortable(m: Model, w: World, on: boolean): AbortController | undefined {
  if (!on) return undefined
  const ctl = new AbortController()
  m.abortable.push(true)
  w.abortables.push(ctl)
  return ctl
}

const spawnArb = (s: Setup) =>
  fc
    .record({
      kind: fc.constantFrom<ProcKind>('node', 'node', 'nonchild', 'monitor', 'monitor', 'cgroup', 'task', 'taskCgroup', 'platform'),
      code: fc.integer({ min: 0, max: 255 }),
      stubborn: fc.boolean(),
      natural: fc.option(fc.integer({ min: 0, max: 20 }), { freq: 5 }),
      mon: fc.nat(),
      cg: fc.nat(),
      watchOn: fc.option(fc.nat(), { freq: 2 }),
      memory: fc.boolean(),
    })
    .map((a) => {
      const needsMon = a.kind !== 'node' && a.kind !== 'nonchild'
      const natural = a.natural !== null
      const stubborn = a.stubborn && !natural
      return new Op(
        `spawn ${a.kind}(code ${a.code}${stubborn ? ', ignores TERM' : ''}${natural ? `, exits after ${a.natural} ms` : ''}${needsMon ? `, monitor #${a.mon}` : ''}${a.kind === 'cgroup' ? `, cgroup #${a.cg}` : ''}${a.watchOn !== null ? `, watched on #${a.watchOn}` : ''})`,
        (m) => (!needsMon || openMon(m, a.mon) >= 0) && (a.kind !== 'cgroup' || calmCg(m, a.cg) >= 0) && (a.watchOn === null || openMon(m, a.watchOn) >= 0),
        async (m, w) => {
          const args = [String(a.code), stubborn ? '1' : '0', ...(natural ? [String(a.natural)] : [])]
          const mp: MProc = { kind: a.kind, code: a.code, stubborn, natural, fate: natural ? [`code ${a.code}`] : [], cg: -1 }
          const i = m.procs.length
          const mon = needsMon ? openMon(m, a.mon) : -1
          const monitor = mon >= 0 ? w.mons[mon].monitor : undefined
          const watchOn = a.watchOn === null ? -1 : openMon(m, a.watchOn)
          let pid: number
          let child
          let spawned: Watch | undefined
          let task: Task | undefined
          let platform: Platform | undefined
          let cg = -1
          const newCgroup = (): string => `${s.parent}/s${w.seq}-c${w.cgs.length}`
          switch (a.kind) {
            case 'node':
              child = spawn(s.puppet, args, { stdio: 'ignore' })
              if (child.pid === undefined) throw new Violation('spawning the puppet failed')
              pid = child.pid
              break
            case 'nonchild': {
              // The puppet as a background job of a shell: its parent (the shell) reaps it.
              child = spawn('sh', ['-c', '"$0" "$@" & echo $!; wait', s.puppet, ...args], { stdio: ['ignore', 'pipe', 'ignore'] })
              const lines = createInterface({ input: child.stdout! })
              const [line] = (await bounded(once(lines, 'line'), 10_000, 'the shell printing its job PID')) as [string]
              lines.close()
              child.stdout!.destroy()
              pid = Number(line)
              break
            }
            case 'monitor':
              spawned = monitor!.spawn(s.puppet, args, { stdio: 'ignore' })
              pid = spawned.pid
              break
            case 'cgroup':
              cg = calmCg(m, a.cg)
              spawned = (w.cgs[cg].cg as Cgroup).spawn(s.puppet, args, { monitor: monitor!, stdio: 'ignore' })
              pid = spawned.pid
              if (m.cgs[cg].hostile) addFate(mp, 'SIGKILL')
              break
            case 'task':
              task = await Task.spawn(s.puppet, args, { monitor: monitor!, stdio: 'ignore' })
              pid = task.pid
              child = task.child
              break
            case 'taskCgroup': {
              const path = newCgroup()
              const c = Cgroup.create(path, a.memory ? { memory: '64M' } : {})
              cg = m.cgs.length
              w.cgs.push({ path, cg: c })
              m.cgs.push({ state: 'live', hostile: false, owner: -1 })
              task = await Task.spawn(s.puppet, args, { monitor: monitor!, cgroup: c, stdio: 'ignore' })
              pid = task.pid
              break
            }
            case 'platform': {
              const path = newCgroup()
              platform = new Platform()
              task = await platform.spawn(s.puppet, args, { monitor: monitor!, cgroupPath: path, limits: a.memory ? { memory: '64M' } : {}, stdio: 'ignore' })
              cg = m.cgs.length
              w.cgs.push({ path, cg: platform.cgroups[0] as CgRec['cg'] })
              m.cgs.push({ state: 'live', hostile: false, owner: -1 })
              w.platforms.push(platform)
              pid = task.pid
              break
            }
          }
          mp.cg = cg
          // A natural puppet of Node's may be reaped already (its status comes from the watch).
          const start = procStat(pid)?.start ?? ''
          w.procs.push({ pid, start, kind: a.kind, child, observed: [] })
          m.procs.push(mp)
          if (child && a.kind !== 'nonchild') {
            child.on('exit', (code, sig) => w.observe(i, 'node child_process', { exitCode: code, signal: sig }))
          }
          if (spawned) addWatch(m, w, i, mon, spawned)
          // A task's watch (its spawn watch, or one of a plain child) is registered with it.
          if (task) addTask(m, w, i, mon, task, cg, { platform })
          if (watchOn >= 0) {
            try {
              addWatch(m, w, i, watchOn, w.mons[watchOn].monitor.watchPid(pid))
            } catch (e) {
              // Only a natural puppet may be gone (and reaped by its parent) already.
              if (!(natural && codeOf(e) === 'ERR_NO_SUCH_PROCESS')) throw new Violation(`watchPid(${pid}) right after spawn: ${codeOf(e)}`)
            }
          }
          if (!natural) {
            const bad = await ready(pid, stubborn, a.kind === 'nonchild' ? 0b110n : 0n)
            if (bad) throw new Violation(bad)
          }
        },
      )
    })

const newMonitorArb = fc.record({ iterate: fc.boolean(), directWake: fc.boolean(), fallback: fc.boolean(), abortable: fc.boolean() }).map(
  (a) =>
    new Op(
      `new Monitor(${a.directWake ? '' : 'directWake false, '}${a.fallback ? 'fallback, ' : ''}${a.abortable ? 'signal, ' : ''}${a.iterate ? 'iterated' : 'not iterated'})`,
      (m) => m.mons.filter((x) => x.state === 'open').length < 4,
      (m, w) => {
        const ctl = a.abortable ? new AbortController() : undefined
        const monitor = new Monitor({ directWake: a.directWake, forceFallback: a.fallback, signal: ctl?.signal })
        const rec = { monitor, ctl, fallback: a.fallback, events: [] }
        w.mons.push(rec)
        m.mons.push({ state: 'open', aborted: false, abortable: a.abortable })
        if (a.iterate) w.consume(rec)
      },
    ),
)

const closeMonitorArb = fc.record({ mon: fc.nat(), abort: fc.boolean() }).map(
  (a) =>
    new Op(
      `${a.abort ? 'abort' : 'close'} monitor #${a.mon}`,
      (m) => pick(m.mons, a.mon, (x) => x.state === 'open' && (!a.abort || x.abortable)) >= 0,
      (m, w) => {
        const mon = pick(m.mons, a.mon, (x) => x.state === 'open' && (!a.abort || x.abortable))
        closeMon(m, mon, 'closed')
        if (a.abort) {
          m.mons[mon].aborted = true
          w.mons[mon].ctl!.abort(new Error('aborted by the sequence'))
        } else {
          w.mons[mon].monitor.close()
        }
        if (!w.mons[mon].monitor.closed) throw new Violation(`monitor #${mon} still open after ${a.abort ? 'abort' : 'close'}`)
      },
    ),
)

const watchArb = fc.record({ proc: fc.nat(), mon: fc.nat() }).map(
  (a) =>
    new Op(
      `watchPid(proc #${a.proc}) on monitor #${a.mon}`,
      (m) => aliveProc(m, a.proc) >= 0 && openMon(m, a.mon) >= 0,
      (m, w) => {
        const proc = aliveProc(m, a.proc)
        const mon = openMon(m, a.mon)
        addWatch(m, w, proc, mon, w.mons[mon].monitor.watchPid(w.procs[proc].pid))
      },
    ),
)

const unwatchArb = fc.nat().map(
  (sel) =>
    new Op(
      `unwatch watch #${sel}`,
      (m) => pick(m.watches, sel, (x) => x.live) >= 0,
      (m, w) => {
        const k = pick(m.watches, sel, (x) => x.live)
        const { mon, watch } = w.watches[k]
        m.watches[k].live = false
        const r = w.mons[mon].monitor.unwatch(watch)
        if (typeof r !== 'boolean') throw new Violation(`unwatch returned ${String(r)}`)
      },
    ),
)

type Via = 'pid' | 'monitor' | 'watch' | 'task'
const viaArb = fc.constantFrom<Via>('pid', 'monitor', 'watch', 'task')

/** The target of a signal or kill through `via`: [proc, monitor, watch or task index], or undefined. */
function target(m: Model, via: Via, sel: number, mon: number): [number, number, number] | undefined {
  switch (via) {
    case 'pid': {
      const p = aliveProc(m, sel)
      return p < 0 ? undefined : [p, -1, -1]
    }
    case 'monitor': {
      const p = aliveProc(m, sel)
      const mo = openMon(m, mon)
      return p < 0 || mo < 0 ? undefined : [p, mo, -1]
    }
    case 'watch': {
      const k = pick(m.watches, sel, (x) => x.live)
      return k < 0 ? undefined : [m.watches[k].proc, m.watches[k].mon, k]
    }
    case 'task': {
      const k = pick(m.tasks, sel, () => true)
      return k < 0 ? undefined : [m.tasks[k].proc, m.tasks[k].mon, k]
    }
  }
}

const signalArbCmd = fc.record({ via: viaArb, sel: fc.nat(), mon: fc.nat(), s: signalArb }).map(
  (a) =>
    new Op(
      `signal ${showSig(a.s)} via ${a.via} #${a.sel}${a.via === 'monitor' ? ` on monitor #${a.mon}` : ''}`,
      (m) => target(m, a.via, a.sel, a.mon) !== undefined,
      (m, w) => {
        const [proc, mon, k] = target(m, a.via, a.sel, a.mon)!
        const wasAlive = isAlive(m.procs[proc])
        const pid = w.procs[proc].pid
        const sig = sigArg(a.s)
        try {
          if (a.via === 'pid') signal(pid, sig)
          else if (a.via === 'monitor') w.mons[mon].monitor.signal(pid, sig)
          else if (a.via === 'watch') w.mons[mon].monitor.signal(w.watches[k].watch, sig)
          else {
            const sent = w.tasks[k].task.signal(sig)
            if (!sent && wasAlive) throw new Violation(`task.signal(${String(sig)}) said the running pid ${pid} had exited`)
          }
        } catch (e) {
          if (e instanceof Violation) throw e
          // Through a watch whose process may have ended, ERR_NO_SUCH_PROCESS is the answer.
          if (wasAlive || codeOf(e) !== 'ERR_NO_SUCH_PROCESS') throw new Violation(`signal ${String(sig)} to pid ${pid} via ${a.via}: ${codeOf(e)}`)
        }
        addFate(m.procs[proc], ...outcome(m.procs[proc], a.s.sig))
      },
    ),
)

const killArb = fc.record({ via: viaArb, sel: fc.nat(), mon: fc.nat(), s: signalArb, timeout: timeoutArb, abort: fc.boolean() }).map(
  (a) =>
    new Op(
      `kill via ${a.via} #${a.sel}${a.via === 'monitor' ? ` on monitor #${a.mon}` : ''} { killSignal ${showSig(a.s)}, timeout ${a.timeout} }${a.abort ? ' (abortable)' : ''}`,
      (m) => target(m, a.via, a.sel, a.mon) !== undefined,
      (m, w) => {
        const [proc, mon, k] = target(m, a.via, a.sel, a.mon)!
        const mp = m.procs[proc]
        const pid = w.procs[proc].pid
        const ctl = abortable(m, w, a.abort)
        const opts = { timeout: a.timeout, signal: ctl?.signal }
        const escalates = finite(a.timeout) && a.s.sig !== SIG.SIGKILL
        let p: Promise<KillResult | TaskKillResult>
        if (a.via === 'pid') p = kill(pid, { ...opts, killSignal: sigArg(a.s) })
        else if (a.via === 'monitor') {
          ;(w.mons[mon].killedPids ??= new Set()).add(pid)
          p = w.mons[mon].monitor.kill(pid, { ...opts, killSignal: sigArg(a.s) })
        }
        else if (a.via === 'watch') p = w.mons[mon].monitor.kill(w.watches[k].watch, { ...opts, killSignal: sigArg(a.s) })
        else p = w.tasks[k].task.kill(sigArg(a.s), opts)
        addFate(mp, ...outcome(mp, a.s.sig), ...(escalates ? ['SIGKILL'] : []))
        const unknown = a.via === 'pid' ? false : a.via === 'task' ? w.tasks[k].unknownOk : unknownOk(m, w, mon, proc)
        w.pend(`kill of pid ${pid} via ${a.via}`, p, (o) => {
          if ('value' in o) {
            const r = o.value as KillResult
            watchExit(w, proc, `kill via ${a.via}`, r.exit, unknown)
            if (r.forced && !escalates) return `forced with killSignal ${showSig(a.s)} and timeout ${a.timeout}`
            return undefined
          }
          const code = codeOf(o.error)
          if (code === 'ABORT' && ctl?.signal.aborted) return undefined
          // The monitor it waited on was closed, or the watch removed, under it (a kill by PID
          // goes through the monitor's active watch of that PID, when it has one: unwatching
          // that watch ends the kill's wait as it ends every wait of the watch, documented).
          const removed = a.via === 'watch' ? k >= 0 && !m.watches[k].live : m.watches.some((x) => x.proc === proc && x.mon === mon && !x.live)
          if (code === 'ERR_CLOSED' && (a.via === 'monitor' || a.via === 'watch') && (m.mons[mon].state !== 'open' || removed)) return undefined
          return `rejected with ${code}`
        }, ctl)
      },
    ),
)

const waitArb = fc.record({ on: fc.constantFrom('watch', 'task'), sel: fc.nat(), abort: fc.boolean() }).map(
  (a) =>
    new Op(
      `${a.on} #${a.sel} wait()${a.abort ? ' (abortable)' : ''}`,
      (m) => (a.on === 'watch' ? pick(m.watches, a.sel, (x) => x.live) : pick(m.tasks, a.sel, () => true)) >= 0,
      (m, w) => {
        const k = a.on === 'watch' ? pick(m.watches, a.sel, (x) => x.live) : pick(m.tasks, a.sel, () => true)
        const ctl = abortable(m, w, a.abort)
        const proc = a.on === 'watch' ? m.watches[k].proc : m.tasks[k].proc
        const p = a.on === 'watch' ? w.watches[k].watch.wait({ signal: ctl?.signal }) : w.tasks[k].task.wait({ signal: ctl?.signal })
        const unknown = a.on === 'watch' ? unknownOk(m, w, m.watches[k].mon, proc) : w.tasks[k].unknownOk
        w.pend(`${a.on} ${k} wait()`, p, (o) => {
          if ('value' in o) return void watchExit(w, proc, `${a.on} ${k} wait()`, o.value as ExitEvent, unknown)
          const code = codeOf(o.error)
          if (code === 'ABORT' && ctl?.signal.aborted) return undefined
          if (code === 'ERR_CLOSED' && a.on === 'watch' && !m.watches[k].live) return undefined
          return `rejected with ${code}`
        }, ctl)
      },
    ),
)

const abortArb = fc.nat().map(
  (sel) =>
    new Op(
      `abort pending #${sel}`,
      (m) => pick(m.abortable, sel, (x) => x) >= 0,
      async (m, w) => {
        const k = pick(m.abortable, sel, (x) => x)
        m.abortable[k] = false
        const ctl = w.abortables[k]
        const rec = w.pendings.find((p) => p.ctl === ctl)!
        rec.abortedAt = performance.now()
        ctl.abort(new Error('aborted by the sequence'))
        // An aborted wait ends at once, whatever it was waiting for.
        await bounded(rec.done, 2000, `${rec.what} after its abort`)
      },
    ),
)

// ---- cgroups -------------------------------------------------------------------------------

const cgCreateArb = (s: Setup) =>
  fc.boolean().map(
    (memory) =>
      new Op(
        `Cgroup.create(${memory ? '{ memory: 64M }' : ''})`,
        (m) => m.cgs.filter((c) => c.state === 'live').length < 4,
        (m, w) => {
          const path = `${s.parent}/s${w.seq}-c${w.cgs.length}`
          w.cgs.push({ path, cg: Cgroup.create(path, memory ? { memory: '64M' } : {}) })
          m.cgs.push({ state: 'live', hostile: false, owner: -1 })
        },
      ),
  )

const cgAddArb = fc.record({ proc: fc.nat(), cg: fc.nat() }).map(
  (a) =>
    new Op(
      `cgroup #${a.cg}.add(proc #${a.proc})`,
      (m) => aliveProc(m, a.proc) >= 0 && calmCg(m, a.cg) >= 0,
      (m, w) => {
        const proc = aliveProc(m, a.proc)
        const cg = calmCg(m, a.cg)
        ;(w.cgs[cg].cg as Cgroup).add(w.procs[proc].pid)
        m.procs[proc].cg = cg
      },
    ),
)

const cgKillArb = fc.record({ cg: fc.nat(), timeout: cgTimeoutArb }).map(
  (a) =>
    new Op(
      `cgroup #${a.cg}.kill({ timeout: ${a.timeout} })`,
      (m) => liveCg(m, a.cg) >= 0,
      (m, w) => {
        const cg = liveCg(m, a.cg)
        killCgroup(m, cg)
        w.pend(`cgroup ${w.cgs[cg].path} kill`, (w.cgs[cg].cg as Cgroup).kill({ timeout: a.timeout }), (o) => {
          if ('value' in o) return undefined
          const code = codeOf(o.error)
          if (a.timeout !== undefined && Number.isFinite(a.timeout) && code === 'ERR_TIMEOUT') return undefined
          if (code === 'ERR_NO_SUCH_CGROUP' && m.cgs[cg].state !== 'live') return undefined
          return `rejected with ${code}`
        })
      },
    ),
)

const cgDeleteArb = fc.record({ cg: fc.nat(), kill: fc.boolean(), timeout: cgTimeoutArb }).map(
  (a) =>
    new Op(
      `cgroup #${a.cg}.delete({ kill: ${a.kill}, timeout: ${a.timeout} })`,
      (m) => m.cgs.length > 0,
      (m, w) => {
        const cg = pick(m.cgs, a.cg, () => true)
        if (a.kill) killCgroup(m, cg)
        m.cgs[cg].state = 'doomed'
        const bounded = a.timeout !== undefined && Number.isFinite(a.timeout)
        w.pend(`cgroup ${w.cgs[cg].path} delete`, (w.cgs[cg].cg as Cgroup).delete({ kill: a.kill, timeout: a.timeout }), (o) => {
          if ('value' in o) return undefined
          const code = codeOf(o.error)
          if (bounded && code === 'ERR_TIMEOUT') return undefined
          return `rejected with ${code}`
        })
      },
    ),
)

const cgWaitEmptyArb = fc.record({ cg: fc.nat(), timeout: cgTimeoutArb, abort: fc.boolean() }).map(
  (a) =>
    new Op(
      `cgroup #${a.cg}.waitEmpty({ timeout: ${a.timeout} })${a.abort ? ' (abortable)' : ''}`,
      (m) => m.cgs.length > 0,
      (m, w) => {
        const cg = pick(m.cgs, a.cg, () => true)
        const ctl = abortable(m, w, a.abort)
        const bounded = a.timeout !== undefined && Number.isFinite(a.timeout)
        w.pend(`cgroup ${w.cgs[cg].path} waitEmpty`, (w.cgs[cg].cg as Cgroup).waitEmpty({ timeout: a.timeout, signal: ctl?.signal }), (o) => {
          if ('value' in o) return undefined
          const code = codeOf(o.error)
          if (code === 'ABORT' && ctl?.signal.aborted) return undefined
          if (bounded && code === 'ERR_TIMEOUT') return undefined
          if (code === 'ERR_NO_SUCH_CGROUP' && m.cgs[cg].state !== 'live') return undefined
          return `rejected with ${code}`
        }, ctl)
      },
    ),
)

const cgWatchArb = fc.record({ cg: fc.nat(), mon: fc.nat() }).map(
  (a) =>
    new Op(
      `monitor #${a.mon}.watchCgroup(cgroup #${a.cg})`,
      (m) => liveCg(m, a.cg) >= 0 && openMon(m, a.mon) >= 0,
      (m, w) => {
        const cg = liveCg(m, a.cg)
        const mon = openMon(m, a.mon)
        const watch: CgroupWatch = w.mons[mon].monitor.watchCgroup(w.cgs[cg].path)
        w.cgWatches.push({ cg, mon, watch })
        m.cgWatches.push({ cg, mon, live: true })
      },
    ),
)

// ---- tasks ---------------------------------------------------------------------------------

const attachArb = fc.record({ proc: fc.nat(), mon: fc.nat() }).map(
  (a) =>
    new Op(
      `Task.attach(proc #${a.proc}) on monitor #${a.mon}`,
      (m) => aliveProc(m, a.proc) >= 0 && openMon(m, a.mon) >= 0,
      (m, w) => {
        const proc = aliveProc(m, a.proc)
        const mon = openMon(m, a.mon)
        addTask(m, w, proc, mon, Task.attach(w.procs[proc].pid, { monitor: w.mons[mon].monitor }), -1, { attached: true })
      },
    ),
)

const shutdownArb = fc
  .record({ task: fc.nat(), s: signalArb, killTimeout: timeoutArb, stepTimeout: fc.constantFrom(0, 50, 5000, Infinity, undefined), withMonitor: fc.boolean(), abort: fc.boolean() })
  .map(
    (a) =>
      new Op(
        `shutdown(task #${a.task}, { killSignal ${showSig(a.s)}, killTimeout ${a.killTimeout}, stepTimeout ${a.stepTimeout}${a.withMonitor ? ', monitor' : ''} })${a.abort ? ' (abortable)' : ''}`,
        (m) => pick(m.tasks, a.task, (t) => !t.shut) >= 0,
        (m, w) => {
          const k = pick(m.tasks, a.task, (t) => !t.shut)
          const mt = m.tasks[k]
          const rec = w.tasks[k]
          const mp = m.procs[mt.proc]
          const p = w.procs[mt.proc]
          mt.shut = true
          const escalates = finite(a.killTimeout) && a.s.sig !== SIG.SIGKILL
          addFate(mp, ...outcome(mp, a.s.sig), ...(escalates ? ['SIGKILL'] : []))
          if (mt.cg >= 0) {
            killCgroup(m, mt.cg)
            m.cgs[mt.cg].state = 'doomed'
          }
          if (a.withMonitor) closeMon(m, mt.mon, 'doomed')
          const ctl = abortable(m, w, a.abort)
          const run = shutdown(rec.task, {
            killSignal: sigArg(a.s),
            killTimeout: a.killTimeout,
            stepTimeout: a.stepTimeout,
            signal: ctl?.signal,
            monitor: a.withMonitor ? w.mons[mt.mon].monitor : undefined,
            platform: rec.platform,
          })
          rec.shutdown = run
          // A second call shares the run: the same result, or the same kind of failure (with the
          // same signal, an abort ends both).
          const again = shutdown(rec.task, { signal: ctl?.signal })
          w.pend(`shutdown of task ${k}, called again`, Promise.allSettled([run, again]), (o) => {
            if (!('value' in o)) return 'allSettled rejected'
            const [first, second] = o.value as PromiseSettledResult<ShutdownResult>[]
            if (first.status === 'fulfilled' && second.status === 'fulfilled') return first.value === second.value ? undefined : 'a second call resolved with another result: not one run'
            if (first.status === 'rejected' && second.status === 'rejected') {
              return codeOf(first.reason) === codeOf(second.reason) ? undefined : `the two calls failed differently: ${codeOf(first.reason)}, ${codeOf(second.reason)}`
            }
            return `the two calls ended differently: ${first.status}, ${second.status}`
          })
          w.pend(`shutdown of task ${k} (pid ${p.pid})`, run, (o) => {
            if ('value' in o) {
              const r = o.value as ShutdownResult
              // Resolved: the task's process must be gone now, its cgroup too.
              if (alive(p.pid, p.start)) return `resolved while pid ${p.pid} still runs`
              if (r.running) return 'resolved with running: true'
              if (r.exit) watchExit(w, mt.proc, `shutdown ${k}`, r.exit, rec.unknownOk)
              if (mt.cg >= 0) {
                const left = cgroupDirsLeft(w.mounts, w.cgs[mt.cg].path)
                if (left.length) return `resolved with its cgroup still there: ${left.join(', ')}`
              }
              return undefined
            }
            const code = codeOf(o.error)
            if (code === 'ABORT' && ctl?.signal.aborted) return undefined
            if (o.error instanceof ShutdownError) {
              // Only a step past its limit may fail (a limit of 0 or 50 ms leaves no time to wait).
              const bad = o.error.errors.map(codeOf).filter((c) => c !== 'ERR_TIMEOUT')
              const limited = a.stepTimeout !== undefined && a.stepTimeout <= 50
              if (bad.length === 0 && limited) return undefined
              return `ShutdownError: ${o.error.errors.map(codeOf).join(', ')}`
            }
            return `rejected with ${code}`
          }, ctl)
        },
      ),
  )

const taskDeleteArb = fc.nat().map(
  (sel) =>
    new Op(
      `task #${sel}.delete()`,
      (m) => pick(m.tasks, sel, (t) => !t.platform) >= 0,
      (m, w) => {
        const k = pick(m.tasks, sel, (t) => !t.platform)
        const cg = m.tasks[k].cg
        if (cg >= 0) {
          killCgroup(m, cg)
          m.cgs[cg].state = 'doomed'
        }
        w.pend(`task ${k} delete()`, w.tasks[k].task.delete(), (o) => ('value' in o ? undefined : `rejected with ${codeOf(o.error)}`))
      },
    ),
)

// ---- workers -------------------------------------------------------------------------------

const workerStartArb = (s: Setup) =>
  fc.nat().map(
    (sel) =>
      new Op(
        `worker thread watching proc #${sel}`,
        (m) => aliveProc(m, sel) >= 0 && m.workers.filter((x) => x.live).length < 2,
        async (m, w) => {
          const proc = aliveProc(m, sel)
          const pid = w.procs[proc].pid
          const worker = new Worker(s.workerBoot, { workerData: { pid, script: s.workerScript } })
          const k = w.workers.length
          let terminated = false
          worker.on('message', (msg: { type: string; ev?: ExitEvent }) => {
            if (msg.type === 'event' && msg.ev?.type === 'exit') w.observe(proc, `worker ${k}`, msg.ev)
          })
          worker.on('error', (e) => terminated || w.fail(`worker ${k}: ${codeOf(e)}`))
          const exited = once(worker, 'exit')
          w.workers.push({
            proc,
            worker,
            exited,
            terminate: () => {
              terminated = true
              return worker.terminate()
            },
          })
          m.workers.push({ proc, live: true })
          const [first] = (await bounded(once(worker, 'message'), 20_000, `worker ${k} starting`)) as [{ type: string }]
          if (first.type !== 'watching') throw new Violation(`worker ${k} said ${JSON.stringify(first)} first`)
        },
      ),
  )

const workerStopArb = fc.nat().map(
  (sel) =>
    new Op(
      `terminate worker #${sel}`,
      (m) => pick(m.workers, sel, (x) => x.live) >= 0,
      async (m, w) => {
        const k = pick(m.workers, sel, (x) => x.live)
        m.workers[k].live = false
        await bounded(w.workers[k].terminate(), 10_000, `terminating worker ${k}`)
      },
    ),
)

// ---- an unprivileged user ------------------------------------------------------------------

const unprivArb = (s: Setup) =>
  fc.record({ op: fc.constantFrom('signal', 'kill', 'monitorKill', 'watchSignal', 'shutdown', 'cgroupKill', 'cgroupDelete', 'cgroupCreate'), sel: fc.nat(), timeout: fc.constantFrom(0, 30, undefined) }).map(
    (a) => {
      const onCg = a.op.startsWith('cgroup')
      return new Op(
        `as nobody: ${a.op}(${onCg ? 'cgroup' : 'proc'} #${a.sel}${onCg ? '' : `, timeout ${a.timeout}`})`,
        (m) => s.agent !== undefined && (onCg ? liveCg(m, a.sel) >= 0 : aliveProc(m, a.sel) >= 0),
        async (m, w) => {
          const req = onCg
            ? { op: a.op, path: a.op === 'cgroupCreate' ? `${w.cgs[liveCg(m, a.sel)].path}/nobody` : w.cgs[liveCg(m, a.sel)].path }
            : { op: a.op, pid: w.procs[aliveProc(m, a.sel)].pid, timeout: a.timeout }
          // Killing a cgroup with nothing alive in it needs no permission.
          const empty = onCg && !m.procs.some((p) => p.cg === liveCg(m, a.sel) && isAlive(p))
          const want = a.op === 'cgroupKill' && empty ? ['ERR_PERMISSION', 'ok'] : ['ERR_PERMISSION']
          const r = await bounded(s.agent!.ask(req), 20_000, `the unprivileged agent's ${a.op}`)
          const problems: string[] = []
          if (!want.includes(r.result)) problems.push(`ended with ${r.result}, not ${want.join(' or ')}`)
          if (r.watches !== 0) problems.push(`left ${r.watches} watch(es)`)
          if (r.inUse !== s.agent!.baseInUse) problems.push(`left ${r.inUse} core fds in use (baseline ${s.agent!.baseInUse})`)
          if (r.unhandled.length) problems.push(`unhandled rejections: ${r.unhandled.join(', ')}`)
          if (problems.length) throw new Violation(`unprivileged ${a.op}: ${problems.join('; ')}`)
        },
      )
    },
  )

// ---- bad input and closed monitors -----------------------------------------------------------

/** A PID no process can have (above the kernel's limit): a bad value let through gets
 *  ERR_NO_SUCH_PROCESS, never a signal to anyone. */
const NO_PID = 4_194_304
const BAD = {
  pid: [0, -1, 1.5, NaN, Infinity, NO_PID + 1, '1', null, {}, [], 10n],
  signal: [0, 65, -9, 1.5, NaN, 'SIGFOO', '', '9', 'sigterm ', null, {}],
  duration: [-1, NaN, -Infinity, '10', null, {}, true],
  options: [null, 5, 'x', [], { bogus: 1 }],
  path: ['', '..', 'a/../../b', 5, null, {}],
} as const

type BadCase = { name: string; values: readonly unknown[]; call: (w: World, m: Model, v: unknown) => unknown }
const badCases = (s: Setup): BadCase[] => [
  { name: 'monitor.watchPid(pid)', values: BAD.pid, call: (w, m, v) => w.mons[openMon(m, 0)].monitor.watchPid(v as number) },
  { name: 'signal(pid)', values: BAD.pid, call: (_w, _m, v) => signal(v as number) },
  { name: 'signal(pid, sig)', values: BAD.signal, call: (_w, _m, v) => signal(NO_PID, v as NodeJS.Signals) },
  { name: 'kill(pid, { timeout })', values: BAD.duration, call: (_w, _m, v) => kill(NO_PID, { timeout: v as number }) },
  { name: 'kill(pid, options)', values: BAD.options, call: (_w, _m, v) => kill(NO_PID, v as object) },
  { name: 'monitor.kill(pid, { killSignal })', values: BAD.signal, call: (w, m, v) => w.mons[openMon(m, 0)].monitor.kill(NO_PID, { killSignal: v as NodeJS.Signals }) },
  { name: 'monitor.signal(pid, sig)', values: BAD.signal, call: (w, m, v) => w.mons[openMon(m, 0)].monitor.signal(NO_PID, v as NodeJS.Signals) },
  { name: 'new Monitor(options)', values: BAD.options, call: (_w, _m, v) => new Monitor(v as object).close() },
  { name: 'new Monitor({ unref })', values: [1, 'yes', null, {}], call: (_w, _m, v) => new Monitor({ unref: v as boolean }).close() },
  { name: 'Cgroup.create(path)', values: BAD.path, call: (_w, _m, v) => Cgroup.create(v as string) },
  { name: 'Cgroup.create(path, { memory })', values: [null, {}, [], true], call: (_w, _m, v) => Cgroup.create(`${s.parent}/never`, { memory: v as number }) },
  { name: 'monitor.watchCgroup(path)', values: BAD.path, call: (w, m, v) => w.mons[openMon(m, 0)].monitor.watchCgroup(v as string) },
  { name: 'Task.spawn(cmd, args, options)', values: BAD.options, call: (_w, _m, v) => Task.spawn('true', [], v as never) },
  { name: 'Task.attach(pid, { monitor })', values: BAD.pid, call: (w, m, v) => Task.attach(v as number, { monitor: w.mons[openMon(m, 0)].monitor }) },
  { name: 'shutdown(task)', values: [null, undefined, 5, {}, 'task'], call: (_w, _m, v) => shutdown(v as Task) },
  { name: 'new Platform({ drainTimeout })', values: BAD.duration, call: (_w, _m, v) => new Platform({ drainTimeout: v as number }) },
  { name: 'Subreaper.enable(options)', values: [...BAD.options, { settle: -1 }, { exclude: 5 }, { exclude: 'x' }], call: (_w, _m, v) => Subreaper.enable(v as object).disable() },
]

const badInputArb = (s: Setup) => fc.record({ c: fc.nat(), v: fc.nat() }).map(({ c, v }) => {
  const cases = badCases(s)
  const bc = cases[c % cases.length]
  const value = bc.values[v % bc.values.length]
  const shown = typeof value === 'bigint' ? `${value}n` : typeof value === 'number' && !Number.isFinite(value) ? String(value) : JSON.stringify(value) ?? String(value)
  return new Op(
    `bad input: ${bc.name} with ${shown}`,
    (m) => openMon(m, 0) >= 0,
    // Typed, never a crash, a TypeError or a hang; nothing is left open (checked at the end).
    (m, w) => mustFail(`${bc.name} with ${shown}`, ['ERR_INVALID_ARGUMENT'], () => bc.call(w, m, value)),
  )
})

const closedUseArb = (s: Setup) => fc.record({ mon: fc.nat(), what: fc.constantFrom('watchPid', 'spawn', 'kill', 'signal', 'watchCgroup', 'taskSpawn') }).map(
  (a) =>
    new Op(
      `${a.what} on closed monitor #${a.mon}`,
      (m) => pick(m.mons, a.mon, (x) => x.state === 'closed') >= 0 && (a.what === 'spawn' || a.what === 'taskSpawn' || aliveProc(m, 0) >= 0),
      async (m, w) => {
        const mon = pick(m.mons, a.mon, (x) => x.state === 'closed')
        const monitor = w.mons[mon].monitor
        const pid = a.what === 'spawn' || a.what === 'taskSpawn' ? NO_PID : w.procs[aliveProc(m, 0)].pid
        // An aborted monitor answers with its AbortError, a closed one with ERR_CLOSED.
        const want = m.mons[mon].aborted ? ['ABORT'] : ['ERR_CLOSED']
        await mustFail(`${a.what} on a closed monitor`, want, () => {
          switch (a.what) {
            case 'watchPid':
              return monitor.watchPid(pid)
            // A puppet runs until killed: one started anyway would be left behind (a stray child).
            case 'spawn':
              return monitor.spawn(s.puppet, ['0', '0'], { stdio: 'ignore' })
            case 'kill':
              return monitor.kill(pid, { killSignal: 'SIGKILL' })
            case 'signal':
              return monitor.signal(pid, 'SIGKILL')
            case 'watchCgroup':
              return monitor.watchCgroup('/')
            default:
              return Task.spawn(s.puppet, ['0', '0'], { monitor, stdio: 'ignore' })
          }
        })
      },
    ),
)

/** Every command, weighted by repetition (fc.commands picks uniformly). */
export function allCommands(s: Setup): Array<fc.Arbitrary<fc.AsyncCommand<Model, World>>> {
  const w = <T>(n: number, a: T): T[] => Array.from({ length: n }, () => a)
  return [
    ...w(6, spawnArb(s)),
    ...w(2, newMonitorArb),
    closeMonitorArb,
    ...w(2, watchArb),
    unwatchArb,
    ...w(3, signalArbCmd),
    ...w(4, killArb),
    ...w(2, waitArb),
    ...w(2, abortArb),
    cgCreateArb(s),
    cgAddArb,
    cgKillArb,
    ...w(2, cgDeleteArb),
    cgWaitEmptyArb,
    cgWatchArb,
    attachArb,
    ...w(3, shutdownArb),
    taskDeleteArb,
    workerStartArb(s),
    workerStopArb,
    ...w(2, unprivArb(s)),
    badInputArb(s),
    closedUseArb(s),
  ]
}

export { LifewatchError }
