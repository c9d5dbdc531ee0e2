// Test counts `{ passed, failed, skipped }`, read from the runners' machine-readable reports,
// never from their prose: cargo-nextest's JUnit file (scripts/nextest.mjs says why nextest)
// and ava's TAP stream, each through a maintained parser (sax, tap-parser); added up; printed.
import { existsSync, readFileSync } from 'node:fs'
import sax from 'sax'
import { Parser } from 'tap-parser'

/** Adds counts `{ passed, failed, skipped }` into `totals`. */
export function add(totals, counts) {
  for (const k of ['passed', 'failed', 'skipped']) totals[k] += counts[k]
}

/** `N passed, N failed[, N skipped]`: the summary line `.ci/run` reads. */
export const summary = (c) => `${c.passed} passed, ${c.failed} failed${c.skipped ? `, ${c.skipped} skipped` : ''}`

/**
 * Counts of an ava `--tap` run that exited with `code`. A stream that ends early (no plan, a
 * bail-out, fewer tests than planned: a crashed worker) or a non-zero exit is one failure
 * when no test failed by name.
 */
export function tapCounts(tap, code) {
  const counts = { passed: 0, failed: 0, skipped: 0 }
  let complete = true
  const parser = new Parser((result) => (complete = result.ok))
  parser.on('assert', (a) => {
    if (a.skip || a.todo) counts.skipped++
    else counts[a.ok ? 'passed' : 'failed']++
  })
  parser.end(tap)
  if ((!complete || code !== 0) && counts.failed === 0) counts.failed = 1
  return counts
}

/**
 * Counts of a nextest JUnit report (`<testcase>` elements; a `<failure>` or `<error>` inside
 * one fails it) and the names of the failed tests. `expected` (test ids `binary-id name`) are
 * the tests the run was asked for: any without a result in the report (the run stopped early)
 * is a failure too: a missing report fails them all, an unreadable one those after the damage.
 */
export function junitCounts(file, expected) {
  const results = new Map() // id -> passed
  const problem = existsSync(file) ? parseJunit(readFileSync(file, 'utf8'), results) : `no report at ${file}`
  const failedNames = []
  let passed = 0
  for (const id of expected) {
    if (results.get(id)) passed++
    else failedNames.push(results.has(id) ? id : `${id} (no result)`)
  }
  return { passed, failed: failedNames.length, failedNames, problem }
}

/** Fills `results` (test id -> passed) from JUnit text; returns the first parse error, if any. */
function parseJunit(xml, results) {
  const parser = sax.parser(true)
  let current = null // the open <testcase>: its id, and whether it has failed
  let error = null
  parser.onopentag = (tag) => {
    if (tag.name === 'testcase') current = { id: `${tag.attributes.classname} ${tag.attributes.name}`, failed: false }
    else if (current && (tag.name === 'failure' || tag.name === 'error')) current.failed = true
  }
  // A result counts once its element is complete: a report cut inside one has none for it.
  parser.onclosetag = (name) => {
    if (name !== 'testcase' || !current) return
    results.set(current.id, !current.failed)
    current = null
  }
  parser.onerror = (e) => {
    error ??= `unreadable JUnit report: ${e.message.split('\n')[0]}`
    parser.resume()
  }
  parser.write(xml).close()
  return error
}
