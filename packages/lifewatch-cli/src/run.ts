// `lifewatch run -- cmd args...`: a small supervisor. Starts the command in a fresh cgroup with
// limits, passes its stdio through untouched, reports its events on the event channel,
// forwards signals, reaps orphaned descendants (child subreaper), stops it at --deadline,
// runs the traced shutdown when it ends and exits with its status.
import {
  cgroupStats,
  monotonicTime,
  Monitor,
  shutdown,
  ShutdownError,
  Subreaper,
  type CgroupLimits,
  type CgroupStats,
  type OrphanEvent,
  type ShutdownResult,
  type Task,
} from 'lifewatch'

import { Channel, type ChannelOptions } from './channel.js'
import { eventRecord, humanEvent } from './format.js'
import { launch, platformFor } from './launch.js'
import { renderTree } from './spantree.js'
import { startTelemetry } from './otel.js'
import { exitStatus, shutdownRecord, summarize, summaryLines } from './summary.js'
import { after } from './timers.js'
import { EXIT_DEADLINE, UsageError } from './usage.js'

export interface RunFlags extends ChannelOptions {
  memory?: string
  swap?: string
  pids?: number | 'max'
  cpu?: string | number
  name?: string
  parent: string
  bestEffort?: boolean
  stopSignal: NodeJS.Signals
  /** ms; Infinity: never SIGKILL. */
  killTimeout: number
  /** ms; 0 or Infinity: none. */
  deadline: number
  /** ms; 0 or Infinity: no limit. */
  stepTimeout: number
}

/** How long OTLP export may take once the command has ended. */
const EXPORT_BUDGET_MS = 600

function limitsOf(f: RunFlags): { limits: CgroupLimits; flags: string[] } {
  const limits: CgroupLimits = {}
  const flags: string[] = []
  if (f.memory !== undefined) (limits.memory = f.memory), flags.push(`--memory ${f.memory}`)
  if (f.swap !== undefined) (limits.swap = f.swap), flags.push(`--swap ${f.swap}`)
  if (f.pids !== undefined) (limits.pids = f.pids as number), flags.push(`--pids ${f.pids}`)
  if (f.cpu !== undefined) (limits.cpu = f.cpu), flags.push(`--cpu ${f.cpu}`)
  return { limits, flags }
}

export async function run(command: string[], f: RunFlags): Promise<number> {
  const [cmd, ...args] = command as [string, ...string[]]
  if (f.name !== undefined && (!/^[^/\s]+$/.test(f.name) || f.name === '.' || f.name === '..')) {
    throw new UsageError(`--name: not a cgroup name (one path component): ${JSON.stringify(f.name)}`)
  }
  const { limits, flags } = limitsOf(f)
  const channel = Channel.open(f)
  try {
    return await supervise(cmd, args, f, limits, flags, channel)
  } finally {
    channel.close()
  }
}

