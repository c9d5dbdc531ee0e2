// `lifewatch run -- cmd args...`: a small supervisor. Spawns the command in a fresh cgroup with
// limits, streams its events, forwards signals, reaps orphaned descendants (child subreaper),
// runs the traced shutdown when it ends (or on a second Ctrl-C) and exits with its code.
import { LifewatchError } from '../errors.js'
import type { ExitEvent, LifewatchEvent } from '../events.js'
import { Monitor } from '../monitor.js'
import type { CgroupLimits } from '../cgroup.js'
import { Platform } from '../platform.js'
import { shutdown, ShutdownError, type ShutdownResult } from '../shutdown.js'
import { monotonicTime } from '../stats.js'
import { Subreaper, type OrphanEvent } from '../subreaper.js'
import { Task } from '../task.js'
import { signalNumber } from '../validate.js'
import { parse, UsageError } from './args.js'
import { bold, dim, green, humanLine, jsonLine, red, yellow } from './format.js'
import { startCliTelemetry } from './otel.js'
import { renderTree } from './spantree.js'
import { countArg, cpuArg, durationArg, sizeArg } from './units.js'

export const runHelp = `Usage: lifewatch run [options] -- <command> [args...]

Runs a command in a fresh cgroup with limits and supervises it: streams its events (exit,
OOM kills, cgroup changes, orphaned descendants reaped), forwards SIGINT, SIGTERM and SIGHUP
to it, and when it ends (or on a second Ctrl-C) runs the shutdown (kill if still running,
delete its cgroup, close the watchers) and prints the shutdown's span tree. Exits with the
command's exit code, or 128 + the signal number when a signal ended it.

lifewatch makes itself a child subreaper: processes the command leaves behind are reparented
to lifewatch, reaped and reported instead of lingering as zombies.

  --memory <size>        memory limit (64M, 1G...)
  --swap <size>          swap limit (v2 memory.swap.max; v1 memsw = memory + swap)
  --pids <n>             limit on the number of processes
  --cpu <limit>          CPUs (0.5) or a cpu.max quota and period ("50000 100000")
  --kill-timeout <time>  between SIGTERM and SIGKILL at shutdown (default 5s)
  --timeout <time>       limit for each shutdown step (default 10s)
  --json                 events as NDJSON on stdout (lifewatch's human lines go to stderr)
  -h, --help             this text

With OTEL_EXPORTER_OTLP_ENDPOINT set (and the other standard OTEL_* variables), the
shutdown trace and lifewatch's metrics are exported over OTLP.`

/** An NDJSON line for anything with an optional bigint `time` (kept an exact integer). */
function ndjson(obj: Record<string, unknown>): string {
  const { time, ...rest } = obj
  const body = JSON.stringify(rest)
  return time === undefined ? body : body.slice(0, -1) + `${body === '{}' ? '' : ','}"time":${time}}`
}

