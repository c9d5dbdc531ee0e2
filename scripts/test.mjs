// `npm test`: the Rust tests, the lint, the ava suite, the core's tests again in the cgroup-v2 VM, the
// package on the other living Node lines and a bench smoke run; ends with one summary line
// `N passed, N failed[, N skipped]` that counts them all. Arguments go to ava and select a
// subset of its suite (then the Node lines and the bench are left out).
import { root, stream } from './lib.mjs'
import { runTests } from './nextest.mjs'
import { testNodeLines } from './node-lines.mjs'
import { add, summary, tapCounts } from './results.mjs'
import { testVm } from './test-vm.mjs'

const totals = { passed: 0, failed: 0, skipped: 0 }
const subset = process.argv.length > 2

add(totals, await runTests(['--workspace']))

// Formatting, clippy, the fuzz targets (built only by the long reliability run otherwise) and
// the TypeScript types: one check, counted as one test.
const lint = await stream('npm', ['run', '-s', 'lint'])
totals[lint.code === 0 ? 'passed' : 'failed']++

// The OTLP end-to-end test needs Jaeger, built from the Go module proxy once (minutes on a
// fresh machine, then cached): built here so no ava test waits that long. A failure only
// makes that test skip with the reason.
await stream('bash', ['scripts/jaeger/build.sh'])

const ava = await stream('npx', ['ava', '--tap', ...process.argv.slice(2)])
add(totals, tapCounts(ava.stdout, ava.code))

// The core's tests again inside a cgroup-v2 VM (real v2 OOM, PSI, populated/frozen), when
// the VM kit can run here (qemu installable); LIFEWATCH_SKIP_VM=1 skips it.
if (process.env.LIFEWATCH_SKIP_VM === '1') console.log('\nvm: skipped (LIFEWATCH_SKIP_VM=1)')
else {
  const vm = await testVm()
  if (vm.unavailable) console.log(`vm: skipped: the VM kit cannot run on this host: ${vm.unavailable}`)
  else add(totals, vm)
}

if (subset) console.log('\nnode lines and bench smoke run: skipped (arguments select a subset of the ava suite)')
else {
  add(totals, await testNodeLines())
  // Smoke run of the bench: it must not crash; no timing is checked.
  const bench = await stream('node', ['--import', 'tsx', 'bench/run.ts', '--quick', '--out', `${root}bench/results/smoke.tmp`])
  totals[bench.code === 0 ? 'passed' : 'failed']++
}

console.log(`\n${summary(totals)}`)
process.exitCode = totals.failed ? 1 : 0
