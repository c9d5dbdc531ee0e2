// The real side of the property run (property.spec.ts): the processes, monitors, cgroups,
// tasks and workers one sequence of operations made, what was observed of them, and the
// invariants checked once the sequence is over (`World.teardown`).
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, readlinkSync, rmdirSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import type { Worker } from 'node:worker_threads'

import {
  AbortError,
  Cgroup,
  cgroupLayout,
  fdStats,
  LifewatchError,
  type CgroupLike,
  type CgroupWatch,
  type FdKind,
  type LifewatchEvent,
  type Monitor,
  type Platform,
  type ShutdownResult,
  type Task,
  type Watch,
} from '../../../src/index.js'

export const SIG = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGUSR1: 10, SIGTERM: 15, SIGCONT: 18, SIGWINCH: 28 } as const

/** An exit status as the model names it: `code 7`, `SIGTERM`, or `unknown`. */
export type Status = string

export function statusOf(e: { exitCode?: number | null; signal?: string | null }): Status {
  if (e.signal) return e.signal
  if (typeof e.exitCode === 'number') return `code ${e.exitCode}`
  return 'unknown'
}

/** A failed invariant: fails the sequence, and fast-check shrinks it. */
export class Violation extends Error {
  override readonly name = 'Violation'
}

// ---- /proc -------------------------------------------------------------------------------

export interface Stat {
  state: string
  ppid: number
  /** Start time in clock ticks since boot: tells a reused PID from the process we started. */
  start: string
}

export function procStat(pid: number): Stat | undefined {
  let s: string
  try {
    s = readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return undefined
  }
  // The command name may hold spaces and parentheses: fields count from the last ')'.
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ')
  return { state: f[0], ppid: Number(f[1]), start: f[19] }
}

/** Whether the process we started (not a later one with its PID) still runs. */
export function alive(pid: number, start: string): boolean {
  const s = procStat(pid)
  return s !== undefined && s.start === start && s.state !== 'Z' && s.state !== 'X'
}

/**
 * The children of this process a sequence started (`pid (comm) state`): puppets, and the shells
 * of non-children; only zombies with `onlyZombies`. Others are not the run's: a worker thread
 * registers tsx, whose esbuild service outlives the terminated worker and stays unreaped.
 */
export function children(onlyZombies = false): string[] {
  const out: string[] = []
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue
    const s = procStat(Number(d))
    if (!s || s.ppid !== process.pid || (onlyZombies && s.state !== 'Z')) continue
    let comm: string
    try {
      comm = readFileSync(`/proc/${d}/comm`, 'utf8').trim()
    } catch {
      continue // gone
    }
    if (comm === 'puppet' || comm === 'sh') out.push(`${d} (${comm}) ${s.state}`)
  }
  return out
}

/** Zombie children of this process. */
export const zombies = (): string[] => children(true)

function sigMask(status: string, field: string): bigint {
  const m = new RegExp(`^${field}:\\s+([0-9a-f]+)`, 'm').exec(status)
  return m ? BigInt(`0x${m[1]}`) : 0n
}
const bit = (sig: number): bigint => 1n << BigInt(sig - 1)

/**
 * Resolves once the puppet's SIGUSR1 handler is in place (so every signal sent from now on has
 * the outcome the model gives it), and checks the state it started in: nothing blocked, and
 * only SIGTERM ignored when asked (`extraIgnored`: what its parent shell adds, SIGINT and
 * SIGQUIT for a background job). Returns a problem, or undefined.
 */
export async function ready(pid: number, stubborn: boolean, extraIgnored: bigint): Promise<string | undefined> {
  const until = performance.now() + 10_000
  while (performance.now() < until) {
    let status: string
    try {
      status = readFileSync(`/proc/${pid}/status`, 'utf8')
    } catch {
      return `puppet ${pid} vanished before it was ready`
    }
    if (sigMask(status, 'SigCgt') & bit(SIG.SIGUSR1)) {
      const ign = sigMask(status, 'SigIgn')
      const want = (stubborn ? bit(SIG.SIGTERM) : 0n) | extraIgnored
      const blk = sigMask(status, 'SigBlk')
      if (ign !== want || blk !== 0n) return `puppet ${pid} started with SigIgn ${ign.toString(16)} (want ${want.toString(16)}), SigBlk ${blk.toString(16)}`
      return undefined
    }
    await new Promise((r) => setTimeout(r, 1))
  }
  return `puppet ${pid} not ready after 10 s`
}

// ---- fds -----------------------------------------------------------------------------------

export const FD_KINDS: FdKind[] = ['epoll', 'pidfd', 'eventfd', 'inotify', 'psi', 'control', 'timerfd']

