// `npm test`: the Rust tests, the ava suite, the core's tests again in the cgroup-v2 VM and
// a bench smoke run; ends with one summary line `N passed, N failed[, N skipped]` that counts
// them all.
import { root, stream } from './lib.mjs'
import { runTests } from './nextest.mjs'
import { add, summary, tapCounts } from './results.mjs'

const totals = { passed: 0, failed: 0, skipped: 0 }

/** Adds up cargo's `test result:` lines echoed from the VM's console. */
function countCargo(out) {
  for (const m of out.matchAll(/test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored/g)) {
    add(totals, { passed: +m[1], failed: +m[2], skipped: +m[3] })
  }
}

add(totals, await runTests(['--workspace']))

// The OTLP end-to-end test needs Jaeger, built from the Go module proxy once (minutes on a
// fresh machine, then cached): built here so no ava test waits that long. A failure only
// makes that test skip with the reason.
await stream('bash', ['scripts/jaeger/build.sh'])

const ava = await stream('npx', ['ava', '--tap', ...process.argv.slice(2)])
add(totals, tapCounts(ava.stdout, ava.code))

// The core's tests again inside a cgroup-v2 VM (real v2 OOM, PSI, populated/frozen), when
// the VM kit can run here (qemu installable); LIFEWATCH_SKIP_VM=1 skips it.
if (process.env.LIFEWATCH_SKIP_VM === '1') {
  console.log('\nvm: skipped (LIFEWATCH_SKIP_VM=1)')
} else {
  const vm = await stream('node', ['scripts/test-vm.mjs'])
  const failedBefore = totals.failed
  if (vm.code === 3) console.log('vm: skipped: the VM kit cannot run on this host (reason above)')
  else countCargo(vm.out)
  if (vm.code !== 0 && vm.code !== 3 && totals.failed === failedBefore) totals.failed++
}

// Smoke run of the bench: it must not crash; no timing is checked. Skipped when arguments
// select a subset of the ava suite.
if (process.argv.length <= 2) {
  const bench = await stream('node', ['--import', 'tsx', 'bench/run.ts', '--quick', '--out', `${root}bench/results/smoke.tmp`])
  totals[bench.code === 0 ? 'passed' : 'failed']++
}

console.log(`\n${summary(totals)}`)
process.exitCode = totals.failed ? 1 : 0
