// shutdown(): a containerd shim's Shutdown sequence, with a span per step —
//   Kill (only if running) → Delete → monitor.Close → platform.Close (OOM watcher, cgroup manager)
// A failing step is recorded (span status ERROR, exception event, `outcome` metric) and the
// rest still run; the call rejects at the end with an AggregateError of what failed.
import type { Attributes, Context, Span } from '@opentelemetry/api'

import { AbortError, LifewatchError } from './errors.js'
import type { ExitEvent } from './events.js'
import { escalate } from './kill.js'
import { otelApi } from './otel-api.js'
import { monotonicTime } from './stats.js'
import { SharedRun } from './shared-run.js'
import { ATTR, OOM_EVENT, SPAN, telemetry, type Outcome, type Telemetry, type TelemetryOptions } from './telemetry.js'
import { TIMED_OUT, within } from './timers.js'
import { checkAbortSignal, checkDuration, checkOptions } from './validate.js'
import { checkSignal, type Signal } from './signals.js'

/** Fds released, by kind (`monitor.close()` reports them so). */
export interface FdCounts {
  epoll: number
  pidfd: number
  eventfd: number
  inotify: number
  psi: number
  control: number
  timerfd: number
  netlink: number
  kmsg: number
}

/** An OOM kill a task saw (`Task.ooms` holds them): a span event at its shutdown. */
export interface ShutdownOom {
  cgroup: string
  kills: number
  /** CLOCK_MONOTONIC ns. */
  time: bigint
  counters?: Readonly<Record<string, number>>
}

/** What the cgroup manager's close did (`Platform.closeCgroupManager` reports it so). */
export interface CgroupManagerCloseResult {
  /** Paths of the cgroups removed. */
  deleted: string[]
  /** Fds the cgroup objects released, by kind (when they report it). */
  released: FdCounts
}

/** What shutdown needs of a task (`Task` fits). */
export interface ShutdownTask {
  readonly pid: number
  readonly running: boolean
  readonly exit: ExitEvent | undefined
  readonly executableName?: string
  readonly containerId?: string
  readonly cgroupPath?: string
  readonly ooms?: readonly ShutdownOom[]
  /** Sends a signal through the task's pidfd; false when the task had already exited. */
  signal(signal: Signal): boolean
  /** The exit; stops waiting when `signal` aborts. */
  wait(options: { signal: AbortSignal }): Promise<ExitEvent>
  /** Removes what the task owns (its cgroup); stops waiting when `signal` aborts. */
  delete(options: { signal: AbortSignal }): Promise<unknown>
}

/** What shutdown needs of a monitor (`Monitor` fits). */
export interface ShutdownMonitor {
  close(): FdCounts
}

/** What shutdown needs of a platform (`Platform` fits). */
export interface ShutdownPlatform {
  closeOomWatcher(options: { signal: AbortSignal }): Promise<FdCounts> | FdCounts
  closeCgroupManager(options: { signal: AbortSignal }): Promise<CgroupManagerCloseResult> | CgroupManagerCloseResult
}

export interface ShutdownOptions extends TelemetryOptions {
  /** The monitor watching the task (closed in `shutdown.monitor.close`). */
  monitor?: ShutdownMonitor
  /** The platform (OOM watcher and cgroup manager, closed in `shutdown.platform.cleanup`). */
  platform?: ShutdownPlatform
  /** The first signal of the kill step. Default `'SIGTERM'`. */
  killSignal?: Signal
  /** Milliseconds between the first signal and SIGKILL. Default 5000; 0 sends SIGKILL right
   *  after the first signal; `Infinity` never escalates. */
  killTimeout?: number
  /**
   * Milliseconds each step may wait: the kill step after SIGKILL (for the exit), the delete,
   * each platform cleanup. A step past it fails with `ERR_TIMEOUT` and the next one runs.
   * Default 10000; 0 gives a step no time to wait (it succeeds only if already done);
   * `Infinity` waits as long as it takes.
   */
  stepTimeout?: number
  /** Stops the shutdown: the current step stops waiting, no further step starts, and the call
   *  rejects with `AbortError`. */
  signal?: AbortSignal
}

export type Phase = 'task.kill' | 'task.delete' | 'monitor.close' | 'platform.cleanup' | 'platform.cleanup.oom_watcher' | 'platform.cleanup.cgroup_manager'

