// Scenario 6: footprint. The addon's size on disk (and gzipped, about what the platform
// package's tarball carries) and its load time in fresh Node processes: the bare addon
// (binding.cjs → dlopen + napi registration), the whole package entry, and a first Monitor.
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
require(${JSON.stringify(`${root}binding.cjs`)})
const t1 = process.hrtime.bigint()
import(${JSON.stringify(`${root}dist/index.js`)}).then((m) => {
  const t2 = process.hrtime.bigint()
  const mon = new m.Monitor()
  const t3 = process.hrtime.bigint()
  mon.close()
  console.log(JSON.stringify({ addon: Number(t1 - t0), pkg: Number(t2 - t1), monitor: Number(t3 - t2) }))
})`

export async function run(cfg: ScenarioConfig): Promise<ScenarioOutput> {
  const runs = cfg.quick ? 5 : 30
  const addon = addonFile()
  const bytes = statSync(addon).size
  const gz = gzipSync(readFileSync(addon), { level: 9 }).length
  const samples: { addon: number; pkg: number; monitor: number; process: number }[] = []
  for (let i = 0; i < runs + 1; i++) {
    const t0 = performance.now()
    const r = spawnSync(process.execPath, ['-e', probe], { encoding: 'utf8' })
    const wall = performance.now() - t0
    if (r.status !== 0) throw new Error(`load probe failed: ${r.stderr}`)
    if (i > 0) samples.push({ ...JSON.parse(r.stdout), process: wall * 1e6 })
  }
  const row = (name: string, key: keyof (typeof samples)[0]) => {
    const s = summarize(samples.map((x) => x[key] / 1e6))
    return [name, s.n, s.p50, s.p99, s.max]
  }
  const load: Table = {
    title: `Load time in fresh Node processes (ms; ${runs} runs after one warm-up)`,
    columns: ['step', 'n', 'p50 ms', 'p99 ms', 'max ms'],
    rows: [
      row('require(binding.cjs): dlopen + N-API init', 'addon'),
      row('then import lifewatch (dist/index.js)', 'pkg'),
      row('then new Monitor() (epoll, eventfd, reactor thread)', 'monitor'),
      row('whole node -e process, for scale', 'process'),
    ],
  }
  const size: Table = {
    title: 'Addon size',
    columns: ['file', 'bytes', 'gzip -9 bytes', 'release build'],
    rows: [[addon.slice(root.length), bytes, gz, addonIsRelease(addon) ? 'yes' : 'NO: debug build, figures not representative']],
  }
  const addonP50 = summarize(samples.map((x) => x.addon / 1e6)).p50
  const goals: Goal[] = [
    {
      goal: 'footprint: measured (no target set)',
      measured: `addon ${(bytes / 1024).toFixed(0)} KiB (${(gz / 1024).toFixed(0)} KiB gzipped), loads in ${addonP50.toFixed(2)} ms p50`,
      met: null,
    },
  ]
  return { tables: [load, size], goals, notes: [], data: { addon: addon.slice(root.length), bytes, gzipBytes: gz, samples } }
}
