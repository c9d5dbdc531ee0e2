// shutdown(): the containerd shim's Shutdown (seed 000) with a span per box —
//   Kill (only if running) → Delete → monitor.Close → platform.Close (OOM watcher, cgroup manager)
// A failing step is recorded (span status ERROR, exception event, `outcome` metric) and the
// rest still run; the call rejects at the end with an AggregateError of what failed.
import { context, SpanStatusCode, trace, type Attributes, type Context, type Span } from '@opentelemetry/api'

import { LifewatchError } from './errors.js'
import type { ExitEvent } from './events.js'
import type { ReleasedFds } from './native.js'
import type { CgroupManagerCloseResult } from './platform.js'
import { monotonicTime } from './stats.js'
import type { OomRecord } from './task.js'
import { ATTR, OOM_EVENT, SPAN, telemetry, type Outcome, type Telemetry, type TelemetryOptions } from './telemetry.js'
import { checkOptions, checkTimeout, signalNumber, type Signal } from './validate.js'

/** What shutdown needs of a task (`Task` fits). */
export interface ShutdownTask {
  readonly pid: number
  readonly running: boolean
  readonly exit: ExitEvent | undefined
  readonly executableName?: string
  readonly containerId?: string
  readonly cgroupPath?: string
  readonly ooms?: readonly OomRecord[]
  kill(signal: Signal, options: { timeout: number }): Promise<{ exit: ExitEvent; forced: boolean; signalled?: boolean }>
  wait(): Promise<ExitEvent>
  delete(): Promise<unknown>
}

/** What shutdown needs of a monitor (`Monitor` fits). */
export interface ShutdownMonitor {
  close(): ReleasedFds
}

/** What shutdown needs of a platform (`Platform` fits). */
export interface ShutdownPlatform {
  closeOomWatcher(): Promise<ReleasedFds> | ReleasedFds
  closeCgroupManager(): Promise<CgroupManagerCloseResult> | CgroupManagerCloseResult
}

export interface ShutdownOptions extends TelemetryOptions {
  /** The monitor watching the task (closed in `shutdown.monitor.close`). */
  monitor?: ShutdownMonitor
  /** The platform (OOM watcher and cgroup manager, closed in `shutdown.platform.cleanup`). */
  platform?: ShutdownPlatform
  /** Per-step timeout in ms (the kill step gets `killTimeout` more). Default 10000. */
  timeout?: number
  /** First signal of the kill step. Default `'SIGTERM'`. */
  signal?: Signal
  /** Grace period in ms between the signal and SIGKILL. Default 5000. */
  killTimeout?: number
}

export type Phase = 'task.kill' | 'task.delete' | 'monitor.close' | 'platform.cleanup' | 'platform.cleanup.oom_watcher' | 'platform.cleanup.cgroup_manager'

export interface ShutdownResult {
  pid: number
  /** The task's exit, when it was seen. */
  exit?: ExitEvent
  /** Whether the kill step sent a signal (false: the task had already exited). */
  killed: boolean
  /** Whether SIGKILL had to follow the first signal. */
  forced: boolean
  /** Fds released, by step and kind. */
  released: { monitor?: ReleasedFds; oomWatcher?: ReleasedFds; cgroupManager?: ReleasedFds }
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

const running = new WeakMap<object, Promise<ShutdownResult>>()

/**
 * Shuts a task down with its monitor and platform. Concurrent and repeated calls for the same
 * task share one run (and one trace). Spans parent under the caller's active context.
 */
export function shutdown(task: ShutdownTask, options?: ShutdownOptions): Promise<ShutdownResult> {
  if (!task || typeof task !== 'object' || typeof task.kill !== 'function') {
    return Promise.reject(new LifewatchError('ERR_INVALID_ARGUMENT', 'shutdown: task must be a Task'))
  }
  let p = running.get(task)
  if (!p) {
    try {
      p = run(task, checkOptions<ShutdownOptions>(options, 'options'))
    } catch (e) {
      return Promise.reject(e)
    }
    running.set(task, p)
  }
  return p
}

function total(r: ReleasedFds | undefined): number {
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

async function withTimeout<T>(name: string, ms: number, work: () => Promise<T> | T): Promise<T> {
  if (ms === Infinity) return work()
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      Promise.resolve().then(work),
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new StepTimeout(name, ms)), ms))),
    ])
  } finally {
    clearTimeout(timer)
  }
}