export interface ShutdownResult {
  pid: number
  /** The task's exit, when it was seen. */
  exit?: ExitEvent
  /** Whether the kill step sent a signal (false: the task had already exited). */
  killed: boolean
  /** Whether the task is still running after the shutdown (then the call rejected, saying so). */
  running: boolean
  /** Whether SIGKILL had to follow the first signal. */
  forced: boolean
  /** Fds released, by step and kind. */
  released: { monitor?: FdCounts; oomWatcher?: FdCounts; cgroupManager?: FdCounts }
  /** Cgroups removed by the task's delete and the cgroup manager. */
  cgroupsRemoved: string[]
  /** Milliseconds per phase, and `shutdown` for the whole. */
  durations: Partial<Record<Phase | 'shutdown', number>>
  /** OOM kills the task saw during its life. */
  oomKills: number
  /** What failed (empty on success); the call rejects when it is not. */
  errors: Error[]
}

/** The AggregateError a failed shutdown rejects with; `result` holds what did happen. */
export class ShutdownError extends AggregateError {
  override readonly name = 'ShutdownError'
  readonly result: ShutdownResult
  constructor(errors: Error[], message: string, result: ShutdownResult) {
    super(errors, message)
    this.result = result
  }
}

const running = new WeakMap<object, SharedRun<ShutdownResult>>()

/**
 * Shuts a task down with its monitor and platform. Concurrent and repeated calls for the same
 * task share one run (and one trace), made with the first call's options; every call's options
 * are checked, and a call's `signal` stops that call's wait only. The run stops waiting only
 * once every call has aborted (none came without a signal); a later call then starts anew.
 * Spans parent under the caller's active context.
 */
export function shutdown(task: ShutdownTask, options?: ShutdownOptions): Promise<ShutdownResult> {
  if (!task || typeof task !== 'object' || typeof task.signal !== 'function' || typeof task.wait !== 'function') {
    return Promise.reject(new LifewatchError('ERR_INVALID_ARGUMENT', 'shutdown: task must be a Task'))
  }
  let shared = running.get(task)
  try {
    const opts = checkOptions<ShutdownOptions>(options, 'options', {
      monitor: true,
      platform: true,
      killSignal: true,
      killTimeout: true,
      stepTimeout: true,
      signal: true,
      tracerProvider: true,
      meterProvider: true,
    })
    const signal = checkAbortSignal(opts.signal)
    if (!shared || shared.stopped) {
      const cfg = config(opts)
      shared = new SharedRun((stop) => run(task, opts, { ...cfg, signal: stop }))
      running.set(task, shared)
    }
    return shared.join(signal)
  } catch (e) {
    return Promise.reject(e)
  }
}

function total(r: FdCounts | undefined): number {
  return r ? Object.values(r).reduce((n: number, v) => n + (typeof v === 'number' ? v : 0), 0) : 0
}

/** `OomRecord.time` (CLOCK_MONOTONIC ns) to wall-clock ms for span event timestamps. */
function wallClock(mono: bigint): number {
  return Date.now() - Number(monotonicTime() - mono) / 1e6
}

class StepTimeout extends LifewatchError {
  constructor(name: string, ms: number) {
    super('ERR_TIMEOUT', `${name} did not finish within ${ms} ms`)
  }
}

interface Config {
  stepTimeout: number
  killTimeout: number
  killSignal: Signal
  signo: number
  /** The run's own: it aborts once every caller has stopped waiting. */
  signal: AbortSignal
}

/** The run's settings, checked before it starts. */
function config(opts: Partial<ShutdownOptions>): Omit<Config, 'signal'> {
  const killSignal = opts.killSignal ?? 'SIGTERM'
  return {
    stepTimeout: checkDuration(opts.stepTimeout ?? 10_000, 'stepTimeout'),
    killTimeout: checkDuration(opts.killTimeout ?? 5000, 'killTimeout'),
    killSignal,
    signo: checkSignal(killSignal, 'killSignal'),
  }
}

function run(task: ShutdownTask, opts: Partial<ShutdownOptions>, cfg: Config): Promise<ShutdownResult> {
  const tel = telemetry(opts)
  const parent = otelApi().context.active()
  const attrs: Attributes = { [ATTR.pid]: task.pid }
  if (task.executableName) attrs[ATTR.executableName] = task.executableName
  if (task.containerId) attrs[ATTR.containerId] = task.containerId
  if (task.cgroupPath) attrs[ATTR.cgroupPath] = task.cgroupPath
  const root = tel.tracer.startSpan(SPAN.shutdown, { attributes: attrs }, parent)
  const rootCtx = otelApi().trace.setSpan(parent, root)
  return otelApi().context.with(rootCtx, () => orchestrate(task, opts, tel, root, rootCtx, cfg))
}

