// The package on the living Node lines besides this machine's own, as `npm test` runs it:
// each line's Linux x64 binary comes from npm's `node` package, installed once into
// ~/.cache/lifewatch/node-<major>; then on each line (the addon is N-API, built once, and
// must load on every one) the packed tarballs go into an empty project (package.spec.ts),
// CommonJS requires the package (require.spec.ts), and a slice of the suite runs where
// Node's own machinery meets the addon: its event loop (exits, direct-wake), worker threads,
// the garbage collector's finalizers (lifecycle), timers and AbortSignal (kill), async
// context (shutdown). The whole suite on every line would not fit CI's time.
//   node scripts/node-lines.mjs [MAJOR]...    (default: every line below)
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { homedir } from 'node:os'
import { delimiter, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { stream } from './lib.mjs'
import { add, summary, tapCounts } from './results.mjs'

const LINES = ['22', '24', '26']
const SPECS = ['package', 'require', 'exits', 'direct-wake', 'worker', 'lifecycle', 'kill', 'shutdown'].map((s) => `__test__/${s}.spec.ts`)
const cache = process.env.LIFEWATCH_CACHE ?? join(homedir(), '.cache/lifewatch')

/** The directory holding line `major`'s `node`, installed now if missing; or `{ error }`. */
async function nodeLine(major) {
  const prefix = join(cache, `node-${major}`)
  const bin = join(prefix, 'node_modules/.bin')
  if (!existsSync(join(bin, 'node'))) {
    const { code, out } = await stream('npm', ['install', '--prefix', prefix, '--no-audit', '--no-fund', `node@${major}`], { quiet: true })
    if (code !== 0) return { error: `npm could not install node@${major}: ${out.trimEnd().split('\n').pop()}` }
  }
  const r = spawnSync(join(bin, 'node'), ['--version'], { encoding: 'utf8' })
  if (r.status !== 0) return { error: `${join(bin, 'node')} does not run here: ${r.error?.message ?? r.stderr.trim()}` }
  const version = r.stdout.trim()
  if (!version.startsWith(`v${major}.`)) return { error: `${join(bin, 'node')} is ${version}, not Node ${major}: remove ${prefix} to reinstall it` }
  return { bin, version }
}

/** Runs the specs on each line in `majors`; resolves with the counts of all of them. */
export async function testNodeLines(majors = LINES) {
  const totals = { passed: 0, failed: 0, skipped: 0 }
  if (process.env.LIFEWATCH_SKIP_NODE_LINES === '1') {
    console.log('\nnode lines: skipped (LIFEWATCH_SKIP_NODE_LINES=1)')
    return totals
  }
  for (const major of majors) {
    const line = await nodeLine(major)
    if (line.error) {
      console.log(`\nnode ${major}: skipped: ${line.error}`)
      continue
    }
    // The line's `node` first on PATH: npx, npm and ava (and every process they start with
    // `node`) run on it; ava's workers run on ava's own binary.
    const started = Date.now()
    const r = await stream('npx', ['ava', '--tap', ...SPECS], { env: { PATH: `${line.bin}${delimiter}${process.env.PATH}` } })
    const c = tapCounts(r.stdout, r.code)
    console.log(`node ${line.version}: ${summary(c)} in ${Math.round((Date.now() - started) / 1000)} s`)
    add(totals, c)
  }
  return totals
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const majors = process.argv.slice(2)
  const bad = majors.find((m) => !/^\d+$/.test(m))
  if (bad) {
    console.error(`usage: node scripts/node-lines.mjs [MAJOR]... ('${bad}' is not a major version)`)
    process.exit(2)
  }
  const t = await testNodeLines(majors.length ? majors : LINES)
  console.log(`\nnode lines: ${summary(t)}`)
  process.exitCode = t.failed ? 1 : 0
}
