// A Task: one process lifewatch spawned (optionally into a cgroup of its own) or attached to by
// PID, with the containerd shim task's verbs: kill (TERM→KILL, confirmed exit), wait, delete.
// It holds a pidfd of its own besides its monitor's watch, so what it says of its process
// (`running`, `kill`, `wait`) stays true to the kernel after that monitor has closed.
import { spawn as spawnChild, type ChildProcess, type StdioOptions } from 'node:child_process'
import { once } from 'node:events'
import { accessSync, constants as fsConstants, readFileSync, statSync } from 'node:fs'
import { constants as osConstants } from 'node:os'
import { basename } from 'node:path'

import { CgroupWatch } from './cgroup-watch.js'
import { LifewatchError, invalid } from './errors.js'
import type { ExitEvent, NativeExit, OomEvent } from './events.js'
import { escalate, type KillResult } from './kill.js'
import { within } from './timers.js'
import { Monitor, type StdioOption } from './monitor.js'
import { binding, type NativeProcess } from './native.js'
import { Subreaper, type OrphanEvent } from './subreaper.js'
import { SharedRun } from './shared-run.js'
import { ATTR, telemetry, type TelemetryOptions } from './telemetry.js'
import { checkAbortSignal, checkDuration, checkOptions, checkPid, describe } from './validate.js'
import { checkSignal, type Signal } from './signals.js'
import type { Watch, WaitOptions } from './watch.js'

/**
 * What a Task needs of a cgroup. The cgroup manager's `Cgroup` has this shape; anything with it
 * works (tests use fakes).
 */
export interface CgroupLike {
  readonly path: string
  /** Starts a process inside the cgroup (clone3 with CLONE_INTO_CGROUP and a pidfd where possible). */
  spawn?(
    cmd: string,
    args: string[],
    options: { monitor: Monitor; stdio?: StdioOption | [StdioOption, StdioOption, StdioOption]; env?: Record<string, string>; cwd?: string },
  ): Watch | Promise<Watch>
  /** Kills every process and resolves once the cgroup is empty. */
  kill?(options?: { signal?: AbortSignal }): unknown
  /** Kills everything in the cgroup and removes it; stops waiting when `signal` aborts. */
  delete(options?: { kill?: boolean; signal?: AbortSignal }): unknown
}

/** An OOM kill seen in the task's cgroup during its life (recorded as a span event at shutdown). */
export interface OomRecord {
  cgroup: string
  /** Processes killed by this notification (a delta). */
  kills: number
  /** CLOCK_MONOTONIC ns when the kernel reported it. */
  time: bigint
  /** Counters from memory.events / memory.oom_control. */
  counters: Record<string, number>
}

interface CommonOptions extends TelemetryOptions {
  /** The monitor that watches the process's exit (`shutdown` closes it). */
  monitor: Monitor
  /** `container.id` on spans, when the task is a container. */
  containerId?: string
}

export interface SpawnOptions extends CommonOptions {
  /**
   * Spawn into this cgroup, which the task then owns: `delete()` removes it. Without one the
   * process is a plain `child_process` child in lifewatch's own cgroup.
   */
  cgroup?: CgroupLike
  stdio?: StdioOptions
  env?: NodeJS.ProcessEnv
  cwd?: string
  /**
   * Opt in to making this whole process a child subreaper while the task lives, so the task's
   * orphaned descendants are reparented here, reaped and reported (`task.orphans`,
   * `Subreaper`'s `'orphan'` events). Process-wide: off by default, never switched on silently.
   */
  subreaper?: boolean
  /** A cgroup watch whose OOM kills are the task's (as `trackOoms`), from its first instant. */
  oomWatch?: CgroupWatch
}

export interface AttachOptions extends CommonOptions {
  /** The cgroup the process runs in, if known (`lifewatch.cgroup.path`). */
  cgroup?: CgroupLike | string
  /** Whether `delete()` removes that cgroup. Default false for an attached process. */
  ownsCgroup?: boolean
}

