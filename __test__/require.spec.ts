import test from 'ava'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { fixture, run } from './helpers.js'

// The package is ESM. CommonJS can require() it on Node 20.19+ and 22.12+ (package.json's
// engines); on older lines that was ERR_REQUIRE_ESM. Plain `node`, no loader: as a user runs it.
test(`require('lifewatch') from CommonJS watches a real process (${process.version})`, async (t) => {
  const r = await run(process.execPath, [fixture('require.cjs')])
  t.is(r.code, 0, r.stderr)
  t.deepEqual(JSON.parse(r.stdout), { exitCode: 7, source: 'waitid' })
})

// `@opentelemetry/api` is some 60 modules: a program that only watches exits never loads it.
test('@opentelemetry/api is loaded at the first telemetry use, not at import', async (t) => {
  const loads = join(mkdtempSync(join(tmpdir(), 'lifewatch-otel-')), 'loads')
  const r = await run(process.execPath, ['--import', fixture('record-otel-loads.mjs'), fixture('otel-lazy.mjs')], { env: { OTEL_LOADS_FILE: loads } })
  t.is(r.code, 0, r.stderr)
  t.deepEqual(JSON.parse(r.stdout), { atImport: false, afterWatch: false, afterTask: true })
})