export function exitCodeOf(exit: ExitEvent | undefined): number {
  if (!exit) return 1
  if (exit.exitCode !== undefined) return exit.exitCode
  if (exit.signal) return 128 + signalNumber(exit.signal)
  return 1
}

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      memory: { type: 'string' },
      swap: { type: 'string' },
      pids: { type: 'string' },
      cpu: { type: 'string' },
      'kill-timeout': { type: 'string' },
      timeout: { type: 'string' },
      json: { type: 'boolean' },
    },
    true,
  )
  if (values.help) {
    console.log(runHelp)
    return 0
  }
  const [cmd, ...args] = positionals
  if (!cmd) throw new UsageError("run: give a command after '--' (try 'lifewatch run --help')")
  const limits: CgroupLimits = {}
  if (values.memory !== undefined) limits.memory = sizeArg('--memory', values.memory)
  if (values.swap !== undefined) limits.swap = sizeArg('--swap', values.swap)
  if (values.pids !== undefined) limits.pids = countArg('--pids', values.pids)
  if (values.cpu !== undefined) limits.cpu = cpuArg('--cpu', values.cpu)
  const killTimeout = values['kill-timeout'] !== undefined ? durationArg('--kill-timeout', values['kill-timeout']) : 5000
  const stepTimeout = values.timeout !== undefined ? durationArg('--timeout', values.timeout) : 10_000
  const json = values.json === true

  const since = monotonicTime()
  const say = (line: string) => json || console.error(line)
  const emit = (ev: LifewatchEvent | OrphanEvent | Record<string, unknown>) => {
    if (json) console.log('type' in ev && ev.type !== 'orphan' && 'watch' in ev ? jsonLine(ev as LifewatchEvent) : ndjson(ev as Record<string, unknown>))
  }
  const at = () => dim(`[+${(Number(monotonicTime() - since) / 1e6).toFixed(1).padStart(8)} ms]`)

  // SIGINT/SIGTERM/SIGHUP go to the command; a second Ctrl-C shuts it down at once. Listening
  // from the start: a signal while the command is being started is forwarded once it runs.
  let task: Task | undefined
  const early: NodeJS.Signals[] = []
  let requestShutdown!: () => void
  const shutdownRequested = new Promise<void>((r) => (requestShutdown = r))
  let interrupts = 0
  const forward = (sig: NodeJS.Signals) => {
    if (sig === 'SIGINT' && ++interrupts >= 2) {
      say(`${at()} ${yellow('second Ctrl-C: shutting down')}`)
      requestShutdown()
      return
    }
    if (!task) return void early.push(sig)
    try {
      if (task.running) monitor.signal(task.watch, sig)
    } catch {
      // it exited meanwhile: its exit event is on the way
    }
  }
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP']
  for (const s of signals) process.on(s, forward)

  const tel = await startCliTelemetry()
  const telOpts = { tracerProvider: tel.tracerProvider, meterProvider: tel.meterProvider }
  const subreaper = Subreaper.enable()
  const orphanLine = (o: OrphanEvent) => {
    emit(o as unknown as Record<string, unknown>)
    const how = o.signal ? red(`killed by ${o.signal}`) : yellow(`exited with code ${o.exitCode}`)
    say(`${at()} ${bold('orphan')} pid ${o.pid} (${o.comm}) ${how} ${dim('reaped by lifewatch (child subreaper)')}`)
  }
  subreaper.on('orphan', orphanLine)

  const monitor = new Monitor()
  const platform = new Platform(telOpts)
  platform.onEvent((ev) => {
    emit(ev)
    say(humanLine(ev, since))
  })

  try {
    try {
      task = await platform.spawn(cmd, args, { monitor, cgroupPath: `lifewatch/run-${process.pid}`, limits, stdio: 'inherit', ...telOpts })
    } catch (e) {
      if (!(e instanceof LifewatchError) || !['ERR_PERMISSION', 'ERR_UNSUPPORTED_KERNEL', 'ERR_NO_SUCH_CGROUP'].includes(e.code)) throw e
      // No cgroup for us here (not root, no delegated subtree...): run it anyway, plainly, and
      // say what that costs.
      say(yellow(`lifewatch: cannot create a cgroup (${e.code}: ${e.message})`))
      say(yellow(`lifewatch: running without one: ${Object.keys(limits).length ? 'the limits are NOT applied, ' : ''}no OOM watching, orphans still reaped`))
      task = await Task.spawn(cmd, args, { monitor, stdio: 'inherit', ...telOpts })
    }
  } catch (e) {
    for (const s of signals) process.off(s, forward)
    subreaper.disable()
    monitor.close()
    await platform.close().catch(() => {})
    await tel.stop()
    if (e instanceof LifewatchError) {
      console.error(`lifewatch: cannot run ${cmd}: ${e.code}: ${e.message}`)
      // As a shell says it: 127 command not found, 126 found but not runnable.
      return e.code === 'ERR_NO_SUCH_COMMAND' || e.code === 'ERR_INVALID_ARGUMENT' ? 127 : 126
    }
    throw e
  }
  emit({ type: 'spawn', pid: task.pid, command: cmd, args, cgroup: task.cgroupPath ?? null, time: monotonicTime() })
  say(`${at()} ${bold('spawn')} pid ${task.pid} ${cmd}${task.cgroupPath ? ` in cgroup ${task.cgroupPath}` : dim(' (no cgroup of its own)')}`)

  for (const sig of early.splice(0)) forward(sig)

  // Events of the task's monitor (its exit).
  const pump = (async () => {
    for await (const ev of monitor) {
      emit(ev)
      say(humanLine(ev, since))
    }
  })().catch(() => {})

  await Promise.race([task.wait().catch(() => {}), shutdownRequested])

  let result: ShutdownResult
  try {
    result = await shutdown(task, { monitor, platform, killTimeout, stepTimeout, ...telOpts })
  } catch (e) {
    if (!(e instanceof ShutdownError)) throw e
    result = e.result
    for (const err of e.errors) say(red(`lifewatch: shutdown step failed: ${err.message}`))
  }
  for (const s of signals) process.off(s, forward)
  await pump
  if (!task.cgroupPath) await killLeftovers(subreaper, killTimeout, say)
  subreaper.off('orphan', orphanLine)
  for (const o of subreaper.disable()) orphanLine(o)

  const code = exitCodeOf(result.exit)
  emit({
    type: 'shutdown',
    pid: result.pid,
    exitCode: code,
    signal: result.exit?.signal ?? null,
    killed: result.killed,
    forced: result.forced,
    oomKills: result.oomKills,
    cgroupsRemoved: result.cgroupsRemoved,
    durationsMs: result.durations,
    errors: result.errors.map((e) => e.message),
  })
  if (!json) {
    say(`${at()} ${bold('shutdown')} ${result.errors.length ? red('with errors') : green('clean')} ${dim(`exit code ${code}`)}`)
    for (const line of renderTree(tel.tracerProvider.spans)) say(line)
    if (tel.exporting) say(dim(`  trace ${tel.tracerProvider.spans[0]?.traceId ?? '?'}: exporting over OTLP`))
  }
  return code
}

/**
 * Without a cgroup there is nothing that kills what the command left running: its orphaned
 * descendants (reparented to lifewatch, the subreaper) get SIGTERM, then SIGKILL after the
 * kill timeout; the subreaper reaps and reports them.
 */
async function killLeftovers(subreaper: Subreaper, killTimeout: number, say: (s: string) => void): Promise<void> {
  // Rounds: killing one orphan reparents its own children here in turn.
  for (let round = 0; round < 10; round++) {
    const pids = subreaper.liveOrphans()
    if (pids.length === 0) return
    say(yellow(`lifewatch: ${pids.length} orphaned descendant(s) still running (${pids.join(', ')}): stopping them (no cgroup to kill them with)`))
    const monitor = new Monitor()
    try {
      await Promise.allSettled(pids.map((pid) => monitor.kill(pid, { timeout: killTimeout })))
    } finally {
      monitor.close()
    }
  }
}
