import { LifewatchError } from '../errors.js'
import { Monitor } from '../monitor.js'
import { monotonicTime } from '../stats.js'
import { parse, pidArg, UsageError } from './args.js'
import { humanLine, jsonLine } from './format.js'

export const watchHelp = `Usage: lifewatch watch --pid <pid> [--pid <pid>...] [--json]

Prints an event for each watched process as it exits (any process, child or not)
and returns 0 once all of them have exited.

  --pid <pid>   a process to watch (repeatable)
  --json        one JSON object per line: type, watch, pid, exitCode, signal, source, time (CLOCK_MONOTONIC ns)
  -h, --help    this text`

export async function watch(argv: string[]): Promise<number> {
  const { values } = parse(argv, { pid: { type: 'string', multiple: true }, json: { type: 'boolean' } })
  if (values.help) {
    console.log(watchHelp)
    return 0
  }
  const pids = (values.pid ?? []).map(pidArg)
  if (pids.length === 0) throw new UsageError('watch: give at least one --pid')
  const since = monotonicTime()
  const monitor = new Monitor()
  const stop = () => monitor.close()
  process.once('SIGINT', stop).once('SIGTERM', stop)
  let failed = 0
  for (const pid of pids) {
    try {
      monitor.watchPid(pid)
    } catch (e) {
      if (!(e instanceof LifewatchError)) throw e
      console.error(`lifewatch: pid ${pid}: ${e.code}: ${e.message}`)
      failed++
    }
  }
  let left = pids.length - failed
  // On stderr, so NDJSON on stdout stays clean; tells scripts the watches are in place.
  if (left > 0) console.error(`lifewatch: watching ${left} process${left === 1 ? '' : 'es'}`)
  if (left > 0) {
    for await (const ev of monitor) {
      console.log(values.json ? jsonLine(ev) : humanLine(ev, since))
      if (ev.type === 'exit' && --left === 0) break
    }
  }
  monitor.close()
  process.off('SIGINT', stop).off('SIGTERM', stop)
  return left > 0 ? 130 : failed > 0 ? 1 : 0
}
