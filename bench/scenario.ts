// Runs one scenario in this (fresh) Node process and writes its output as JSON:
//   node --expose-gc --import tsx bench/scenario.ts <id> <config json> <out file>
import { writeFileSync } from 'node:fs'

import { scenarios } from './scenarios/index.js'

const [id, cfgJson, out] = process.argv.slice(2)
const scenario = scenarios.find((s) => s.id === id)
if (!scenario?.run || !cfgJson || !out) {
  console.error(`usage: scenario.ts <id> <config json> <out file> (id one of ${scenarios.filter((s) => s.run).map((s) => s.id).join(', ')})`)
  process.exit(2)
}
const output = await scenario.run(JSON.parse(cfgJson))
writeFileSync(out, JSON.stringify(output, (_k, v) => (typeof v === 'bigint' ? Number(v) : v)))
// Helpers and monitors are closed by the scenario; anything left must not keep us alive.
process.exit(0)