export interface TaskKillOptions {
  /** Milliseconds between the signal and SIGKILL. Default 5000; 0 sends SIGKILL right after
   *  the signal; `Infinity` never escalates. */
  timeout?: number
  /** Stops waiting: the call rejects with `AbortError` (the signals already sent stay sent). */
  signal?: AbortSignal
}

export interface TaskKillResult extends KillResult {
  /** False when the process had already exited and no signal was sent. */
  signalled: boolean
  /** The first signal's name. */
  killSignal: string
}

/**
 * A Node spawn failure read as the core reads its own: the same code for the same errno. Node
 * reports a missing working directory as the command's ENOENT; the directory is looked at to
 * tell the two apart.
 */
function spawnError(cmd: string, cwd: string | undefined, e: unknown): Error {
  const errno = (e as NodeJS.ErrnoException | undefined)?.errno
  if (typeof errno === 'number') {
    const dir = cwd === undefined ? undefined : cwdErrno(cwd)
    return dir === undefined ? binding.spawnError(cmd, -errno) : binding.spawnError(cmd, dir, String(cwd))
  }
  // Not the kernel's refusal: an option Node itself rejected (a bad env, cwd or stdio value).
  const message = `spawning ${JSON.stringify(cmd)}: ${e instanceof Error ? e.message : String(e)}`
  const code = /^ERR_INVALID_ARG/.test(String((e as { code?: unknown })?.code)) ? 'ERR_INVALID_ARGUMENT' : 'ERR_IO'
  return new LifewatchError(code, message, { cause: e })
}

/** Why a process could not change to `cwd` (a positive errno), or undefined if it could. */
function cwdErrno(cwd: string): number | undefined {
  try {
    if (!statSync(cwd).isDirectory()) return osConstants.errno.ENOTDIR
    accessSync(cwd, fsConstants.X_OK)
    return undefined
  } catch (e) {
    const errno = (e as NodeJS.ErrnoException).errno
    return typeof errno === 'number' ? -errno : undefined
  }
}

/**
 * Node's stdio option as a cgroup spawn takes it (no pipes: the child is not a Node
 * ChildProcess). 'inherit' is passed as this process's own fd numbers (0, 1, 2): the same
 * thing, and the form the cgroup manager's spawn handles reliably.
 */
function cgroupStdio(stdio: StdioOptions | undefined): [StdioOption, StdioOption, StdioOption] {
  const ok = (v: unknown): v is StdioOption => v === 'inherit' || v === 'ignore' || (typeof v === 'number' && Number.isInteger(v) && v >= 0)
  const slots = stdio === undefined ? ['inherit', 'inherit', 'inherit'] : Array.isArray(stdio) ? stdio : [stdio, stdio, stdio]
  if (slots.length !== 3 || !slots.every(ok)) {
    throw invalid(`stdio for a spawn into a cgroup must be 'inherit', 'ignore' or fds, got ${describe(stdio)}`)
  }
  return slots.map((v, i) => (v === 'inherit' ? i : v)) as [StdioOption, StdioOption, StdioOption]
}

function envOf(env: NodeJS.ProcessEnv | undefined): Record<string, string> | undefined {
  if (!env) return undefined
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => typeof e[1] === 'string'))
}

function commOf(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() || undefined
  } catch {
    return undefined
  }
}

/**
 * The task's own pidfd, opened right after its monitor's watch took the PID. A process reaped
 * and its PID reused in between would need the kernel to hand out all the other PIDs first
 * (they are allocated in turn), so both name the same process.
 */
function handleOf(pid: number): NativeProcess | undefined {
  try {
    return binding.NativeProcess.open(pid)
  } catch {
    return undefined // already gone: the watch reports its exit
  }
}

