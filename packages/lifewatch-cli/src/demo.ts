// `lifewatch demo`: the whole story on processes it starts itself, nothing to configure —
// a memory hog OOM-killed in a small cgroup, a well-behaved task shut down gracefully, a
// stubborn one escalated to SIGKILL, a non-child watched to its exit; events, the shutdown
// span trees and the fd metrics. As non-root it says what it cannot do and runs the rest.

import { fdStats, LifewatchError, monotonicTime, Monitor, Platform, shutdown, ShutdownError, Task, type LifewatchEvent, type ShutdownResult } from 'lifewatch'

import { Channel } from './channel.js'
import { eventRecord, humanEvent } from './format.js'
import { nonChild } from './nonchild.js'
import { startTelemetry } from './otel.js'
import { renderTree } from './spantree.js'
import { exitStatus, shutdownRecord } from './summary.js'
import { sleep } from './timers.js'

/** How long OTLP export may take at the end of the demo. */
const EXPORT_BUDGET_MS = 600

export async function demo(f: { json?: boolean }): Promise<number> {
  const ch = Channel.open({ json: f.json }, 'stdout')
  const { bold, dim, green, yellow } = ch.paint
  const say = (s: string) => ch.note([s])
  const tel = await startTelemetry()
  for (const w of tel.warnings) ch.warn(w)
  const telOpts = { tracerProvider: tel.tracerProvider, meterProvider: tel.meterProvider }
  const show = (ev: LifewatchEvent) => ch.event(eventRecord(ev), (p) => `  ${humanEvent(ev, p)}`)
  let printedSpans = 0
  const report = (task: Task, r: ShutdownResult) => {
    const status = exitStatus(r.exit)
    ch.event(
      shutdownRecord(task.watch.id, r, status),
      (p) => `  ${p.bold('shutdown')} ${p.dim(`exit status ${status}`)}`,
    )
    const spans = tel.tracerProvider.spans.slice(printedSpans)
    printedSpans = tel.tracerProvider.spans.length
    say(dim('  shutdown span tree:'))
    for (const line of renderTree(spans, ch.paint)) say(`  ${line}`)
  }
  /** Runs the traced shutdown; a failed step is shown, not fatal to the demo. */
  const shut = async (task: Task, monitor: Monitor, platform: Platform | undefined, killTimeout = 5000) => {
    try {
      report(task, await shutdown(task, { monitor, platform, killTimeout, ...telOpts }))
    } catch (e) {
      if (!(e instanceof ShutdownError)) throw e
      report(task, e.result)
      for (const err of e.errors) ch.warn(`shutdown step failed: ${err.message}`)
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
  ch.event({ type: 'fds', ...fds, time: monotonicTime() }, () => `${bold('fd counters')} ${dim('(lifewatch.fd.allocated / released / in_use / leak_prevented by lifewatch.fd.kind)')}`)
  for (const [kind, c] of Object.entries(fds)) {
    const ok = c.inUse === 0 ? green('0 in use') : yellow(`${c.inUse} in use`)
    say(`  ${kind.padEnd(8)} ${String(c.allocated).padStart(4)} allocated ${String(c.released).padStart(4)} released  ${ok}  ${dim(`${c.leakPrevented} leak prevented`)}`)
  }
  if (tel.targets.length) say(dim(`\n  exporting over OTLP: ${tel.targets.join(', ')}`))
  for (const problem of await tel.stop(performance.now() + EXPORT_BUDGET_MS)) process.stderr.write(`lifewatch: ${problem}\n`)
  return 0
}
