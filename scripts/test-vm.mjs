// `npm run test:vm`: builds the core's test binaries and runs them inside a cgroup-v2 QEMU
// guest (scripts/vm/run.sh), where the v2 tests (memory.events OOM, populated/frozen, PSI)
// run for real instead of skipping. Prints the guest's `test result:` lines, then one line
// `vm: N passed, N failed`. Exit 3 (with the reason) when the VM kit cannot run here.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { root, stream } from './lib.mjs'

const build = spawnSync('cargo', ['test', '-p', 'lifewatch-core', '--no-run', '--message-format=json'], {
  cwd: root,
  encoding: 'utf8',
  stdio: ['ignore', 'pipe', 'inherit'],
  maxBuffer: 64 << 20,
})
if (build.status !== 0) {
  console.error('vm: building the core test binaries failed')
  process.exit(1)
}
const bins = build.stdout
  .split('\n')
  .filter((l) => l.startsWith('{'))
  .map((l) => JSON.parse(l))
  .filter((m) => m.reason === 'compiler-artifact' && m.profile?.test && m.executable)
  .map((m) => m.executable)
if (bins.length === 0) {
  console.error('vm: no test binaries were built')
  process.exit(1)
}

// Tests that depend on the host, not on cgroups: the guest has no perl, and its PID 1
// (busybox sh) reaps orphans, so a non-child's exit status is gone before it can be read;
// 1000 `sleep` processes do not all start and die within 30 s under TCG emulation.
const skips = ['non_child_exit_code', 'unreaped_zombie_non_child', 'thousand_watches_all_reported_in_few_batches'].map((t) => `--skip ${t}`).join(' ')
const work = mkdtempSync(join(tmpdir(), 'lifewatch-vmtests-'))
const script = join(work, 'run-tests.sh')
// Each binary runs single-threaded (fd-counting tests share the process fd table); the
// script's status is the number of failed binaries.
writeFileSync(
  script,
  [
    'failed=0',
    ...bins.map((b) => `echo "== ${basename(b)}"; ${b} --test-threads=1 --nocapture --include-ignored ${skips} || failed=$((failed+1))`),
    'exit $failed',
    '',
  ].join('\n'),
)
// Memory: the kernel unpacks the initramfs (every test binary, uncompressed, ~19 MB each with
// debug info) into RAM; 768 MB ran out at a 249 MB image (run.sh reports that).
const args = ['--mem', process.env.LIFEWATCH_VM_MEM ?? '1536', '--smp', '2', '--timeout', process.env.LIFEWATCH_VM_TIMEOUT ?? '600',
  '--env', `LIFEWATCH_CYCLES=${process.env.LIFEWATCH_CYCLES ?? '200'}`, '--file', `${script}:${script}`]
for (const b of bins) args.push('--bin', b)
args.push('--', 'sh', script)

const { code, out } = await stream(join(root, 'scripts/vm/run.sh'), args)
const totals = { passed: 0, failed: 0, ignored: 0 }
for (const m of out.matchAll(/test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored/g)) {
  totals.passed += +m[1]
  totals.failed += +m[2]
  totals.ignored += +m[3]
}
rmSync(work, { recursive: true, force: true })
if (code === 3) {
  console.log('vm: skipped (the VM kit cannot run on this host; see the reason above)')
  process.exit(3)
}
if (code !== 0 && totals.failed === 0) totals.failed++
console.log(`vm: ${totals.passed} passed, ${totals.failed} failed${totals.ignored ? `, ${totals.ignored} ignored` : ''}`)
process.exitCode = totals.failed ? 1 : 0
