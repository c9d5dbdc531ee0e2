// `lifewatch watch`: the events of given processes and cgroups on stdout until every process
// has exited and every cgroup is removed, or until SIGINT (130) / SIGTERM (143).
import { LifewatchError, Monitor, type LifewatchEvent } from 'lifewatch'

import { Channel } from './channel.js'
import { eventRecord, humanEvent } from './format.js'
import { onStdoutGone } from './stdout.js'
import { EXIT_FAILURE, UsageError } from './usage.js'

export interface WatchFlags {
  pid?: number[]
  cgroup?: string[]
  pressure?: string
  host?: boolean
  tree?: number[]
  oomKills?: boolean
  forks?: boolean
  execs?: boolean
  json?: boolean
}

const LEVEL = /^(low|medium|critical)(,(local|hierarchy))?$/

export async function watch(f: WatchFlags): Promise<number> {
  const pids = f.pid ?? []
  const cgroups = f.cgroup ?? []
  const trees = f.tree ?? []
  if (pids.length === 0 && cgroups.length === 0 && trees.length === 0 && !f.host && !f.oomKills) {
    throw new UsageError('watch: give at least one --pid, --cgroup, --tree, --host or --oom-kills')
  }
  if ((f.forks || f.execs) && !f.host && trees.length === 0) throw new UsageError('watch: --forks and --execs need --host or --tree')
  if (f.pressure !== undefined && cgroups.length === 0) throw new UsageError('watch: --pressure needs --cgroup')
  if (f.pressure !== undefined && !LEVEL.test(f.pressure)) throw new UsageError(`--pressure: not a level such as low, medium,local or critical,hierarchy: ${JSON.stringify(f.pressure)}`)
  const ch = Channel.open({ json: f.json }, 'stdout')
  const monitor = new Monitor()
  let ending: number | undefined
  const end = (status: number) => () => {
    ending ??= status
    monitor.close()
  }
  const onInt = end(130)
  const onTerm = end(143)
  process.once('SIGINT', onInt).once('SIGTERM', onTerm)
  onStdoutGone(end(141))
  let failed = 0
  const report = (what: string, e: unknown) => {
    if (!(e instanceof LifewatchError)) throw e
    process.stderr.write(`lifewatch: ${what}: ${e.code}: ${e.message}\n`)
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
  const watchedPids = live.size
  for (const path of cgroups) {
    try {
      live.add(monitor.watchCgroup(path, f.pressure === undefined ? {} : { pressure: f.pressure as 'low' }).id)
    } catch (e) {
      report(`cgroup ${path}`, e)
    }
  }
  const watchedCgroups = live.size - watchedPids
  // Trees end with their last member's exit; the host and OOM-kill streams never end.
  const treeIds = new Set<number>()
  for (const pid of trees) {
    try {
      const w = monitor.watchTree(pid, { forks: f.forks ?? false, execs: f.execs ?? false })
      live.add(w.id)
      treeIds.add(w.id)
    } catch (e) {
      report(`tree ${pid}`, e)
    }
  }
  const streams: string[] = []
  const stream = (what: string, open: () => unknown) => {
    try {
      open()
      streams.push(what)
    } catch (e) {
      report(what, e)
    }
  }
  if (f.host) stream("the host's processes", () => monitor.watchHost({ forks: f.forks ?? false, execs: f.execs ?? false }))
  if (f.oomKills) stream('OOM kills', () => monitor.watchOomKills())
  const ends = (ev: LifewatchEvent): boolean =>
    ev.type === 'removed' || (ev.type === 'exit' && (treeIds.has(ev.watch) ? ev.remaining === 0 : ev.source !== 'connector'))
  try {
    if (live.size > 0 || streams.length > 0) {
      // On stderr, so stdout holds only events; tells scripts the watches are in place.
      const n = (k: number, what: string) => `${k} ${what}${k === 1 ? '' : what.endsWith('s') ? 'es' : 's'}`
      const more = [...(treeIds.size > 0 ? [n(treeIds.size, 'tree')] : []), ...streams].map((s) => `, ${s}`).join('')
      process.stderr.write(`lifewatch: watching ${n(watchedPids, 'process')} and ${n(watchedCgroups, 'cgroup')}${more}\n`)
      for await (const ev of monitor) {
        ch.event(eventRecord(ev), (p) => humanEvent(ev, p))
        if (ends(ev) && live.delete(ev.watch) && live.size === 0 && streams.length === 0) break
      }
    }
  } finally {
    monitor.close()
    process.off('SIGINT', onInt).off('SIGTERM', onTerm)
  }
  return ending ?? (failed > 0 ? EXIT_FAILURE : 0)
}
