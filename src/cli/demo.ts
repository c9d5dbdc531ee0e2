// `lifewatch demo`: the whole story on processes it starts itself, nothing to configure —
// a memory hog OOM-killed in a small cgroup, a well-behaved task shut down gracefully, a
// stubborn one escalated to SIGKILL, a non-child watched to its exit; events, the shutdown
// span trees and the fd metrics. As non-root it says what it cannot do and runs the rest.

import { LifewatchError } from '../errors.js'
import type { LifewatchEvent } from '../events.js'
import { Monitor } from '../monitor.js'
import { Platform } from '../platform.js'
import { shutdown, ShutdownError, type ShutdownResult } from '../shutdown.js'
import { fdStats, monotonicTime } from '../stats.js'
import { Task } from '../task.js'
import { parse } from './args.js'
import { nonChild } from './nonchild.js'
import { bold, dim, green, humanLine, jsonLine, red, yellow } from './format.js'
import { startCliTelemetry, type CliTelemetry } from './otel.js'
import { renderTree } from './spantree.js'

export const demoHelp = `Usage: lifewatch demo [--json]

Runs, one after the other, on processes it starts itself:
  1. a memory hog (tail /dev/zero) in a new 32M cgroup: OOM-killed, the kill reported before
     the exit it caused, then the shutdown with the OOM kill as a span event
  2. a well-behaved task in a cgroup that cleans up on SIGTERM: shut down gracefully
  3. a task that ignores SIGTERM: the shutdown escalates to SIGKILL (lifewatch.kill.forced)
  4. a non-child (a shell's background job) watched to its exit through its pidfd
and prints each event, each shutdown's span tree and lifewatch's fd counters by kind.
Creating cgroups needs root (or a delegated cgroup subtree); without it 1 is skipped and
2 runs without a cgroup, with a line that says so.

  --json       events and shutdown summaries as NDJSON
  -h, --help   this text

With OTEL_EXPORTER_OTLP_ENDPOINT set, the traces and metrics are exported over OTLP.`


const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

