// `node --import tsx bench/performance-doc.ts [--check]`: writes docs/performance.md from the
// last full run (bench/results/full.json). With --check it writes nothing and exits 1 when the
// committed page is not what that JSON makes (hand-edited, or a new run not yet regenerated).
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

import { root } from './lib/natives.js'
import { FULL_JSON, PERFORMANCE_DOC, performanceDoc, type RunFile } from './lib/performance-doc.js'

const page = performanceDoc(JSON.parse(readFileSync(join(root, FULL_JSON), 'utf8')) as RunFile)
const target = join(root, PERFORMANCE_DOC)
if (process.argv.includes('--check')) {
  let current = ''
  try {
    current = readFileSync(target, 'utf8')
  } catch {
    // missing: reported below
  }
  if (current !== page) {
    console.error(`${PERFORMANCE_DOC} is not what ${FULL_JSON} makes: run node --import tsx bench/performance-doc.ts`)
    process.exitCode = 1
  }
} else {
  writeFileSync(target, page)
  console.log(`wrote ${PERFORMANCE_DOC}`)
}
