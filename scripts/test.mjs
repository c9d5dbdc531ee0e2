// `npm test`: the core's cargo tests, then the ava suite; ends with one summary line
// `N passed, N failed[, N skipped]` that counts both.
import { spawn } from 'node:child_process'
import { root } from './lib.mjs'

const totals = { passed: 0, failed: 0, skipped: 0 }

/** Streams a command's output while `onLine` reads it; resolves with the exit code. */
function stream(cmd, args, onLine, env = {}) {
  console.log(`\n$ ${[cmd, ...args].join(' ')}`)
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    for (const s of [p.stdout, p.stderr]) {
      let buf = ''
      s.on('data', (d) => {
        process.stdout.write(d)
        buf += d
        const lines = buf.split('\n')
        buf = lines.pop()
        lines.forEach(onLine)
      })
    }
    p.on('close', (code) => resolve(code))
  })
}

/** Adds up cargo's `test result:` lines (on the host or echoed from the VM's console). */
function countCargo(line) {
  const m = /test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored/.exec(line)
  if (m) {
    totals.passed += +m[1]
    totals.failed += +m[2]
    totals.skipped += +m[3]
  }
}

const cargo = await stream('cargo', ['test', '--workspace', '--color', 'never'], countCargo)
if (cargo !== 0 && totals.failed === 0) totals.failed++ // a build failure counts as a failure

// The OTLP end-to-end test needs Jaeger, built from the Go module proxy once (minutes on a
// fresh machine, then cached): built here so no ava test waits that long. A failure only
// makes that test skip with the reason.
await stream('bash', ['scripts/jaeger/build.sh'], () => {})

const ava = await stream('npx', ['ava', '--tap', ...process.argv.slice(2)], (line) => {
  const m = /^# (pass|fail|skip) +(\d+)/.exec(line)
  if (m) totals[{ pass: 'passed', fail: 'failed', skip: 'skipped' }[m[1]]] += +m[2]
})
if (ava !== 0 && totals.failed === 0) totals.failed++

// The core's tests again inside a cgroup-v2 VM (real v2 OOM, PSI, populated/frozen), when
// the VM kit can run here (qemu installable); LIFEWATCH_SKIP_VM=1 skips it.
if (process.env.LIFEWATCH_SKIP_VM === '1') {
  console.log('\nvm: skipped (LIFEWATCH_SKIP_VM=1)')
} else {
  const vm = await stream('node', ['scripts/test-vm.mjs'], countCargo)
  if (vm === 3) console.log('vm: skipped: the VM kit cannot run on this host (reason above)')
  else if (vm !== 0 && totals.failed === 0) totals.failed++
}

// Smoke run of the bench (issue 7): it must not crash; no timing is checked. Skipped when
// arguments select a subset of the ava suite.
if (process.argv.length <= 2) {
  const out = `${root}bench/results/smoke.tmp`
  const bench = await stream('node', ['--import', 'tsx', 'bench/run.ts', '--quick', '--out', out], () => {})
  totals[bench === 0 ? 'passed' : 'failed']++
}

console.log(`\n${totals.passed} passed, ${totals.failed} failed${totals.skipped ? `, ${totals.skipped} skipped` : ''}`)
process.exitCode = totals.failed ? 1 : 0
