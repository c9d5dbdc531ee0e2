// The Rust tests run under cargo-nextest, and the runners count its JUnit report
// (scripts/results.mjs). Chosen over the two alternatives, measured on the 2-core machine:
// - libtest's own machine-readable output (`--format json`, `--format junit`) needs
//   `-Z unstable-options`, which stable Rust refuses (short of RUSTC_BOOTSTRAP, a switch for
//   building the compiler); without it there is only its `test result:` prose to grep.
// - nextest runs each test in its own process: a test that aborts or segfaults fails alone
//   and the others still run and count, where a libtest binary dies with all its tests; a
//   listed test with no result in the report counts as failed, by name.
// - Its cost is the install: `cargo install --locked cargo-nextest` took 5.5 min (7.5 min of
//   CPU, with a fresh CARGO_HOME) while the machine was shared; once per machine (cached
//   below), or once per run on a fresh CI machine (~25 min + 5.5, well under 90). The tests
//   themselves ran faster: 17 s against 37 s for `cargo test` (binaries run in parallel).
import { spawnSync } from 'node:child_process'
import { accessSync, constants, existsSync, rmSync } from 'node:fs'
import { homedir } from 'node:os'
import { delimiter, join } from 'node:path'
import { root, stream } from './lib.mjs'
import { junitCounts } from './results.mjs'

// The version installed when none is on PATH (any 0.9 on PATH is used as it is).
const VERSION = '0.9.151'
const cache = join(process.env.LIFEWATCH_CACHE ?? join(homedir(), '.cache/lifewatch'), 'nextest', VERSION)
// The JUnit report of nextest's default profile (.config/nextest.toml).
export const JUNIT = join(root, 'target/nextest/default/junit.xml')

function onPath(name) {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    try {
      accessSync(join(dir, name), constants.X_OK)
      return join(dir, name)
    } catch {}
  }
  return null
}

/** The cargo-nextest executable: on PATH, else cached, else built into the cache now. Throws with the reason when it cannot be had. */
export async function nextestBin() {
  const found = onPath('cargo-nextest')
  if (found) return found
  const cached = join(cache, 'bin', 'cargo-nextest')
  if (existsSync(cached)) return cached
  console.log(`\ncargo-nextest is not on PATH: building ${VERSION} from crates.io into ${cache} (once; about 5 minutes on 2 cores)`)
  const { code } = await stream('cargo', ['install', '--locked', '--root', cache, `cargo-nextest@${VERSION}`])
  if (code !== 0 || !existsSync(cached)) throw new Error(`cargo install cargo-nextest@${VERSION} failed (exit ${code}; its output is above)`)
  return cached
}

/** `nextest list --message-format json` with `args` (building what they select first); its stderr shows. Returns the parsed list, or `error`. */
export function listJson(bin, args, env = {}) {
  const argv = ['nextest', 'list', '--message-format', 'json', ...args]
  console.log(`\n$ ${[bin, ...argv].join(' ')}`)
  const r = spawnSync(bin, argv, {
    cwd: root, env: { ...process.env, ...env }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 << 20,
  })
  if (r.status !== 0) return { error: `nextest list failed (${r.error?.message ?? `exit ${r.status ?? r.signal}`}; the build output is above)` }
  return JSON.parse(r.stdout)
}

// Why nextest leaves a test out of a run (its list's `filter-match.reason`).
const LEFT_OUT = { ignored: '#[ignore]d: the attribute says why', expression: "left out by the run's -E filter", string: "left out by the run's name filters" }

/**
 * The tests that `args` (nextest's selection options: -p, --test, -E, --run-ignored, filters
 * after --) pick, as `nextest run` with the same options runs them: the ids (`binary-id name`)
 * to expect in the report and the skipped ones with why; or `error`.
 */
export function listTests(bin, args, env = {}) {
  const list = listJson(bin, args, env)
  if (list.error) return list
  const expected = []
  const skipped = []
  for (const [suite, { testcases }] of Object.entries(list['rust-suites'])) {
    for (const [name, { 'filter-match': match }] of Object.entries(testcases)) {
      const id = `${suite} ${name}`
      if (match.status === 'matches') expected.push(id)
      else skipped.push({ id, why: LEFT_OUT[match.reason] ?? `left out: ${match.reason}` })
    }
  }
  return { expected, skipped }
}

/** Counts for a run of `list`'s tests, from the report at `junit` (JUNIT, or where it was carried to); prints the skipped and the failed by name. */
export function countResults(list, junit, code) {
  for (const s of list.skipped) console.log(`skipped: ${s.id} (${s.why})`)
  const c = junitCounts(junit, list.expected)
  if (c.problem) console.log(`nextest: ${c.problem}`)
  for (const name of c.failedNames) console.log(`failed: ${name}`)
  // A non-zero exit with every listed test passed (a runner error, a crash after the report): one failure.
  return { passed: c.passed, failed: c.failed || (code !== 0 ? 1 : 0), skipped: list.skipped.length }
}

/** Builds and runs the tests `select` picks (nextest's selection options) on this machine. */
export async function runTests(select, { env = {} } = {}) {
  let bin
  try {
    bin = await nextestBin()
  } catch (e) {
    console.log(`\nRust tests not run: ${e.message}`)
    return { passed: 0, failed: 1, skipped: 0 }
  }
  const list = listTests(bin, select, env)
  if (list.error) {
    console.log(list.error)
    return { passed: 0, failed: 1, skipped: 0 }
  }
  rmSync(JUNIT, { force: true }) // a report left by an earlier run must never be counted
  const { code } = await stream(bin, ['nextest', 'run', ...select], { env })
  return countResults(list, JUNIT, code)
}
