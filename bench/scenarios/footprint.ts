// Scenario 6: footprint. The addon's size on disk (and gzipped, about what the platform
// package's tarball carries) and load times in fresh Node processes: the whole package entry
// as a user imports it (addon included), then a first Monitor; and, in processes of their
// own, the bare addon (binding.cjs → dlopen + napi registration).
import { spawnSync } from 'node:child_process'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { gzipSync } from 'node:zlib'

import { root } from '../lib/natives.js'
import { summarize } from '../lib/stats.js'
import type { Goal, ScenarioConfig, ScenarioOutput, Table } from '../lib/types.js'

function addonFile(): string {
  const f = readdirSync(root).find((n) => /^lifewatch\..*\.node$/.test(n))
  if (!f) throw new Error('no lifewatch.*.node in the repository root: run node scripts/ensure.mjs')
  return `${root}${f}`
}

/** Section names of an ELF64 little-endian file. */
function elfSections(path: string): string[] {
  const b = readFileSync(path)
  if (b.readUInt32BE(0) !== 0x7f454c46 || b[4] !== 2) return []
  const shoff = Number(b.readBigUInt64LE(0x28))
  const shentsize = b.readUInt16LE(0x3a)
  const shnum = b.readUInt16LE(0x3c)
  const strtab = Number(b.readBigUInt64LE(shoff + b.readUInt16LE(0x3e) * shentsize + 0x18))
  const names: string[] = []
  for (let i = 0; i < shnum; i++) {
    const off = strtab + b.readUInt32LE(shoff + i * shentsize)
    names.push(b.toString('latin1', off, b.indexOf(0, off)))
  }
  return names
}

/** Whether the addon is a release build: no debug sections and no symbol table (strip). */
export function addonIsRelease(path: string): boolean {
  const s = elfSections(path)
  return s.length > 0 && !s.includes('.debug_info') && !s.includes('.symtab')
}

const probe = `
const t0 = process.hrtime.bigint()
import(${JSON.stringify(`${root}dist/index.js`)}).then((m) => {
  const t1 = process.hrtime.bigint()
  const mon = new m.Monitor()
  const t2 = process.hrtime.bigint()
  mon.close()
  console.log(JSON.stringify({ pkg: Number(t1 - t0), monitor: Number(t2 - t1) }))
})`

const addonProbe = `
const t0 = process.hrtime.bigint()
require(${JSON.stringify(`${root}binding.cjs`)})
console.log(JSON.stringify({ addon: Number(process.hrtime.bigint() - t0) }))`

function node(script: string): { out: Record<string, number>; wall: number } {
  const t0 = performance.now()
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' })
  const wall = performance.now() - t0
  if (r.status !== 0) throw new Error(`load probe failed: ${r.stderr}`)
  return { out: JSON.parse(r.stdout) as Record<string, number>, wall }
}

export async function run(cfg: ScenarioConfig): Promise<ScenarioOutput> {
  const runs = cfg.quick ? 5 : 30
  const addon = addonFile()
  const bytes = statSync(addon).size
  const gz = gzipSync(readFileSync(addon), { level: 9 }).length
  const samples: { addon: number; pkg: number; monitor: number; process: number }[] = []
  for (let i = 0; i < runs + 1; i++) {
    const pkg = node(probe)
    const bare = node(addonProbe)
    if (i > 0) samples.push({ pkg: pkg.out.pkg!, monitor: pkg.out.monitor!, addon: bare.out.addon!, process: pkg.wall * 1e6 })
  }
  const row = (name: string, key: keyof (typeof samples)[0]) => {
    const s = summarize(samples.map((x) => x[key] / 1e6))
    return [name, s.n, s.p50, s.p99, s.max]
  }
  const load: Table = {
    title: `Load time in fresh Node processes (ms; ${runs} runs after one warm-up)`,
    columns: ['step', 'n', 'p50 ms', 'p99 ms', 'max ms'],
    rows: [
      row('import lifewatch (dist/index.js, the addon included)', 'pkg'),
      row('then new Monitor() (epoll, eventfd, reactor thread)', 'monitor'),
      row('require(binding.cjs) alone: dlopen + N-API init', 'addon'),
      row('whole node -e process of the import, for scale', 'process'),
    ],
  }
  const size: Table = {
    title: 'Addon size',
    columns: ['file', 'bytes', 'gzip -9 bytes', 'release build'],
    rows: [[addon.slice(root.length), bytes, gz, addonIsRelease(addon) ? 'yes' : 'NO: debug build, figures not representative']],
  }
  const p50 = (key: keyof (typeof samples)[0]) => summarize(samples.map((x) => x[key] / 1e6)).p50
  const goals: Goal[] = [
    {
      goal: "load: import('lifewatch') ≤ 15 ms in a fresh process (p50)",
      measured: `${p50('pkg').toFixed(2)} ms`,
      met: p50('pkg') <= 15,
    },
    {
      goal: 'load: new Monitor() under 1 ms (p50)',
      measured: `${p50('monitor').toFixed(3)} ms`,
      met: p50('monitor') < 1,
    },
    {
      goal: 'footprint: the addon (no target set)',
      measured: `${(bytes / 1024).toFixed(0)} KiB (${(gz / 1024).toFixed(0)} KiB gzipped), loads alone in ${p50('addon').toFixed(2)} ms p50`,
      met: null,
    },
  ]
  return { tables: [load, size], goals, notes: [], data: { addon: addon.slice(root.length), bytes, gzipBytes: gz, samples } }
}
