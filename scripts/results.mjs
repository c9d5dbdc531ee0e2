// Test counts `{ passed, failed, skipped }`, read from the runners' machine-readable reports,
// never from their prose: ava's TAP stream, through a maintained parser (tap-parser); added
// up; printed.
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