export interface FdSnapshot {
  core: Record<FdKind, number>
  /** fd number -> what it is. */
  proc: Map<string, string>
}

export function fdSnapshot(): FdSnapshot {
  const s = fdStats()
  const core = Object.fromEntries(FD_KINDS.map((k) => [k, s[k].inUse])) as Record<FdKind, number>
  const proc = new Map<string, string>()
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      proc.set(fd, readlinkSync(`/proc/self/fd/${fd}`))
    } catch {
      // the directory's own fd, closed by now
    }
  }
  return { core, proc }
}

/** What differs from the baseline: core counters by kind, and fds opened or closed. */
export function fdDiff(base: FdSnapshot, now: FdSnapshot): string[] {
  const out: string[] = []
  for (const k of FD_KINDS) if (now.core[k] !== base.core[k]) out.push(`core ${k} in use ${now.core[k]} (baseline ${base.core[k]})`)
  for (const [fd, target] of now.proc) {
    const was = base.proc.get(fd)
    if (was === undefined) out.push(`fd ${fd} open: ${target}`)
    else if (was !== target) out.push(`fd ${fd} is ${target} (baseline ${was})`)
  }
  for (const [fd, target] of base.proc) if (!now.proc.has(fd)) out.push(`fd ${fd} closed: ${target}`)
  return out
}

// ---- waiting -------------------------------------------------------------------------------

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Polls `probe` until it returns nothing to complain about, or `ms` passed: the last complaint. */
export async function settle<T>(ms: number, probe: () => T[]): Promise<T[]> {
  const until = performance.now() + ms
  let left = probe()
  while (left.length > 0 && performance.now() < until) {
    await sleep(5)
    left = probe()
  }
  return left
}