// A Platform routes the OOM kills of a watch it makes to a task (`Platform.watchOom`), which is
// no part of Task's own API: the class's static block sets this once, so that `trackOoms` may
// reach the private method.
let trackOomsOf!: (task: Task, watch: CgroupWatch) => void

/** @internal Records the OOM kills `watch` (a watch of the task's cgroup) reports from now on. */
export function trackOoms(task: Task, watch: CgroupWatch): void {
  trackOomsOf(task, watch)
}

/** A process lifewatch spawned or attached to. */
export class Task implements AsyncDisposable {
  readonly pid: number
  /** `process.executable.name`: the command's basename (spawned) or `/proc/<pid>/comm` (attached). */
  readonly executableName: string | undefined
  readonly containerId: string | undefined
  readonly monitor: Monitor
  /** The Node child process, when spawned without a cgroup (its stdio streams live here). */
  readonly child: ChildProcess | undefined
  /** Orphaned descendants reaped while the task lived (with the `subreaper` option). */
  readonly orphans: OrphanEvent[] = []
  #watch: Watch
  /** The task's own pidfd; closed once the exit is known. */
  #process: NativeProcess | undefined
  #exit: ExitEvent | undefined
  /** Whether lifewatch reaps the process (spawned into a cgroup: its monitor's child). */
  #reaps: boolean
  /** The exit seen through the task's own pidfd, once its monitor's watch ended first; `held`
   *  when that wait keeps Node alive. */
  #following: { exit: Promise<ExitEvent>; held: boolean } | undefined
  /** Settles when the monitor's watch ends: true when it reported the exit (then known). */
  #watchEnded: Promise<boolean>
  #ooms: OomRecord[] = []
  #cgroup: CgroupLike | undefined
  #cgroupPath: string | undefined
  #ownsCgroup: boolean
  #deletion: SharedRun<{ cgroup?: string }> | undefined
  #subreaper: Subreaper | undefined
  #onOrphan = (ev: OrphanEvent) => this.orphans.push(ev)

  private constructor(init: {
    watch: Watch
    monitor: Monitor
    executableName: string | undefined
    containerId: string | undefined
    child?: ChildProcess
    cgroup?: CgroupLike
    cgroupPath?: string
    ownsCgroup: boolean
    reaps: boolean
    telemetry: TelemetryOptions
  }) {
    this.#watch = init.watch
    this.pid = init.watch.pid
    this.#process = handleOf(this.pid)
    this.#reaps = init.reaps
    this.monitor = init.monitor
    this.executableName = init.executableName
    this.containerId = init.containerId
    this.child = init.child
    this.#cgroup = init.cgroup
    this.#cgroupPath = init.cgroupPath ?? init.cgroup?.path
    this.#ownsCgroup = init.ownsCgroup
    const exits = telemetry(init.telemetry).processExits
    this.#watchEnded = this.#watch.wait().then(
      async (reported) => {
        const exit = await this.#withStatus(reported)
        this.#exited(exit)
        exits.add(1, { [ATTR.exitKind]: exit.signal ? 'signaled' : exit.exitCode !== undefined ? 'exited' : 'unknown' })
        return true
      },
      // The monitor closed (or unwatched) first: the task's own pidfd takes over, without
      // keeping Node alive for it, so that a child lifewatch spawned is still reaped.
      () => {
        if (this.#reaps) void this.#follow(false).catch(() => {})
        return false
      },
    )
  }