async function orchestrate(
  task: ShutdownTask,
  opts: Partial<ShutdownOptions>,
  tel: Telemetry,
  root: Span,
  rootCtx: Context,
  cfg: Config,
): Promise<ShutdownResult> {
  const t0 = performance.now()
  const result: ShutdownResult = {
    pid: task.pid,
    killed: false,
    running: true,
    forced: false,
    released: {},
    cgroupsRemoved: [],
    durations: {},
    oomKills: 0,
    errors: [],
  }
  /** Set when the caller's signal aborted: no further step starts. */
  let aborted: AbortError | undefined

  /**
   * One step: a child span of `parentCtx`, given `ms` to wait (its work stops waiting when the
   * signal it gets aborts), recorded, never throwing.
   */
  const step = async <T>(
    phase: Phase,
    name: string,
    parentCtx: Context,
    ms: number,
    work: (span: Span, ctx: Context, signal: AbortSignal | undefined) => Promise<T> | T,
    /** For a parent step: how many of its child steps failed (its own status follows them). */
    childFailures?: () => number,
  ): Promise<void> => {
    if (aborted) return
    const span = tel.tracer.startSpan(name, { attributes: { [ATTR.pid]: task.pid } }, parentCtx)
    const ctx = otelApi().trace.setSpan(parentCtx, span)
    const start = performance.now()
    let outcome: Outcome = 'success'
    try {
      const value = await otelApi().context.with(ctx, () => within(ms, cfg.signal, async (signal) => work(span, ctx, signal)))
      if (value === TIMED_OUT) throw new StepTimeout(name, ms)
      const failedChildren = childFailures?.() ?? 0
      if (failedChildren > 0) {
        outcome = 'failure'
        span.setStatus({ code: otelApi().SpanStatusCode.ERROR, message: `${failedChildren} cleanup step(s) failed` })
      }
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e))
      outcome = err instanceof AbortError ? 'aborted' : err instanceof StepTimeout || (err as LifewatchError).code === 'ERR_TIMEOUT' ? 'timeout' : 'failure'
      span.recordException(err)
      span.setStatus({ code: otelApi().SpanStatusCode.ERROR, message: err.message })
      if (err instanceof AbortError) aborted ??= err
      else result.errors.push(err)
    } finally {
      const ms = performance.now() - start
      result.durations[phase] = ms
      tel.recordPhase(phase, outcome, ms / 1000)
      span.end()
    }
  }

  /** `process.exit.code`: the code, or 128 + signal number when a signal ended it (as a shell reports it). */
  const exitAttrs = (span: Span, exit: ExitEvent | undefined) => {
    if (!exit) return
    if (exit.exitCode !== undefined) span.setAttribute(ATTR.exitCode, exit.exitCode)
    if (exit.signal) {
      span.setAttribute(ATTR.exitSignal, exit.signal)
      span.setAttribute(ATTR.exitCode, 128 + checkSignal(exit.signal))
    }
  }

  // 1. Kill, only if the task is still running (the span is there either way). The step has
  // no limit of its own: SIGKILL goes out `killTimeout` after the first signal whatever the
  // step limit, which bounds only the wait for the exit after it.
  await step('task.kill', SPAN.kill, rootCtx, Infinity, async (span, _ctx, signal) => {
    if (task.running) {
      span.setAttribute(ATTR.killSignal, typeof cfg.killSignal === 'number' ? `${cfg.killSignal}` : cfg.killSignal)
      const target = { pid: task.pid, signal: (signo: number) => void task.signal(signo), wait: (o: { signal: AbortSignal }) => task.wait(o) }
      try {
        const r = await escalate(target, { signo: cfg.signo, grace: cfg.killTimeout, confirm: cfg.stepTimeout, signal })
        result.killed = true
        result.forced = r.forced
        result.exit = r.exit
      } catch (e) {
        // Still running after SIGKILL: both signals went out.
        if ((e as LifewatchError).code === 'ERR_TIMEOUT') result.killed = result.forced = true
        throw e
      } finally {
        span.setAttribute(ATTR.killForced, result.forced)
      }
    } else {
      span.setAttribute(ATTR.killSkipped, true)
      result.exit = task.exit
      if (!result.exit) {
        const exit = await within(cfg.stepTimeout, signal, (s) => task.wait({ signal: s }))
        if (exit === TIMED_OUT) throw new StepTimeout(SPAN.kill, cfg.stepTimeout)
        result.exit = exit
      }
    }
    exitAttrs(span, result.exit)
  })
  result.running = task.running

  // 2. Delete: the cgroup and state the task owns.
  await step('task.delete', SPAN.delete, rootCtx, cfg.stepTimeout, async (span, _ctx, signal) => {
    if (task.cgroupPath) span.setAttribute(ATTR.cgroupPath, task.cgroupPath)
    const r = (await task.delete({ signal: signal! })) as { cgroup?: string } | undefined
    if (r?.cgroup) result.cgroupsRemoved.push(r.cgroup)
  })

  // 3. The task's monitor.
  if (opts.monitor) {
    const monitor = opts.monitor
    await step('monitor.close', SPAN.monitorClose, rootCtx, cfg.stepTimeout, (span) => {
      const released = monitor.close()
      result.released.monitor = released
      span.setAttribute(ATTR.fdReleased, total(released))
    })
  }

  // 4. The platform: OOM watcher, then cgroup manager; both attempted.
  if (opts.platform) {
    const platform = opts.platform
    const before = result.errors.length
    await step(
      'platform.cleanup',
      SPAN.platformCleanup,
      rootCtx,
      Infinity,
      async (span, ctx) => {
        await step('platform.cleanup.oom_watcher', SPAN.oomWatcher, ctx, cfg.stepTimeout, async (s, _ctx, signal) => {
          const released = await platform.closeOomWatcher({ signal: signal! })
          result.released.oomWatcher = released
          s.setAttribute(ATTR.fdReleased, total(released))
        })
        await step('platform.cleanup.cgroup_manager', SPAN.cgroupManager, ctx, cfg.stepTimeout, async (s, _ctx, signal) => {
          const r = await platform.closeCgroupManager({ signal: signal! })
          result.released.cgroupManager = r.released
          for (const path of r.deleted) if (!result.cgroupsRemoved.includes(path)) result.cgroupsRemoved.push(path)
          s.setAttribute(ATTR.fdReleased, total(r.released))
          if (r.deleted.length) s.setAttribute(ATTR.cgroupPath, r.deleted)
        })
        span.setAttribute(ATTR.fdReleased, total(result.released.oomWatcher) + total(result.released.cgroupManager))
      },
      () => result.errors.length - before,
    )
  }

  // OOM kills the task saw during its life, as span events at the time they happened. Read
  // last: the OOM watcher was drained when it closed.
  for (const oom of task.ooms ?? []) {
    result.oomKills += oom.kills
    const a: Attributes = { [ATTR.cgroupPath]: oom.cgroup, [ATTR.oomKills]: oom.kills }
    for (const [k, v] of Object.entries(oom.counters ?? {})) a[`lifewatch.oom.counters.${k}`] = v
    root.addEvent(OOM_EVENT, a, wallClock(oom.time))
  }
  if (result.oomKills) root.setAttribute(ATTR.oomKills, result.oomKills)
  exitAttrs(root, result.exit)
  root.setAttribute(ATTR.killForced, result.forced)
  root.setAttribute(
    ATTR.fdReleased,
    total(result.released.monitor) + total(result.released.oomWatcher) + total(result.released.cgroupManager),
  )
  const ms = performance.now() - t0
  result.durations.shutdown = ms
  const failed = result.errors.length > 0
  tel.recordPhase('shutdown', aborted ? 'aborted' : failed ? 'failure' : 'success', ms / 1000)
  if (aborted) {
    root.recordException(aborted)
    root.setStatus({ code: otelApi().SpanStatusCode.ERROR, message: 'shutdown aborted' })
    root.end()
    throw aborted
  }
  if (failed) {
    const what = result.errors.map((e) => e.message).join('; ')
    root.setStatus({ code: otelApi().SpanStatusCode.ERROR, message: `${result.errors.length} step(s) failed: ${what}` })
    root.end()
    throw new ShutdownError(result.errors, `shutdown of pid ${task.pid}: ${result.errors.length} step(s) failed: ${what}`, result)
  }
  root.end()
  return result
}
