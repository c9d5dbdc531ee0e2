// `lifewatch top`'s table: one line per cgroup, cut to the width and height it is given (the
// cgroup column gives way first, shortened from the left).
import type { CgroupStats } from 'lifewatch'

import type { Paint } from './color.js'
import { bytes } from './summary.js'

const COLUMNS = ['TASKS', '%CPU', 'MEMORY', 'PEAK', 'MAX', 'PSI-MEM', 'OOM'] as const
const WIDTHS = [6, 6, 8, 8, 8, 11, 4]

const num = (n: number | undefined, f: (n: number) => string = String) => (n === undefined ? '-' : f(n))

function cells(r: Row): string[] {
  const s = r.stats
  const psi = s.psi?.memory
  return [
    num(s.pidsCurrent),
    num(r.cpuPercent, (n) => n.toFixed(1)),
    num(s.memoryCurrent, bytes),
    num(s.memoryPeak, bytes),
    num(s.memoryMax, bytes),
    psi ? `${num(psi.some, (n) => n.toFixed(1))}/${num(psi.full, (n) => n.toFixed(1))}` : '-',
    String(s.memoryEvents.oom_kill ?? 0),
  ]
}

/** What a row shows: the cgroup's figures and what its watch saw. */
export interface Row {
  cgroup: string
  stats: CgroupStats
  cpuPercent?: number
  /** An OOM kill since the previous refresh: the row is marked. */
  oomNow?: boolean
}

/** The header and the rows that fit in `width` x `height` (Infinity: no limit). */
export function table(rows: Row[], width: number, height: number, p: Paint): string[] {
  const fixed = WIDTHS.reduce((a, w) => a + w + 1, 0)
  const nameWidth = width === Infinity ? Math.max(6, ...rows.map((r) => r.cgroup.length)) : Math.max(8, width - fixed)
  const cut = (s: string) => (s.length <= nameWidth ? s.padEnd(nameWidth) : `…${s.slice(s.length - nameWidth + 1)}`)
  const line = (name: string, cols: string[]) => `${cut(name)} ${cols.map((c, i) => c.padStart(WIDTHS[i]!)).join(' ')}`
  const shown = height === Infinity ? rows : rows.slice(0, Math.max(0, height - 1 - (rows.length > height - 1 ? 1 : 0)))
  const out = [p.bold(line('CGROUP', [...COLUMNS]))]
  for (const r of shown) {
    const l = line(r.cgroup, cells(r))
    out.push(r.oomNow ? p.red(l) : l)
  }
  if (shown.length < rows.length) out.push(p.dim(`… ${rows.length - shown.length} more (a taller terminal shows them)`))
  // A terminal narrower than the fixed columns: cut the lines rather than let them wrap.
  return width === Infinity ? out : out.map((l) => (visible(l) > width ? cutVisible(l, width) : l))
}

const ESC = /\x1b\[[0-9;]*m/g
const visible = (s: string) => s.replace(ESC, '').length
function cutVisible(s: string, width: number): string {
  return s.replace(ESC, '').slice(0, width)
}