/** `p`, or a Violation naming `what` if it has not settled after `ms`. */
export async function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Violation(`hang: ${what} did not settle within ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([p, hung])
  } finally {
    clearTimeout(timer)
  }
}

/** `e`'s code: a LifewatchError's, `ABORT` for an AbortError, else its class and message. */
export function codeOf(e: unknown): string {
  if (e instanceof LifewatchError) return e.code
  if (e instanceof AbortError) return 'ABORT'
  if (e instanceof Error) return `${e.name}: ${e.message}`
  return String(e)
}

// ---- the world -----------------------------------------------------------------------------

export type ProcKind = 'node' | 'nonchild' | 'monitor' | 'cgroup' | 'task' | 'taskCgroup' | 'platform'

export interface Observation {
  via: string
  status: Status
  /** The exit was seen by a watch that may not learn the status (polling a non-child). */
  unknownOk?: boolean
}

export interface ProcRec {
  pid: number
  start: string
  kind: ProcKind
  /** Node's ChildProcess: the process itself, or the shell that is a non-child's parent. */
  child?: ChildProcess
  observed: Observation[]
}

export interface MonRec {
  monitor: Monitor
  ctl?: AbortController
  fallback: boolean
  events: LifewatchEvent[]
  /** PIDs `monitor.kill(pid)` was called for: each such call may watch the PID itself. */
  killedPids?: Set<number>
  consumer?: Promise<void>
  /** How the consumer's loop ended, when it threw. */
  loopError?: unknown
}

export interface WatchRec {
  proc: number
  mon: number
  watch: Watch
}

export interface CgRec {
  path: string
  cg: CgroupLike & { delete(o?: { kill?: boolean; timeout?: number }): Promise<unknown> }
}

export interface TaskRec {
  proc: number
  task: Task
  platform?: Platform
  /** Attached, on a watch that may not learn the status: its exit may come without one. */
  unknownOk: boolean
  shutdown?: Promise<ShutdownResult>
}

export interface CgWatchRec {
  cg: number
  mon: number
  watch: CgroupWatch
}

export interface WorkerRec {
  proc: number
  worker: Worker
  exited: Promise<unknown>
  /** Terminates it (an error it reports after this is expected). */
  terminate(): Promise<number>
}

export interface Pending {
  what: string
  done: Promise<void>
  settled: boolean
  ctl?: AbortController
  abortedAt?: number
  settledAt?: number
}

/** One line of the unprivileged agent's answer (fixtures/unprivileged-agent.ts). */
export interface AgentAnswer {
  id: number
  result: string
  watches: number
  inUse: number
  unhandled: string[]
}

/** The unprivileged agent: one setpriv'd Node process for the whole run, driven over stdin. */
export class Agent {
  #p: ChildProcess
  #next = 1
  #waiting = new Map<number, (a: AgentAnswer) => void>()
  stderr = ''
  baseInUse: number | undefined

  constructor(argv: string[], env: NodeJS.ProcessEnv) {
    this.#p = spawn(argv[0], argv.slice(1), { env, stdio: ['pipe', 'pipe', 'pipe'] })
    this.#p.stderr!.on('data', (d) => (this.stderr += d))
    const lines = createInterface({ input: this.#p.stdout! })
    lines.on('line', (l) => {
      const a = JSON.parse(l) as AgentAnswer
      this.#waiting.get(a.id)?.(a)
      this.#waiting.delete(a.id)
    })
  }

  ask(req: { op: string; pid?: number; path?: string; timeout?: number }): Promise<AgentAnswer> {
    const id = this.#next++
    return new Promise((resolve, reject) => {
      this.#waiting.set(id, resolve)
      this.#p.stdin!.write(JSON.stringify({ id, ...req }) + '\n', (e) => e && reject(e))
    })
  }

  async stop(): Promise<void> {
    this.#p.stdin!.end()
    if (this.#p.exitCode === null && this.#p.signalCode === null) await new Promise((r) => this.#p.once('close', r))
  }
}

/** The model's view of a process that the world needs at teardown. */
export interface ProcFacts {
  fate: readonly string[]
}

export class World {
  readonly seq: number
  /** The cgroup hierarchies' mount points. */
  readonly mounts: string[]
  procs: ProcRec[] = []
  mons: MonRec[] = []
  watches: WatchRec[] = []
  cgs: CgRec[] = []
  tasks: TaskRec[] = []
  cgWatches: CgWatchRec[] = []
  workers: WorkerRec[] = []
  pendings: Pending[] = []
  /** The controllers of abortable pending operations, in the model's `abortable` order. */
  abortables: AbortController[] = []
  platforms: Platform[] = []
  /** Violations seen asynchronously (a pending operation's outcome); raised at the next step. */
  violations: string[] = []
  ops = 0

  constructor(seq: number, mounts: string[]) {
    this.seq = seq
    this.mounts = mounts
  }

  fail(msg: string): void {
    this.violations.push(msg)
  }

  /** Throws what went wrong so far (after each operation). */
  raise(): void {
    if (this.violations.length) throw new Violation(this.violations.join('\n'))
  }

  observe(proc: number, via: string, e: { exitCode?: number | null; signal?: string | null; pid?: number }, unknownOk = false): void {
    const p = this.procs[proc]
    if (e.pid !== undefined && e.pid !== p.pid) this.fail(`${via}: exit of pid ${e.pid} reported for pid ${p.pid}`)
    p.observed.push({ via, status: statusOf(e), unknownOk })
  }

  /** Starts watching a pending operation: `check` judges its outcome when it settles. */
  pend(what: string, work: Promise<unknown>, check: (outcome: { value?: unknown; error?: unknown }) => string | undefined, ctl?: AbortController): Pending {
    const rec: Pending = { what, settled: false, ctl, done: Promise.resolve() }
    rec.done = work.then(
      (value) => ({ value }),
      (error: unknown) => ({ error }),
    ).then((o) => {
      rec.settled = true
      rec.settledAt = performance.now()
      const bad = check(o)
      if (bad) this.fail(`${what}: ${bad}`)
    })
    this.pendings.push(rec)
    return rec
  }

  /** A monitor's consumer: every event it delivers, in order, until it ends. */
  consume(rec: MonRec): void {
    rec.consumer = (async () => {
      try {
        for await (const ev of rec.monitor) rec.events.push(ev)
      } catch (e) {
        rec.loopError = e
      }
    })()
  }

  /** Kills the process if it is still the one we started (never a later owner of its PID). */
  killProc(p: ProcRec): void {
    const s = procStat(p.pid)
    if (s && s.start === p.start && s.state !== 'Z') {
      try {
        process.kill(p.pid, 'SIGKILL')
      } catch {
        // gone in between
      }
    }
  }
}

/** Every hierarchy's mount point, to look for cgroup directories left behind. */
export function cgroupMounts(): string[] {
  const l = cgroupLayout()
  return [l.unified?.mount, ...Object.values(l.v1).map((h) => h.mount)].filter((m): m is string => !!m)
}

/** The directories of `path` (inside the hierarchies) that still exist. */
export function cgroupDirsLeft(mounts: string[], path: string): string[] {
  return mounts.map((m) => join(m, path)).filter((d) => existsSync(d))
}

/** Last-resort cleanup of directories a failed run left: kill what is in them, then rmdir. */
export async function removeDirs(dirs: string[]): Promise<void> {
  for (const d of dirs.sort((a, b) => b.length - a.length)) {
    for (let i = 0; i < 100 && existsSync(d); i++) {
      try {
        for (const pid of readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
          try {
            process.kill(Number(pid), 'SIGKILL')
          } catch {
            // gone
          }
        }
        rmdirSync(d)
      } catch {
        await sleep(10)
      }
    }
  }
}

export { Cgroup }