  /**
   * Starts `cmd args` and watches it from its first instant: into `options.cgroup` when given
   * (through the cgroup's spawn), otherwise as a plain Node child process. A missing command is
   * `ERR_NO_SUCH_COMMAND` either way. A spawn that fails (a closed monitor: `ERR_CLOSED`)
   * leaves no process running.
   */
  static async spawn(cmd: string, args: string[] = [], options: SpawnOptions): Promise<Task> {
    const opts = checkOptions<SpawnOptions>(options, 'options', {
      monitor: true,
      cgroup: true,
      stdio: true,
      env: true,
      cwd: true,
      subreaper: true,
      oomWatch: true,
      containerId: true,
      tracerProvider: true,
      meterProvider: true,
    })
    if (typeof cmd !== 'string' || cmd.length === 0) throw invalid(`cmd must be a non-empty string, got ${describe(cmd)}`)
    if (!Array.isArray(args) || args.some((a) => typeof a !== 'string')) throw invalid('args must be an array of strings')
    const monitor = opts.monitor
    if (!(monitor instanceof Monitor)) throw invalid('options.monitor must be a Monitor')
    if (opts.oomWatch !== undefined && !(opts.oomWatch instanceof CgroupWatch)) throw invalid('options.oomWatch must be a CgroupWatch (monitor.watchCgroup)')
    const tel = { tracerProvider: opts.tracerProvider, meterProvider: opts.meterProvider }
    const subreaper = opts.subreaper ? Subreaper.enable() : undefined
    /** Ends the process if the spawn fails after it started. */
    let started: (() => void) | undefined
    try {
      const common = { monitor, executableName: basename(cmd), containerId: opts.containerId, telemetry: tel }
      let task: Task
      if (opts.cgroup) {
        if (typeof opts.cgroup.spawn !== 'function') throw invalid(`cgroup ${opts.cgroup.path} cannot spawn processes`)
        const watch = await opts.cgroup.spawn(cmd, args, { monitor, stdio: cgroupStdio(opts.stdio), env: envOf(opts.env), cwd: opts.cwd })
        started = () => monitor.signal(watch, 'SIGKILL')
        task = new Task({ ...common, watch, cgroup: opts.cgroup, ownsCgroup: true, reaps: true })
      } else {
        // Plain spawn (no cgroup of its own). The PID is watched synchronously, before Node's
        // event loop can reap the child, so even an instant exit is seen with its status.
        let child: ChildProcess
        try {
          child = spawnChild(cmd, args, { stdio: opts.stdio ?? 'inherit', env: opts.env, cwd: opts.cwd })
        } catch (e) {
          // Some exec failures (ENOTDIR) are thrown at once, others come as an 'error' event.
          throw spawnError(cmd, opts.cwd, e)
        }
        if (child.pid === undefined) {
          const [err] = (await once(child, 'error')) as [unknown]
          throw spawnError(cmd, opts.cwd, err)
        }
        child.on('error', () => {}) // reported through the exit event
        started = () => child.kill('SIGKILL')
        const watch = monitor.watchPid(child.pid)
        task = new Task({ ...common, watch, child, ownsCgroup: false, reaps: false })
      }
      if (opts.oomWatch) task.#trackOoms(opts.oomWatch)
      if (subreaper) {
        task.#subreaper = subreaper
        subreaper.on('orphan', task.#onOrphan)
      }
      return task
    } catch (e) {
      // Failed once the process had started (its monitor closed or aborted, no fds left to
      // watch it): nobody would own it, so it must not run on. Our unreaped child keeps its
      // PID, so the signal cannot reach another process.
      try {
        started?.()
      } catch {
        // already gone
      }
      subreaper?.disable()
      throw e
    }
  }

  /** A running process lifewatch did not start (any PID, child or not). */
  static attach(pid: number, options: AttachOptions): Task {
    const opts = checkOptions<AttachOptions>(options, 'options', {
      monitor: true,
      cgroup: true,
      ownsCgroup: true,
      containerId: true,
      tracerProvider: true,
      meterProvider: true,
    })
    checkPid(pid)
    if (!(opts.monitor instanceof Monitor)) throw invalid('options.monitor must be a Monitor')
    const watch = opts.monitor.watchPid(pid)
    const cg = typeof opts.cgroup === 'string' ? undefined : opts.cgroup
    return new Task({
      watch,
      monitor: opts.monitor,
      executableName: commOf(pid),
      containerId: opts.containerId,
      cgroup: cg,
      cgroupPath: typeof opts.cgroup === 'string' ? opts.cgroup : opts.cgroup?.path,
      ownsCgroup: opts.ownsCgroup ?? false,
      reaps: false,
      telemetry: { tracerProvider: opts.tracerProvider, meterProvider: opts.meterProvider },
    })
  }

  /** The watch of the process on `monitor` (its id matches `event.watch`). */
  get watch(): Watch {
    return this.#watch
  }

  /** The cgroup the task runs in, when known (`lifewatch.cgroup.path`). */
  get cgroupPath(): string | undefined {
    return this.#cgroupPath
  }

  get cgroup(): CgroupLike | undefined {
    return this.#cgroup
  }

  /**
   * Until the process has exited, as the kernel says: the exit event when it came, the task's
   * own pidfd otherwise (its monitor may have closed while the process lives on).
   */
  get running(): boolean {
    if (this.#exit) return false
    if (this.#watch.active) return true
    return this.#process !== undefined && !this.#process.exited
  }

  get exit(): ExitEvent | undefined {
    return this.#exit
  }

  get deleted(): boolean {
    return this.#deletion !== undefined
  }

  /** OOM kills in the task's cgroup during its life (from `oomWatch` and `Platform.watchOom`). */
  get ooms(): readonly OomRecord[] {
    return this.#ooms
  }

  /** Total processes OOM-killed in the task's cgroup during its life. */
  get oomKills(): number {
    return this.#ooms.reduce((n, o) => n + o.kills, 0)
  }

  /** Records the OOM kills `watch` (a watch of the task's cgroup) reports from now on. */
  #trackOoms(watch: CgroupWatch): void {
    watch.onEvent((ev) => {
      if (ev.type === 'oom') this.#ooms.push({ cgroup: ev.cgroup, kills: ev.kills, time: ev.time, counters: ev.counters })
    })
  }

  static {
    trackOomsOf = (task, watch) => task.#trackOoms(watch)
  }

  /**
   * Resolves with the exit event; rejects with `AbortError` when `signal` aborts first. Its
   * monitor closing (or the watch removed) meanwhile does not end the wait: the task's own
   * pidfd tells the exit then.
   */
  async wait(options?: WaitOptions): Promise<ExitEvent> {
    const signal = checkAbortSignal(checkOptions<WaitOptions>(options, 'options', { signal: true }).signal)
    if (this.#exit) return this.#exit
    const exit = await within(Infinity, signal, async () => ((await this.#watchEnded) ? this.#exit! : this.#follow(true)))
    return exit as ExitEvent
  }

  /**
   * Sends a signal through the pidfd (SIGTERM by default) without waiting; false when the task
   * had already exited (as `subprocess.kill()` answers).
   */
  signal(killSignal: Signal = 'SIGTERM'): boolean {
    const signo = checkSignal(killSignal, 'killSignal')
    if (!this.running) return false
    try {
      if (this.#watch.active) this.monitor.signal(this.#watch, signo)
      else this.#process!.signal(signo)
      return true
    } catch (e) {
      if ((e as LifewatchError).code === 'ERR_NO_SUCH_PROCESS') return false
      throw e
    }
  }

  /**
   * Sends `killSignal` (SIGTERM by default) through the pidfd, SIGKILL after `timeout` ms,
   * and resolves on the confirmed exit. A task that already exited is not signalled.
   */
  async kill(killSignal: Signal = 'SIGTERM', options?: TaskKillOptions): Promise<TaskKillResult> {
    const opts = checkOptions<TaskKillOptions>(options, 'options', { timeout: true, signal: true })
    const signo = checkSignal(killSignal, 'killSignal')
    const grace = checkDuration(opts.timeout ?? 5000, 'timeout')
    const signal = checkAbortSignal(opts.signal)
    const name = typeof killSignal === 'number' ? `${killSignal}` : killSignal.startsWith('SIG') ? killSignal : `SIG${killSignal}`
    if (!this.running) return { exit: await this.wait(), forced: false, signalled: false, killSignal: name }
    const target = { pid: this.pid, signal: (s: number) => void this.signal(s), wait: (o: WaitOptions) => this.wait(o) }
    const r = await escalate(target, { signo, grace, confirm: Infinity, signal })
    return { ...r, signalled: true, killSignal: name }
  }

  /**
   * Removes what the task owns: its cgroup (killing anything left in it) and the subreaper
   * hold. Idempotent; concurrent calls share one deletion. A call's `signal` stops that call's
   * wait; the deletion stops waiting only once every call has aborted (none came without one).
   */
  async delete(options?: WaitOptions): Promise<{ cgroup?: string }> {
    const signal = checkAbortSignal(checkOptions<WaitOptions>(options, 'options', { signal: true }).signal)
    // A run every caller gave up on is ending: a new call starts another.
    if (!this.#deletion || this.#deletion.stopped) {
      const deletion: SharedRun<{ cgroup?: string }> = new SharedRun(async (stop) => {
        try {
          return await this.#delete(stop)
        } catch (e) {
          // A deletion that failed (or was stopped) may be tried again.
          if (this.#deletion === deletion) this.#deletion = undefined
          throw e
        }
      })
      this.#deletion = deletion
    }
    return this.#deletion.join(signal)
  }

  /** Kills the task if it still runs, then deletes what it owns; nothing once that is done. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.running) await this.kill()
    await this.delete()
  }

  /** The exit through the task's own pidfd (on lifewatch's shared waiter), once; `hold` keeps
   *  Node alive until it comes. */
  #follow(hold: boolean): Promise<ExitEvent> {
    if (this.#exit) return Promise.resolve(this.#exit)
    const handle = this.#process
    if (!handle) {
      const why = `the exit of pid ${this.pid} cannot be known: its monitor closed, and it had exited before the task was made`
      return Promise.reject(new LifewatchError('ERR_CLOSED', why))
    }
    if (!this.#following || (hold && !this.#following.held)) {
      const exit = new Promise<ExitEvent>((resolve, reject) =>
        handle.waitExit(this.#reaps, hold, (outcome) => {
          if (!outcome.exit) return reject(outcome.error)
          void this.#withStatus({ type: 'exit', watch: this.#watch.id, pid: this.pid, ...(outcome.exit as NativeExit<typeof outcome.exit>) }).then((ev) => {
            this.#exited(ev)
            resolve(this.#exit!)
          })
        }),
      )
      this.#following = { exit, held: hold }
    }
    return this.#following.exit
  }

  /**
   * The exit with the status Node's child_process saw, where the watch could tell none (a
   * polling watch, as on kernels without pidfd: Node reaps its own children at once).
   */
  async #withStatus(exit: ExitEvent): Promise<ExitEvent> {
    const c = this.child
    if (!c || exit.exitCode !== undefined || exit.signal !== undefined) return exit
    if (c.exitCode === null && c.signalCode === null) await once(c, 'exit')
    if (c.signalCode !== null) return { ...exit, signal: c.signalCode }
    return c.exitCode === null ? exit : { ...exit, exitCode: c.exitCode }
  }

  #exited(exit: ExitEvent): void {
    this.#exit ??= exit
    this.#process?.close()
  }

  async #delete(signal: AbortSignal): Promise<{ cgroup?: string }> {
    if (this.#subreaper) {
      this.#subreaper.reap()
      this.#subreaper.off('orphan', this.#onOrphan)
      this.#subreaper.disable()
      this.#subreaper = undefined
    }
    if (this.#ownsCgroup && this.#cgroup) {
      await this.#cgroup.delete({ kill: true, signal })
      return { cgroup: this.#cgroup.path }
    }
    return {}
  }
}

export type { OomEvent }
