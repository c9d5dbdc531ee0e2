// The terminal table and the Markdown version of the same figures (full.md; docs/performance.md
// is made from the same tables).
import type { Cell, ScenarioResult, Table } from './types.js'

export function fmt(c: Cell): string {
  if (c === null || (typeof c === 'number' && !Number.isFinite(c))) return '–'
  if (typeof c === 'string') return c
  if (Number.isInteger(c)) return String(c)
  const a = Math.abs(c)
  return a >= 1000 ? c.toFixed(0) : a >= 100 ? c.toFixed(1) : a >= 1 ? c.toFixed(2) : c.toFixed(3)
}

export function textTable(t: Table): string {
  const cells = [t.columns, ...t.rows.map((r) => r.map(fmt))]
  const widths = t.columns.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)))
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')
  return [t.title, line(t.columns), widths.map((w) => '─'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n')
}

export function markdownTable(t: Table): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|')
  return [
    `**${esc(t.title)}**`,
    '',
    `| ${t.columns.map(esc).join(' | ')} |`,
    `| ${t.columns.map((_, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`,
    ...t.rows.map((r) => `| ${r.map((c) => esc(fmt(c))).join(' | ')} |`),
  ].join('\n')
}

const mark = (met: boolean | null) => (met === true ? 'met' : met === false ? 'NOT MET' : 'info')

export function textReport(header: string[], results: ScenarioResult[]): string {
  const out: string[] = ['lifewatch bench', ...header.map((h) => `  ${h}`), '']
  for (const r of results) {
    out.push(`== ${r.number}. ${r.title} [${r.status}${r.seconds !== undefined ? `, ${r.seconds.toFixed(1)} s` : ''}]`)
    if (r.status !== 'ok') {
      out.push(`   ${r.reason}`, '')
      continue
    }
    for (const t of r.tables ?? []) out.push(textTable(t), '')
    for (const n of r.notes ?? []) out.push(`  · ${n}`)
    if (r.notes?.length) out.push('')
  }
  out.push('== Goals, against peers measured in this run')
  for (const r of results) for (const g of r.goals ?? []) out.push(`  [${mark(g.met).padEnd(7)}] ${g.goal}: ${g.measured}`)
  return out.join('\n')
}

export function markdownReport(header: string[], results: ScenarioResult[], chart: string): string {
  const out: string[] = [...header.map((h) => `- ${h}`), '']
  for (const r of results) {
    if (r.status !== 'ok') {
      out.push(`*${r.number}. ${r.title}: ${r.status} (${r.reason})*`, '')
      continue
    }
    for (const t of r.tables ?? []) out.push(markdownTable(t), '')
  }
  out.push('**Goals**', '', '| goal | measured | |', '| --- | --- | --- |')
  for (const r of results) for (const g of r.goals ?? []) out.push(`| ${g.goal} | ${g.measured} | ${mark(g.met)} |`)
  out.push('', `![latency distributions](${chart})`)
  return out.join('\n')
}
