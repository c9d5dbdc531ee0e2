// `lifewatch top`: the cgroups under a root with their memory, CPU, pids, pressure and OOM
// kills, refreshed every --interval, and OOM kills and populated changes the moment they
// happen (a cgroup watch on each). A terminal gets a table that fits it; a pipe gets a table
// per refresh, or NDJSON with --json.
import { readdirSync } from 'node:fs'
import { join } from 'node:path'

import { cgroupLayout, cgroupStats, LifewatchError, monotonicTime, Monitor, type CgroupStats, type LifewatchEvent } from 'lifewatch'

import { colorsFor, paint } from './color.js'
import { eventRecord, humanEvent, ndjson } from './format.js'
import { onStdoutGone, stdoutGone } from './stdout.js'
import { table, type Row } from './top-table.js'
import { after, sleep } from './timers.js'
import { UsageError } from './usage.js'

export interface TopFlags {
  root: string
  all?: boolean
  interval: number
  once?: boolean
  json?: boolean
}

/** The window CPU % is measured over for --once. */
const ONCE_WINDOW_MS = 500

/** Every cgroup directory under `root` (itself included), as paths inside the hierarchy. */
function cgroupsUnder(root: string): string[] {
  const layout = cgroupLayout()
  const h = layout.v1.memory ?? layout.unified ?? Object.values(layout.v1)[0]
  if (!h) throw new LifewatchError('ERR_UNSUPPORTED_KERNEL', 'no cgroup hierarchy is mounted')
  const rel = `/${root.replace(/^\/+|\/+$/g, '')}`.replace(/^\/$/, '')
  const out: string[] = []
  const walk = (path: string) => {
    let entries
    try {
      entries = readdirSync(join(h.mount, path), { withFileTypes: true })
    } catch {
      return // gone meanwhile, or not there
    }
    out.push(path || '/')
    for (const e of entries) if (e.isDirectory()) walk(`${path}/${e.name}`)
  }
  walk(rel)
  return out
}

