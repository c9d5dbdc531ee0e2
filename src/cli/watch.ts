import { LifewatchError } from '../errors.js'
import '../cgroup-watch.js'
import { Monitor } from '../monitor.js'
import { monotonicTime } from '../stats.js'
import { parse, pidArg, UsageError } from './args.js'
import { humanLine, jsonLine } from './format.js'

export const watchHelp = `Usage: lifewatch watch [--pid <pid>...] [--cgroup <path>...] [--json]

Prints an event for each watched process as it exits (any process, child or not), and
for each watched cgroup its OOM kills, pressure, populated/frozen changes and removal.
Returns 0 once every process has exited and every cgroup has been removed (or on Ctrl-C).

  --pid <pid>         a process to watch (repeatable)
  --cgroup <path>     a cgroup to watch (repeatable): a path inside the hierarchy
                      (lifewatch/job1) or a directory under a cgroup mount
  --pressure <level>  with --cgroup, v1 memory.pressure_level: low|medium|critical[,local|hierarchy]
  --json              one JSON object per line: type, watch, time (CLOCK_MONOTONIC ns) and the
                      event's fields (pid, exitCode, signal, source; cgroup, kills, counters, value...)
  -h, --help          this text`

export async function watch(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    pid: { type: 'string', multiple: true },
    cgroup: { type: 'string', multiple: true },
    pressure: { type: 'string' },
    json: { type: 'boolean' },
  })
  if (values.help) {
    console.log(watchHelp)
    return 0
  }
  const pids = (values.pid ?? []).map(pidArg)
  const cgroups = values.cgroup ?? []
  if (pids.length === 0 && cgroups.length === 0) throw new UsageError('watch: give at least one --pid or --cgroup')
  if (values.pressure !== undefined && cgroups.length === 0) throw new UsageError('watch: --pressure needs --cgroup')
  const since = monotonicTime()
  const monitor = new Monitor()
  let interrupted = false
  const stop = () => {
    interrupted = true
    monitor.close()
  }
  process.once('SIGINT', stop).once('SIGTERM', stop)
  let failed = 0
  const report = (what: string, e: unknown) => {
    if (!(e instanceof LifewatchError)) throw e
    console.error(`lifewatch: ${what}: ${e.code}: ${e.message}`)
    failed++
  }
  const live = new Set<number>()
  for (const pid of pids) {
    try {
      live.add(monitor.watchPid(pid).id)
    } catch (e) {
      report(`pid ${pid}`, e)
    }
  }
  for (const path of cgroups) {
    try {
      const opts = values.pressure === undefined ? {} : { pressure: values.pressure as 'low' }
      live.add(monitor.watchCgroup(path, opts).id)
    } catch (e) {
      report(`cgroup ${path}`, e)
    }
  }
  if (live.size > 0) {
    for await (const ev of monitor) {
      console.log(values.json ? jsonLine(ev) : humanLine(ev, since))
      if ((ev.type === 'exit' || ev.type === 'removed') && live.delete(ev.watch) && live.size === 0) break
    }
  }
  monitor.close()
  process.off('SIGINT', stop).off('SIGTERM', stop)
  return interrupted || live.size > 0 ? 130 : failed > 0 ? 1 : 0
}
