import test from 'ava'

import { fixture, run } from './helpers.js'

// The package is ESM. CommonJS can require() it on Node 20.19+ and 22.12+ (package.json's
// engines); on older lines that was ERR_REQUIRE_ESM. Plain `node`, no loader: as a user runs it.
test(`require('lifewatch') from CommonJS watches a real process (${process.version})`, async (t) => {
  const r = await run(process.execPath, [fixture('require.cjs')])
  t.is(r.code, 0, r.stderr)
  t.deepEqual(JSON.parse(r.stdout), { exitCode: 7, source: 'waitid' })
})
