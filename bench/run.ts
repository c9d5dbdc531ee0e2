// `npm run bench [-- --quick] [--out DIR] [--only id,id]`: builds the bench natives, runs every
// scenario (bench/scenarios/index.ts) in its own fresh Node process (under a subreaper, so
// nothing is left behind), then prints the table and writes <name>.json, <name>.svg, <name>.md
// and <name>.txt to bench/results/ (name: full, quick, or partial with --only). A full run into
// bench/results also rewrites docs/performance.md from its JSON. Exits 1 if any scenario failed.
import { spawn } from 'node:child_process'
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative, resolve } from 'node:path'
import { parseArgs } from 'node:util'

import { latencyChart } from './lib/chart.js'
import { describeMachine, machineFacts } from './lib/machine.js'
import { buildNatives, helperBin, root } from './lib/natives.js'
import { FULL_JSON, PERFORMANCE_DOC, performanceDoc, type RunFile } from './lib/performance-doc.js'
import { markdownReport, textReport } from './lib/report.js'
import type { ScenarioConfig, ScenarioOutput, ScenarioResult } from './lib/types.js'
import { addonIsRelease } from './scenarios/footprint.js'
import { scenarios } from './scenarios/index.js'

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    out: { type: 'string' },
    only: { type: 'string' },
  },
})
const quick = args.quick!
const only = args.only?.split(',')
// A subset is no full run: it must not replace the full run's files (nor docs/performance.md).
const name = quick ? 'quick' : only ? 'partial' : 'full'
const outDir = resolve(args.out ?? join(root, 'bench/results'))
const cfg: ScenarioConfig = { quick }

const started = performance.now()
const facts = machineFacts()
const flags = [quick ? '--quick' : '', only ? `--only ${only.join(',')}` : ''].filter(Boolean).join(' ')
const header = [...describeMachine(facts), `run: npm run bench${flags ? ` -- ${flags}` : ''}`]
console.error(header.join('\n'))

const addon = join(root, `lifewatch.linux-${process.arch}-gnu.node`)
let release = false
try {
  release = addonIsRelease(addon)
} catch {
  // musl or missing: the footprint scenario reports it
}
if (!release) header.push('WARNING: the addon is not a release build (LIFEWATCH_DEBUG_BUILD?): figures are not representative')

const buildMs = buildNatives()
console.error(`bench natives built in ${(buildMs / 1000).toFixed(1)} s`)

/** Runs one scenario in a fresh Node process under the helper's subreaper. */
function runScenario(id: string, timeoutS: number): Promise<ScenarioOutput> {
  const out = join(tmpdir(), `lifewatch-bench-${process.pid}-${id}.json`)
  rmSync(out, { force: true })
  const argv = ['reaper', process.execPath, '--expose-gc', '--import', 'tsx', join(root, 'bench/scenario.ts'), id, JSON.stringify(cfg), out]
  return new Promise((resolveRun, reject) => {
    // Its own process group, so a timeout can end the scenario and its helpers together; the
    // subreaper ignores SIGTERM and reaps what they leave.
    const p = spawn(helperBin, argv, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'], detached: true })
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      process.kill(-p.pid!, 'SIGTERM')
    }, timeoutS * 1000)
    p.on('error', reject)
    p.on('exit', (code, signal) => {
      clearTimeout(timer)
      if (timedOut) return reject(new Error(`timed out after ${timeoutS} s`))
      if (code !== 0) return reject(new Error(`scenario process failed (${code ?? signal})`))
      try {
        resolveRun(JSON.parse(readFileSync(out, 'utf8')))
      } catch (e) {
        reject(new Error(`no result file: ${(e as Error).message}`))
      } finally {
        rmSync(out, { force: true })
      }
    })
  })
}

const results: ScenarioResult[] = []
for (const s of scenarios) {
  if (only && !only.includes(s.id)) continue
  const base = { id: s.id, number: s.number, title: s.title }
  if (s.pending || !s.run) {
    results.push({ ...base, status: 'pending', reason: s.pending ?? 'not implemented' })
    continue
  }
  console.error(`\n▶ ${s.number}. ${s.title}`)
  const t0 = performance.now()
  try {
    const output = await runScenario(s.id, quick ? s.timeout.quick : s.timeout.full)
    results.push({ ...base, status: 'ok', seconds: (performance.now() - t0) / 1000, ...output })
  } catch (e) {
    results.push({ ...base, status: 'failed', reason: (e as Error).message, seconds: (performance.now() - t0) / 1000 })
  }
}
const totalS = (performance.now() - started) / 1000
header.push(`total ${totalS.toFixed(0)} s; load average at end ${(await import('node:os')).loadavg().map((x) => x.toFixed(2)).join(' ')}`)

mkdirSync(outDir, { recursive: true })
const svg = await latencyChart(results, `${facts.kernel}, ${facts.cpus} CPUs, ${facts.date.slice(0, 10)}`)
const files: Record<string, string> = { json: join(outDir, `${name}.json`), svg: join(outDir, `${name}.svg`), md: join(outDir, `${name}.md`), txt: join(outDir, `${name}.txt`) }
if (svg) writeFileSync(files.svg, svg)
const text = textReport(header, results)
console.log(`\n${text}`)
writeFileSync(files.txt, `${text}\n`)
writeFileSync(files.md, `${markdownReport(header, results, `${name}.svg`)}\n`)
const runFile: RunFile = { machine: facts, header, quick, totalSeconds: totalS, addonRelease: release, results }
writeFileSync(files.json, `${JSON.stringify(runFile, null, 2)}\n`)
if (files.json === join(root, FULL_JSON)) {
  files.doc = join(root, PERFORMANCE_DOC)
  writeFileSync(files.doc, performanceDoc(runFile))
}
console.log(`\nwrote ${Object.values(files).map((f) => relative(process.cwd(), f)).join(', ')}`)

const failed = results.filter((r) => r.status === 'failed')
if (failed.length) {
  console.error(`\n${failed.length} scenario(s) failed: ${failed.map((r) => `${r.id} (${r.reason})`).join('; ')}`)
  process.exitCode = 1
}