export async function top(f: TopFlags): Promise<number> {
  const root = f.all ? '/' : f.root
  // A path inside the hierarchy: never a way out of it (the walk would read anything).
  if (root.split('/').some((c) => c === '..') || /[\x00-\x1f]/.test(root)) throw new UsageError(`--root: not a cgroup path: ${JSON.stringify(root)}`)
  const tty = !f.json && process.stdout.isTTY === true
  const p = paint(colorsFor(process.stdout))
  const monitor = new Monitor()
  // With the kernel log readable, each oom event names its victims; without, it counts them.
  try {
    monitor.watchOomKills()
  } catch (e) {
    if (!(e instanceof LifewatchError)) throw e
  }
  const watched = new Map<string, number>()
  const rows = new Map<string, Row>()
  const lastCpu = new Map<string, { usec: number; at: number }>()
  let finish!: (status: number) => void
  const finished = new Promise<number>((r) => (finish = r))
  const out = (s: string) => stdoutGone() || process.stdout.write(s)

  const refresh = () => {
    const paths = cgroupsUnder(root)
    const now = performance.now()
    for (const path of rows.keys()) if (!paths.includes(path)) rows.delete(path)
    for (const path of paths) {
      let stats: CgroupStats
      try {
        stats = cgroupStats(path)
      } catch {
        continue // removed meanwhile
      }
      const row: Row = { cgroup: path, stats }
      const usec = (stats.cpuUserUsec ?? NaN) + (stats.cpuSystemUsec ?? NaN)
      const prev = lastCpu.get(path)
      if (prev && Number.isFinite(usec) && now > prev.at) row.cpuPercent = Math.max(0, ((usec - prev.usec) / 1000 / (now - prev.at)) * 100)
      if (Number.isFinite(usec)) lastCpu.set(path, { usec, at: now })
      rows.set(path, row)
      if (!watched.has(path)) {
        try {
          watched.set(path, monitor.watchCgroup(path, {}).id)
        } catch {
          watched.set(path, -1) // not watchable by this user: figures only
        }
      }
    }
  }
  const sorted = () => [...rows.values()].sort((a, b) => a.cgroup.localeCompare(b.cgroup))
  const snapshot = () => {
    const cgroups = sorted().map((r) => ({ cgroup: r.cgroup, ...r.stats, ...(r.cpuPercent !== undefined ? { cpuPercent: Math.round(r.cpuPercent * 10) / 10 } : {}), oomKills: r.stats.memoryEvents.oom_kill ?? 0 }))
    return ndjson({ type: 'snapshot', root: `/${root.replace(/^\/+/, '')}`, cgroups, time: monotonicTime() })
  }
  const title = () => `lifewatch top: ${rows.size} cgroup${rows.size === 1 ? '' : 's'} under /${root.replace(/^\/+/, '')}${f.once ? '' : `, every ${f.interval === 0 || f.interval === Infinity ? 'event' : `${f.interval / 1000}s`}`}${tty ? '  (q quits)' : ''}`
  const draw = () => {
    if (f.json) return out(`${snapshot()}\n`)
    if (!tty) return out(`${[title(), ...table(sorted(), Infinity, Infinity, p)].join('\n')}\n\n`)
    const width = process.stdout.columns || 80
    const height = process.stdout.rows || 24
    const lines = [p.bold(title()).slice(0, width + 8), ...table(sorted(), width, height - 1, p)]
    out(`\x1b[H${lines.map((l) => `${l}\x1b[K`).join('\n')}\x1b[J`)
    for (const r of rows.values()) r.oomNow = false
  }
  const onEvent = (ev: LifewatchEvent) => {
    if (ev.type !== 'oom' && ev.type !== 'populated' && ev.type !== 'removed') return
    const row = rows.get(ev.cgroup)
    if (ev.type === 'oom' && row) {
      row.oomNow = true
      row.stats = ev.stats
    }
    if (ev.type === 'removed') rows.delete(ev.cgroup)
    if (ev.type === 'populated' && row && !ev.value) row.stats = { ...row.stats, pidsCurrent: 0 }
    if (f.json) out(`${ndjson(eventRecord(ev))}\n`)
    else if (!tty) out(`${humanEvent(ev, p)}\n`)
    else draw()
  }

  onStdoutGone(() => finish(141))
  const onInt = () => finish(130)
  const onTerm = () => finish(143)
  process.once('SIGINT', onInt).once('SIGTERM', onTerm)
  let stopTimer = () => {}
  const restoreTerminal = tty ? enterScreen(() => finish(0)) : () => {}
  const pump = (async () => {
    for await (const ev of monitor.events({ persistent: false })) onEvent(ev)
  })().catch(() => {})
  try {
    refresh()
    if (f.once) {
      await sleep(ONCE_WINDOW_MS)
      refresh()
      draw()
      return 0
    }
    draw()
    if (f.interval > 0 && f.interval !== Infinity) {
      const tick = () => {
        refresh()
        draw()
        stopTimer = after(f.interval, tick)
      }
      stopTimer = after(f.interval, tick)
    }
    if (tty) process.stdout.on('resize', draw)
    return await finished
  } finally {
    stopTimer()
    process.stdout.off('resize', draw)
    process.off('SIGINT', onInt).off('SIGTERM', onTerm)
    restoreTerminal()
    monitor.close()
    await pump
  }
}

/** The alternate screen with no cursor, keys read raw (q or Ctrl-C quit); returns the undo. */
function enterScreen(quit: () => void): () => void {
  process.stdout.write('\x1b[?1049h\x1b[?25l')
  const stdin = process.stdin
  const onKey = (k: Buffer) => {
    if (k.includes(0x71) || k.includes(0x03)) quit()
  }
  if (stdin.isTTY) {
    stdin.setRawMode(true)
    stdin.on('data', onKey)
  }
  return () => {
    if (stdin.isTTY) {
      stdin.off('data', onKey)
      stdin.setRawMode(false)
      stdin.pause()
    }
    process.stdout.write('\x1b[?25h\x1b[?1049l')
  }
}