export async function demo(argv: string[]): Promise<number> {
  const { values } = parse(argv, { json: { type: 'boolean' } })
  if (values.help) {
    console.log(demoHelp)
    return 0
  }
  const json = values.json === true
  const say = (s: string) => json || console.log(s)
  const since = monotonicTime()
  const tel = await startCliTelemetry()
  const telOpts = { tracerProvider: tel.tracerProvider, meterProvider: tel.meterProvider }
  const show = (ev: LifewatchEvent) => (json ? console.log(jsonLine(ev)) : say(`  ${humanLine(ev, since)}`))
  let printedSpans = 0
  const report = (r: ShutdownResult) => {
    if (json) {
      console.log(JSON.stringify({ type: 'shutdown', pid: r.pid, exitCode: r.exit?.exitCode ?? null, signal: r.exit?.signal ?? null, killed: r.killed, forced: r.forced, oomKills: r.oomKills, cgroupsRemoved: r.cgroupsRemoved, errors: r.errors.map((e) => e.message) }))
      return
    }
    const spans = tel.tracerProvider.spans.slice(printedSpans)
    printedSpans = tel.tracerProvider.spans.length
    say(dim('  shutdown span tree:'))
    for (const line of renderTree(spans)) say(`  ${line}`)
  }
  /** Runs the traced shutdown; a failed step is shown, not fatal to the demo. */
  const shut = async (task: Task, monitor: Monitor, platform: Platform | undefined, killTimeout = 5000) => {
    try {
      report(await shutdown(task, { monitor, platform, killTimeout, ...telOpts }))
    } catch (e) {
      if (!(e instanceof ShutdownError)) throw e
      report(e.result)
      for (const err of e.errors) say(red(`  shutdown step failed: ${err.message}`))
    }
  }
  /** Prints a monitor's and a platform's events until the monitor closes. */
  const stream = (monitor: Monitor, platform?: Platform) => {
    platform?.onEvent(show)
    return (async () => {
      for await (const ev of monitor) show(ev)
    })().catch(() => {})
  }

  say(bold('lifewatch demo'))
  const root = process.getuid?.() === 0

  // 1. OOM.
  say(`\n${bold('1. a memory hog in a 32M cgroup')}`)
  {
    const monitor = new Monitor()
    const platform = new Platform(telOpts)
    const events = stream(monitor, platform)
    let task: Task | undefined
    try {
      task = await platform.spawn('tail', ['/dev/zero'], {
        monitor,
        cgroupPath: `lifewatch/demo-oom-${process.pid}`,
        limits: { memory: '32M', swap: 0 },
        stdio: 'ignore',
        ...telOpts,
      })
      say(dim(`  tail /dev/zero, pid ${task.pid}, cgroup ${task.cgroupPath}: grows until the kernel's OOM killer stops it`))
    } catch (e) {
      if (!(e instanceof LifewatchError)) throw e
      say(yellow(`  skipped: cannot create a cgroup (${e.code}: ${e.message})`))
      if (!root) say(yellow('  creating cgroups needs root or a delegated cgroup subtree; run the demo as root to see an OOM kill'))
      monitor.close()
      await platform.close().catch(() => {})
    }
    if (task) {
      await task.wait()
      await shut(task, monitor, platform)
    }
    await events
  }

  // 2. Graceful.
  say(`\n${bold('2. a well-behaved task, shut down gracefully')}`)
  {
    const monitor = new Monitor()
    const platform = new Platform(telOpts)
    const events = stream(monitor, platform)
    const script = 'trap "exit 0" TERM; while :; do sleep 0.05; done'
    let task: Task
    try {
      task = await platform.spawn('sh', ['-c', script], { monitor, cgroupPath: `lifewatch/demo-graceful-${process.pid}`, limits: { pids: 16 }, stdio: 'ignore', ...telOpts })
      say(dim(`  pid ${task.pid} in cgroup ${task.cgroupPath} (pids.max 16): exits 0 on SIGTERM`))
    } catch (e) {
      if (!(e instanceof LifewatchError)) throw e
      say(yellow(`  no cgroup (${e.code}): a plain child process instead`))
      task = await Task.spawn('sh', ['-c', script], { monitor, stdio: 'ignore', ...telOpts })
      say(dim(`  pid ${task.pid}: exits 0 on SIGTERM`))
    }
    await sleep(300)
    await shut(task, monitor, platform)
    await events
  }

  // 3. Stubborn.
  say(`\n${bold('3. a task that ignores SIGTERM')}`)
  {
    const monitor = new Monitor()
    const events = stream(monitor)
    const task = await Task.spawn('sh', ['-c', 'trap "" TERM; while :; do sleep 0.05; done'], { monitor, stdio: 'ignore', ...telOpts })
    say(dim(`  pid ${task.pid}: SIGTERM is ignored, so the shutdown sends SIGKILL after 300 ms`))
    await sleep(200)
    await shut(task, monitor, undefined, 300)
    await events
  }

  // 4. A non-child.
  say(`\n${bold('4. a process that is not our child')}`)
  {
    const monitor = new Monitor()
    const { pid, parent: shell } = await nonChild('sleep 0.4; exit 5')
    monitor.watchPid(pid)
    say(dim(`  pid ${pid} (parent: shell ${shell.pid}), watched through its pidfd: exits with code 5 after 400 ms`))
    for await (const ev of monitor) {
      show(ev)
      if (ev.type === 'exit') break
    }
  }

  // fd metrics.
  const fds = fdStats()
  if (json) {
    console.log(JSON.stringify({ type: 'fds', ...fds }))
  } else {
    say(`\n${bold('fd counters')} ${dim('(lifewatch.fd.allocated / released / in_use / leak_prevented by lifewatch.fd.kind)')}`)
    for (const [kind, c] of Object.entries(fds)) {
      const ok = c.inUse === 0 ? green('0 in use') : yellow(`${c.inUse} in use`)
      say(`  ${kind.padEnd(8)} ${String(c.allocated).padStart(4)} allocated ${String(c.released).padStart(4)} released  ${ok}  ${dim(`${c.leakPrevented} leak prevented`)}`)
    }
    exportNote(tel, say)
  }
  return 0
}

function exportNote(tel: CliTelemetry, say: (s: string) => void): void {
  if (tel.exporting) say(dim(`\n  traces and metrics exported over OTLP (${process.env.OTEL_EXPORTER_OTLP_ENDPOINT ?? 'per-signal endpoints'})`))
}