function run(task: ShutdownTask, opts: Partial<ShutdownOptions>): Promise<ShutdownResult> {
  const stepTimeout = checkTimeout(opts.timeout ?? 10_000, 'timeout')
  const killTimeout = checkTimeout(opts.killTimeout ?? 5000, 'killTimeout')
  const signal = opts.signal ?? 'SIGTERM'
  signalNumber(signal)
  const tel = telemetry(opts)
  const parent = context.active()
  const attrs: Attributes = { [ATTR.pid]: task.pid }
  if (task.executableName) attrs[ATTR.executableName] = task.executableName
  if (task.containerId) attrs[ATTR.containerId] = task.containerId
  if (task.cgroupPath) attrs[ATTR.cgroupPath] = task.cgroupPath
  const root = tel.tracer.startSpan(SPAN.shutdown, { attributes: attrs }, parent)
  const rootCtx = trace.setSpan(parent, root)
  return context.with(rootCtx, () => orchestrate(task, opts, tel, root, rootCtx, { stepTimeout, killTimeout, signal }))
}

async function orchestrate(
  task: ShutdownTask,
  opts: Partial<ShutdownOptions>,
  tel: Telemetry,
  root: Span,
  rootCtx: Context,
  cfg: { stepTimeout: number; killTimeout: number; signal: Signal },
): Promise<ShutdownResult> {
  const t0 = performance.now()
  const result: ShutdownResult = {
    pid: task.pid,
    killed: false,
    forced: false,
    released: {},
    cgroupsRemoved: [],
    durations: {},
    oomKills: 0,
    errors: [],
  }

  /** One step: a child span of `parentCtx`, timed out, recorded, never throwing. */
  const step = async <T>(
    phase: Phase,
    name: string,
    parentCtx: Context,
    ms: number,
    work: (span: Span, ctx: Context) => Promise<T> | T,
    /** For a parent step: how many of its child steps failed (its own status follows them). */
    childFailures?: () => number,
  ): Promise<T | undefined> => {
    const span = tel.tracer.startSpan(name, { attributes: { [ATTR.pid]: task.pid } }, parentCtx)
    const ctx = trace.setSpan(parentCtx, span)
    const start = performance.now()
    let outcome: Outcome = 'success'
    try {
      const value = await context.with(ctx, () => withTimeout(name, ms, () => work(span, ctx)))
      const failedChildren = childFailures?.() ?? 0
      if (failedChildren > 0) {
        outcome = 'failure'
        span.setStatus({ code: SpanStatusCode.ERROR, message: `${failedChildren} cleanup step(s) failed` })
      }
      return value
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e))
      outcome = err instanceof StepTimeout ? 'timeout' : 'failure'
      span.recordException(err)
      span.setStatus({ code: SpanStatusCode.ERROR, message: err.message })
      result.errors.push(err)
      return undefined
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
      span.setAttribute(ATTR.exitCode, 128 + signalNumber(exit.signal))
    }
  }

  // 1. Kill, only if the task is still running (the span is there either way).
  await step('task.kill', SPAN.kill, rootCtx, cfg.stepTimeout + cfg.killTimeout, async (span) => {
    if (task.running) {
      span.setAttribute(ATTR.killSignal, typeof cfg.signal === 'number' ? `${cfg.signal}` : cfg.signal)
      const r = await task.kill(cfg.signal, { timeout: cfg.killTimeout })
      result.killed = r.signalled ?? true
      result.forced = r.forced
      result.exit = r.exit
      span.setAttribute(ATTR.killForced, r.forced)
    } else {
      span.setAttribute(ATTR.killSkipped, true)
      result.exit = task.exit ?? (await task.wait())
    }
    exitAttrs(span, result.exit)
  })

  // 2. Delete: the cgroup and state the task owns.
  await step('task.delete', SPAN.delete, rootCtx, cfg.stepTimeout, async (span) => {
    if (task.cgroupPath) span.setAttribute(ATTR.cgroupPath, task.cgroupPath)
    const r = (await task.delete()) as { cgroup?: string } | undefined
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
      2 * cfg.stepTimeout + 100,
      async (span, ctx) => {
        await step('platform.cleanup.oom_watcher', SPAN.oomWatcher, ctx, cfg.stepTimeout, async (s) => {
          const released = await platform.closeOomWatcher()
          result.released.oomWatcher = released
          s.setAttribute(ATTR.fdReleased, total(released))
        })
        await step('platform.cleanup.cgroup_manager', SPAN.cgroupManager, ctx, cfg.stepTimeout, async (s) => {
          const r = await platform.closeCgroupManager()
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
  tel.recordPhase('shutdown', failed ? 'failure' : 'success', ms / 1000)
  if (failed) {
    const what = result.errors.map((e) => e.message).join('; ')
    root.setStatus({ code: SpanStatusCode.ERROR, message: `${result.errors.length} step(s) failed: ${what}` })
    root.end()
    throw new ShutdownError(result.errors, `shutdown of pid ${task.pid}: ${result.errors.length} step(s) failed: ${what}`, result)
  }
  root.end()
  return result
}
