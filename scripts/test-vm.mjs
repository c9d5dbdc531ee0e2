// The core's tests inside a throwaway cgroup-v2 QEMU guest (scripts/vm/run.sh), one boot for
// all: the v2 tests (memory.events OOM, populated/frozen, PSI) run for real there instead of
// skipping, and so do the #[ignore]d VM-only tests.
//   node scripts/test-vm.mjs [--test NAME]... [-- FILTER...]    (npm run test:vm -- ...)
// --test picks test binaries (default: all of lifewatch-core's); FILTERs are nextest's test
// name filters. `npm test` runs everything; `npm run reliability` imports testVm() for
// reliability_overflow, with a report file. Ends with `vm: N passed, N failed, N skipped`;
// exit 3 (with the reason) when the VM kit cannot run on this host.
import { spawnSync } from 'node:child_process'
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { root, stream } from './lib.mjs'
import { countResults, JUNIT, listJson, listTests, nextestBin } from './nextest.mjs'
import { summary } from './results.mjs'

// Tests that depend on the host, not on cgroups: the guest has no perl, and its PID 1
// (busybox sh) reaps orphans, so a non-child's exit status is gone before it can be read;
// 1000 `sleep` processes do not all start and die within 30 s under TCG emulation.
const HOST_ONLY = ['non_child_exit_code', 'unreaped_zombie_non_child', 'thousand_watches_all_reported_in_few_batches']
// Memory: the kernel unpacks the initramfs into the guest's RAM before anything runs. With
// their debug info the test binaries were ~19 MB each and the image 249 MB, which 768 MB could
// not hold; shipped without it (below) they are 34 MB in all, the image 67 MB with nextest,
// and the tests pass in 512 MB: 768 leaves room.
const MEM = process.env.LIFEWATCH_VM_MEM ?? '768'

/** Shell-quotes one word for the guest's busybox sh. */
const q = (s) => `'${String(s).replaceAll("'", `'\\''`)}'`

/**
 * Runs the selected core tests in the VM. `report`: a host file that gets the reliability
 * report lines the tests write in the guest. Resolves with the counts, or `{ unavailable }`
 * (the reason) when the VM kit cannot run here.
 */
export async function testVm({ tests = [], filters = [], report } = {}) {
  const fail = (why) => (console.log(`vm: ${why}`), { passed: 0, failed: 1, skipped: 0 })
  let bin
  try {
    bin = await nextestBin()
  } catch (e) {
    return fail(`the core's tests were not run: ${e.message}`)
  }
  const build = ['-p', 'lifewatch-core', ...tests.flatMap((t) => ['--test', t])]
  // --run-ignored all: #[ignore] marks the tests that run only in this VM.
  const select = ['--run-ignored', 'all', '-E', `not (${HOST_ONLY.map((t) => `test(${t})`).join(' | ')})`, ...(filters.length ? ['--', ...filters] : [])]
  console.log(`vm: left out as host-only (no perl in the guest, whose PID 1 reaps orphans; too slow under TCG): ${HOST_ONLY.join(', ')}`)
  const list = listTests(bin, [...build, ...select])
  if (list.error) return fail(list.error)
  // No cargo in the guest: nextest runs the built binaries from these two descriptions.
  const binaries = listJson(bin, ['--list-type', 'binaries-only', ...build])
  if (binaries.error) return fail(binaries.error)
  const metadata = spawnSync('cargo', ['metadata', '--format-version', '1', '--no-deps'], { cwd: root, encoding: 'utf8', maxBuffer: 64 << 20 })
  if (metadata.status !== 0) return fail(`cargo metadata failed: ${metadata.stderr}`)

  const work = mkdtempSync(join(tmpdir(), 'lifewatch-vmtests-'))
  try {
    writeFileSync(join(work, 'binaries.json'), JSON.stringify(binaries))
    writeFileSync(join(work, 'metadata.json'), metadata.stdout)
    // Shipped without debug info (its symbols stay): a quarter of the image, and less RAM.
    const ship = [bin, ...Object.values(binaries['rust-binaries']).map((b) => b['binary-path'])]
    const args = ['--mem', MEM, '--smp', '2', '--timeout', process.env.LIFEWATCH_VM_TIMEOUT ?? '600',
      '--env', `LIFEWATCH_CYCLES=${process.env.LIFEWATCH_CYCLES ?? '200'}`]
    for (const [i, path] of ship.entries()) {
      const stripped = join(work, `${i}-${basename(path)}`)
      const s = spawnSync('strip', ['--strip-debug', '-o', stripped, path], { encoding: 'utf8' })
      if (s.status !== 0) return fail(`strip --strip-debug ${path} failed: ${s.error?.message ?? s.stderr}`)
      args.push('--bin', `${stripped}:${path}`)
    }
    // nextest wants the workspace's manifest and config, and runs each test in its crate's
    // directory (which the crate's manifest creates; the tests read no file of the tree).
    for (const f of ['Cargo.toml', '.config/nextest.toml', 'crates/lifewatch-core/Cargo.toml']) args.push('--file', join(root, f))
    for (const f of ['binaries.json', 'metadata.json']) args.push('--file', join(work, f))
    const guestReport = '/tmp/report.jsonl'
    if (report) args.push('--env', `LIFEWATCH_RELIABILITY_REPORT=${guestReport}`)
    // --no-capture: one test at a time (some change global settings, such as
    // fs.inotify.max_queued_events; timing-sensitive ones get TCG's slow vCPUs to themselves),
    // with its output streamed, so that a hang shows where it hung.
    const run = [bin, 'nextest', 'run', '--binaries-metadata', join(work, 'binaries.json'), '--cargo-metadata', join(work, 'metadata.json'),
      '--no-capture', '--show-progress', 'none', ...select]
    // The JUnit report and the reliability lines come back through the console, one marked line each.
    const carry = { junit: JUNIT, report: guestReport }
    const script = join(work, 'run-tests.sh')
    writeFileSync(script, [
      `${run.map(q).join(' ')}`,
      'rc=$?',
      'echo',
      ...Object.entries(carry).map(([tag, f]) => `[ -f ${q(f)} ] && sed 's/^/LIFEWATCH_${tag.toUpperCase()} /' ${q(f)}`),
      'exit $rc',
      '',
    ].join('\n'))
    args.push('--file', script, '--', 'sh', script)

    const { code, out } = await stream(join(root, 'scripts/vm/run.sh'), args)
    if (code === 3) return { unavailable: out.trimEnd().split('\n').pop() }
    const carried = (tag) => [...out.matchAll(new RegExp(`^LIFEWATCH_${tag.toUpperCase()} (.*)$`, 'gm'))].map((m) => m[1] + '\n').join('')
    writeFileSync(join(work, 'junit.xml'), carried('junit'))
    if (report) appendFileSync(report, carried('report'))
    return countResults(list, join(work, 'junit.xml'), code)
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const argv = process.argv.slice(2)
  const tests = []
  let i = 0
  for (; i < argv.length && argv[i] !== '--'; i += 2) {
    if (argv[i] !== '--test' || !argv[i + 1]) {
      console.error('usage: node scripts/test-vm.mjs [--test NAME]... [-- FILTER...]')
      process.exit(2)
    }
    tests.push(argv[i + 1])
  }
  const r = await testVm({ tests, filters: argv.slice(i + 1) })
  if (r.unavailable) {
    console.log(`vm: skipped: ${r.unavailable}`)
    process.exit(3)
  }
  console.log(`vm: ${summary(r)}`)
  process.exitCode = r.failed ? 1 : 0
}