async function supervise(cmd: string, args: string[], f: RunFlags, limits: CgroupLimits, limitFlags: string[], ch: Channel): Promise<number> {
  const p = ch.paint
  // Signals go to the command; a second Ctrl-C stops it. Listening from the start: a signal
  // while the command is being started is forwarded once it runs.
  let task: Task | undefined
  const early: NodeJS.Signals[] = []
  let requestStop!: (why: 'deadline' | 'interrupt') => void
  const stopRequested = new Promise<'deadline' | 'interrupt'>((r) => (requestStop = r))
  let stopping = false
  const stop = (why: 'deadline' | 'interrupt') => {
    stopping = true
    requestStop(why)
  }
  let interrupts = 0
  const stopHow = `${f.stopSignal}${f.killTimeout === Infinity ? '' : `, then SIGKILL after ${f.killTimeout} ms`}`
  const send = (sig: NodeJS.Signals) => {
    try {
      if (task?.running) monitor.signal(task.watch, sig)
    } catch {
      // it exited meanwhile: its exit event is on the way
    }
  }
  const forward = (sig: NodeJS.Signals) => {
    if (sig === 'SIGINT' && stopping && task) {
      ch.warn(`Ctrl-C while stopping: SIGKILL to pid ${task.pid}`)
      return send('SIGKILL')
    }
    if (sig === 'SIGINT' && ++interrupts >= 2) {
      ch.warn(`second Ctrl-C: stopping ${task ? `pid ${task.pid}` : 'the command'} (${stopHow}; Ctrl-C again: SIGKILL at once)`)
      return stop('interrupt')
    }
    if (!task) return void early.push(sig)
    send(sig)
    if (sig === 'SIGINT') ch.warn(`SIGINT forwarded to pid ${task.pid}; Ctrl-C again stops it (${stopHow})`)
  }
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP']
  for (const s of signals) process.on(s, forward)

  const tel = await startTelemetry()
  for (const w of tel.warnings) ch.warn(w)
  const telemetry = { tracerProvider: tel.tracerProvider, meterProvider: tel.meterProvider }
  const subreaper = Subreaper.enable()
  const monitor = new Monitor()
  let cgroupFailure: unknown
  const platform = platformFor(telemetry, (e) => (cgroupFailure = e))
  const watchId = () => task?.watch.id ?? 0
  const orphanLine = (o: OrphanEvent) =>
    ch.event({ ...o, watch: watchId() }, () => {
      const how = o.signal ? p.red(`killed by ${o.signal}`) : p.yellow(`exited with code ${o.exitCode}`)
      return `${p.bold('orphan')} pid ${o.pid} (${o.comm}) ${how} ${p.dim('reaped by lifewatch (child subreaper)')}`
    })
  subreaper.on('orphan', orphanLine)
  platform.onEvent((ev) => ch.event(eventRecord(ev), (pp) => humanEvent(ev, pp)))

  const spawnedAt = monotonicTime()
  try {
    const cgroupPath = `${f.parent.replace(/\/+$/, '')}/${f.name ?? `run-${process.pid}`}`
    task = await launch({ cmd, args, cgroupPath, limits, limitFlags, bestEffort: f.bestEffort === true, monitor, telemetry, channel: ch }, platform, () => cgroupFailure)
  } catch (e) {
    for (const s of signals) process.off(s, forward)
    subreaper.disable()
    monitor.close()
    await platform.close().catch(() => {})
    await tel.stop(performance.now() + EXPORT_BUDGET_MS)
    throw e
  }
  const t = task
  ch.event({ type: 'spawn', watch: t.watch.id, pid: t.pid, command: cmd, args, ...(t.cgroupPath ? { cgroup: t.cgroupPath } : {}), time: spawnedAt }, () =>
    `${p.bold('spawn')} pid ${t.pid} ${cmd}${t.cgroupPath ? ` in cgroup ${t.cgroupPath}` : p.dim(' (no cgroup of its own)')}`,
  )
  for (const sig of early.splice(0)) forward(sig)

  const pump = (async () => {
    for await (const ev of monitor) ch.event(eventRecord(ev), (pp) => humanEvent(ev, pp))
  })().catch(() => {})

  let endedAt = Infinity
  const ended = t.wait().then(
    () => void (endedAt = performance.now()),
    () => {},
  )
  let cancelDeadline = () => {}
  if (f.deadline > 0 && f.deadline !== Infinity) {
    cancelDeadline = after(f.deadline, () => {
      ch.event({ type: 'deadline', watch: t.watch.id, pid: t.pid, deadlineMs: f.deadline, time: monotonicTime() }, (pp) =>
        pp.yellow(`deadline: ${f.deadline} ms passed: stopping pid ${t.pid} (${stopHow})`),
      )
      stop('deadline')
    })
  }
  const why = await Promise.race([ended.then(() => undefined), stopRequested])
  cancelDeadline()

  const stats = readStats(t)
  let result: ShutdownResult
  try {
    result = await shutdown(t, { monitor, platform, killSignal: f.stopSignal, killTimeout: f.killTimeout, stepTimeout: f.stepTimeout === 0 ? Infinity : f.stepTimeout, ...telemetry })
  } catch (e) {
    if (!(e instanceof ShutdownError)) throw e
    result = e.result
    for (const err of e.errors) ch.warn(`shutdown step failed: ${err.message}`)
  }
  if (endedAt === Infinity) endedAt = performance.now()
  for (const s of signals) process.off(s, forward)
  await pump
  if (!t.cgroupPath) await killLeftovers(subreaper, f, ch)
  await subreaper.drain()
  subreaper.off('orphan', orphanLine)
  for (const o of subreaper.disable()) orphanLine(o)

  const summary = summarize(result.exit, spawnedAt, stats, result.oomKills, why === 'deadline')
  const status = why === 'deadline' ? EXIT_DEADLINE : exitStatus(result.exit)
  ch.event(
    shutdownRecord(t.watch.id, result, status, summary),
    (pp) => `${pp.bold('shutdown')} ${result.errors.length ? pp.red('with errors') : pp.green('clean')} ${pp.dim(`exit status ${status}`)}`,
  )
  ch.note(renderTree(tel.tracerProvider.spans, p))
  ch.note(summaryLines(summary))
  for (const problem of await tel.stop(endedAt + EXPORT_BUDGET_MS)) process.stderr.write(`lifewatch: ${problem}\n`)
  return status
}

/** The cgroup's figures when the command ended, before the shutdown removes the cgroup. */
function readStats(t: Task): CgroupStats | undefined {
  if (!t.cgroupPath) return undefined
  try {
    return cgroupStats(t.cgroupPath)
  } catch {
    return undefined // already gone
  }
}

/**
 * Without a cgroup nothing kills what the command left running: its orphaned descendants
 * (reparented to lifewatch, the subreaper) get the stop signal, then SIGKILL after the kill
 * timeout; the subreaper reaps and reports them.
 */
async function killLeftovers(subreaper: Subreaper, f: RunFlags, ch: Channel): Promise<void> {
  // Rounds: killing one orphan reparents its own children here in turn.
  for (let round = 0; round < 10; round++) {
    const pids = subreaper.liveOrphans()
    if (pids.length === 0) return
    ch.warn(`${pids.length} orphaned descendant(s) still running (${pids.join(', ')}): stopping them (no cgroup to kill them with)`)
    const monitor = new Monitor()
    try {
      await Promise.allSettled(pids.map((pid) => monitor.kill(pid, { killSignal: f.stopSignal, timeout: f.killTimeout })))
    } finally {
      monitor.close()
    }
  }
}
