// `npm run reliability`: the reliability and security suite, then one summary table
// (tests tried and passed, what was checked, fds leaked, events lost) per part.
//   node scripts/reliability.mjs           everything, long settings: 10,000 cycles, 60 s of
//                                           stress, 60 s of fuzzing (a few minutes; .ci/run)
//   node scripts/reliability.mjs --quick   the settings `npm test` uses (1,000 cycles, 5 s,
//                                           250 property operations; the full run: 2,000)
// Exit status 1 if any part failed, leaked an fd or lost an event.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { root, stream } from './lib.mjs'
import { runTests } from './nextest.mjs'
import { tapCounts } from './results.mjs'
import { testVm } from './test-vm.mjs'

const quick = process.argv.includes('--quick')
const settings = quick
  ? { LIFEWATCH_CYCLES: '1000', LIFEWATCH_STRESS_SECONDS: '5', LIFEWATCH_PARSE_ROUNDS: '10000', LIFEWATCH_OOM_RUNS: '100', LIFEWATCH_PROPERTY_OPS: '250', fuzzSeconds: 0 }
  : { LIFEWATCH_CYCLES: '10000', LIFEWATCH_STRESS_SECONDS: '60', LIFEWATCH_PARSE_ROUNDS: '200000', LIFEWATCH_OOM_RUNS: '1000', LIFEWATCH_PROPERTY_OPS: '2000', LIFEWATCH_PROPERTY_SHRINK_SECONDS: '300', fuzzSeconds: 60 }
const reports = mkdtempSync(join(tmpdir(), 'lifewatch-reliability-'))
const rows = []
/** The adversarial cases' report lines: case, expected, observed (their own table at the end). */
const cases = []

function reportLines(file) {
  if (!existsSync(file)) return []
  return readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l))
}

/** What the report lines say was checked, in a few words. */
function detail(lines) {
  const bits = []
  const sum = (k) => lines.reduce((n, l) => n + (typeof l[k] === 'number' ? l[k] : 0), 0)
  if (sum('cases')) bits.push(`${sum('cases')} cases`)
  if (sum('scenarios')) bits.push(`${sum('scenarios')} scenarios`)
  if (sum('paths')) bits.push(`${sum('paths')} failure paths`)
  const cyc = lines.filter((l) => l.cycles)
  if (cyc.length) {
    const counts = cyc.map((l) => l.cycles)
    const lo = Math.min(...counts)
    const hi = Math.max(...counts)
    const cg = cyc.filter((l) => /cgroup|v1 |v2 |PSI/i.test(l.case)).length
    bits.push(`${cyc.length} kinds (${cg} cgroup) x ${lo === hi ? hi : `${lo}-${hi}`} cycles, RSS +${Math.max(...cyc.map((l) => l.rssGrowthKiB))} KiB max (bound ${Math.min(...cyc.map((l) => l.rssBoundKiB))}+)`)
  }
  for (const l of lines.filter((l) => l.overflows !== undefined)) {
    bits.push(`max_queued_events ${l.queue}: ${l.produced} inotify events in ${l.floodMs} ms, ${l.overflows} overflow(s)`)
  }
  // The property run: operations really executed (not the configured figure), and its seed.
  for (const l of lines.filter((l) => l.operations !== undefined)) {
    bits.push(`${l.operations} random operations in ${l.sequences} sequences (seed ${l.seed}, ${l.seconds} s)${l.skipped ? `; skipped: ${l.skipped}` : ''}`)
  }
  const stress = lines.find((l) => l.tasks)
  if (stress) bits.push(`${stress.tasks} tasks in ${stress.cgroups} cgroups (${stress.tasksPerSecond}/s), RSS +${stress.rssGrowthKiB} KiB (bound ${stress.rssBoundKiB})`)
  return bits.join('; ')
}

function row(part, suite, tried, passed, lines, extra = '') {
  const fdsLeaked = lines.reduce((n, l) => n + Math.max(0, l.fdsLeaked ?? 0), 0)
  const eventsLost = lines.reduce((n, l) => n + Math.max(0, l.eventsLost ?? 0), 0)
  rows.push({ part, suite, tried, passed, checked: [detail(lines), extra].filter(Boolean).join('; '), fdsLeaked, eventsLost })
}

let unit = 0
async function cargoUnit(part, suite, tests, env = {}) {
  const file = join(reports, `${unit++}.jsonl`)
  const c = await runTests(['-p', 'lifewatch-core', ...tests.flatMap((t) => ['--test', t])], { env: { ...settings, ...env, LIFEWATCH_RELIABILITY_REPORT: file } })
  row(part, suite, c.passed + c.failed, c.passed, reportLines(file))
}

/** Core tests that only run in the cgroup-v2 VM (scripts/test-vm.mjs); a host where it cannot run is a skip. */
async function vmUnit(part, suite, tests) {
  const file = join(reports, `${unit++}.jsonl`)
  const c = await testVm({ tests, report: file })
  if (c.unavailable) {
    rows.push({ part, suite, tried: 0, passed: 0, checked: `skipped: ${c.unavailable}`, fdsLeaked: 0, eventsLost: 0 })
    return
  }
  row(part, suite, c.passed + c.failed, c.passed, reportLines(file))
}

async function avaUnit(part, suite, specs, nodeArgs = []) {
  const file = join(reports, `${unit++}.jsonl`)
  const extra = nodeArgs.length ? [`--node-arguments=${nodeArgs.join(' ')}`] : []
  const { code, stdout, out } = await stream('npx', ['ava', '--tap', ...extra, ...specs], { env: { ...settings, LIFEWATCH_RELIABILITY_REPORT: file } })
  const c = tapCounts(stdout, code)
  // Declared skips are neither tried nor passed; their reasons are the `SKIPPED: ...` lines
  // the specs print.
  const reasons = [...new Set([...out.matchAll(/SKIPPED: (.*)/g)].map((m) => m[1]))]
  const skipped = c.skipped ? [`${c.skipped} skipped${reasons.length ? `: ${reasons.join('; ')}` : ''}`] : []
  const lines = reportLines(file)
  cases.push(...lines.filter((l) => l.expected !== undefined))
  row(part, suite, c.passed + c.failed, c.passed, lines, skipped.join('; '))
}

const hasNightly = spawnSync('rustup', ['toolchain', 'list']).stdout?.toString().includes('nightly') ?? false
const host = /host: (\S+)/.exec(spawnSync('rustc', ['-vV']).stdout?.toString() ?? '')?.[1]

// Tests that need pidfd_open, which valgrind 3.19 answers with ENOSYS (it has no wrapper
// for syscall 434): under valgrind the core runs its no-pidfd fallback, which these tests
// do not expect. The same tests run natively and under AddressSanitizer.
const VALGRIND_SKIP = [
  'pidfd::tests', 'child_killed_by_signal', 'dead_pid_is_no_such_process', 'non_child_exit_code',
  'unreaped_zombie_non_child', 'thousand_watches_all_reported_in_few_batches', 'close_is_idempotent_and_releases_everything',
  'too_many_files_is_typed_and_leaves_nothing_open', 'each_syscall_fails_in_turn_typed_and_leak_free',
  'exits_during_registration_are_reported_once', 'create_watch_close_cycles_return_to_baseline',
  // Spawning is clone3's (also ENOSYS there); the cgroup manager signals through pidfds.
  'spawned_child_is_in_the_cgroup_before_it_execs', 'kill_by_signals_through_pidfds_where_there_is_no_cgroup_kill',
  'delete_waits_for_the_last_process_then_times_out_as_busy', 'wait_empty_is_cancellable_and_resolves_on_exit',
  'a_child_reaped_by_another_monitor_mid_poll_is_reported_with_its_status',
  // Watches of one process share its pidfd: with no pidfd_open there is nothing to share.
  'separate_monitors_do_not_share', 'unwatching_every_watch_closes_the_pidfd', 'unwatching_the_first_watch_keeps_the_others',
  'watches_of_one_process_share_one_pidfd',
  // An exit wait through a process handle holds the handle's pidfd.
  'several_exit_waits_on_one_handle_each_end_with_the_exit',
  // Direct mode hands pidfd readiness to the consumer: fallback watches are polled instead.
  'exits_shared_between_the_consumer_and_the_reactor_are_reported_once', 'the_ready_fd_is_quiet_unless_a_watch_has_something_to_report',
  'a_consumer_that_does_not_turn_still_gets_its_events_from_the_reactor', 'after_a_burst_left_to_the_reactor_it_waits_for_the_consumer_again',
  // A fallback watch polls on timed wakes this test does not turn for: the backstop hands them
  // to the reactor.
  'the_reactor_thread_sleeps_through_exits_the_consumer_takes',
]

async function valgrindUnit() {
  const why = spawnSync('valgrind', ['--version']).status !== 0 ? 'valgrind not installed' : !host ? 'no host triple from rustc -vV (for the target runner)' : null
  if (why) {
    rows.push({ part: '8', suite: 'core tests under valgrind', tried: 0, passed: 0, checked: `skipped: ${why}`, fdsLeaked: 0, eventsLost: 0 })
    return
  }
  // rustix's raw-syscall backend reads the vDSO straight from memory valgrind does not map:
  // build the valgrind binaries on rustix's libc backend instead. Each test runs in its own
  // valgrind (nextest's target runner): an error or a leak fails that test.
  const valgrind = ['valgrind', '-q', '--leak-check=full', '--errors-for-leak-kinds=definite,indirect,possible',
    `--suppressions=${join(root, 'scripts/valgrind.supp')}`, '--error-exitcode=99']
  const c = await runTests(['-p', 'lifewatch-core', '--config', `target.${host}.runner=${JSON.stringify(valgrind)}`,
    '--', ...VALGRIND_SKIP.flatMap((s) => ['--skip', s])], {
    env: { ...settings, LIFEWATCH_CYCLES: '100', LIFEWATCH_PARSE_ROUNDS: '500', CARGO_TARGET_DIR: join(root, 'target/valgrind'), RUSTFLAGS: '--cfg=rustix_use_libc' },
  })
  rows.push({ part: '8', suite: 'core tests under valgrind --leak-check=full', tried: c.passed + c.failed, passed: c.passed, fdsLeaked: 0, eventsLost: 0,
    checked: `${c.skipped} skipped: pidfd-only (valgrind 3.19: pidfd_open ENOSYS) or VM-only` })
}

async function asanUnit() {
  if (!hasNightly || !host) {
    rows.push({ part: '8', suite: 'core tests under AddressSanitizer', tried: 0, passed: 0, checked: 'skipped: no nightly toolchain (rustup toolchain list)', fdsLeaked: 0, eventsLost: 0 })
    return
  }
  const file = join(reports, `${unit++}.jsonl`)
  const c = await runTests(['-p', 'lifewatch-core', '--target', host], {
    env: { ...settings, RUSTUP_TOOLCHAIN: 'nightly', LIFEWATCH_CYCLES: '1000', CARGO_TARGET_DIR: join(root, 'target/asan'), RUSTFLAGS: '-Zsanitizer=address',
      RUSTDOCFLAGS: '-Zsanitizer=address', LIFEWATCH_RSS_BOUND: 'off', LIFEWATCH_RELIABILITY_REPORT: file },
  })
  // A sanitizer report makes its test's process exit non-zero: that test fails, by name.
  rows.push({ part: '8', suite: 'core tests under AddressSanitizer + LeakSanitizer', tried: c.passed + c.failed, passed: c.passed, fdsLeaked: 0, eventsLost: 0,
    checked: 'all core tests incl. pidfd paths; each in its own process, failed by any sanitizer report' })
}

async function fuzzUnit() {
  if (!settings.fuzzSeconds) return
  const why = !hasNightly ? 'no nightly toolchain' : null
  if (!why && spawnSync('cargo', ['fuzz', '--version']).status !== 0) {
    // From crates.io, built here: cargo fuzz needs nightly to run, not to install.
    await stream('cargo', ['install', 'cargo-fuzz', '--locked'])
  }
  if (why || spawnSync('cargo', ['fuzz', '--version']).status !== 0) {
    rows.push({ part: '8', suite: 'cargo fuzz: procstat::parse', tried: 0, passed: 0, checked: `skipped: ${why ?? 'cargo-fuzz could not be installed'}; the bounded random test covers the parser`, fdsLeaked: 0, eventsLost: 0 })
    return
  }
  for (const [target, what] of [['procstat', 'procstat::parse'], ['cgroup_parsers', 'mountinfo, /proc/<pid>/cgroup, counters, limits'], ['host_parsers', 'process events connector datagrams, /dev/kmsg OOM records']]) {
    const { code, out } = await stream('cargo', ['+nightly', 'fuzz', 'run', target, '--', `-max_total_time=${settings.fuzzSeconds}`],
      { cwd: join(root, 'crates/lifewatch-core'), quiet: true }) // libFuzzer prints a line per new input
    const runs = /Done (\d+) runs/.exec(out)?.[1] ?? '?'
    rows.push({ part: '8', suite: `cargo fuzz: ${what}`, tried: 1, passed: code === 0 ? 1 : 0, fdsLeaked: 0, eventsLost: 0,
      checked: `${runs} inputs in ${settings.fuzzSeconds} s, ${code === 0 ? 'no crash' : 'CRASH (see crates/lifewatch-core/fuzz/artifacts)'}` })
  }
}

const t0 = Date.now()
await cargoUnit('1, 2', 'core: fd exactness, leak cycles', ['reliability_fds'])
await avaUnit('1, 2', 'node: fd exactness, leak cycles', ['__test__/reliability/fds.spec.ts'], ['--expose-gc'])
await cargoUnit('3', 'core: failpoints, each syscall in turn', ['reliability_failpoints'])
await avaUnit('4', 'node + cli: bad-input table', ['__test__/reliability/badinput.spec.ts'])
await cargoUnit('5', 'core: exits around registration, cgroup removed mid-watch, EMFILE', ['reliability_faults', 'reliability_emfile'])
await vmUnit('5', 'core in the cgroup-v2 VM: inotify queue overflow (IN_Q_OVERFLOW)', ['reliability_overflow'])
await avaUnit('5', 'node: PID reuse, worker, GC, close, EMFILE, blocked loop', ['__test__/reliability/faults.spec.ts'])
await avaUnit('6', 'no-pidfd (seccomp) x unprivileged (setpriv)', ['__test__/reliability/kernels.spec.ts'])
await avaUnit('5', 'node: host-wide streams: open/close cycles of each watch, a burst of exits', ['__test__/reliability/host.spec.ts'])
await avaUnit('7', 'stress: 100 concurrent tasks spawned and killed in cgroups', ['__test__/reliability/stress.spec.ts'])
await avaUnit('9', 'adversarial: cases a demanding user tried (table below)', ['__test__/reliability/adversarial.spec.ts', '__test__/reliability/oom-order.spec.ts'])
await avaUnit('10', 'property: random sequences of real operations against a model (fast-check)', ['__test__/reliability/property.spec.ts'])
await cargoUnit('8', 'core: bounded random parsers (procstat, mountinfo, /proc/<pid>/cgroup, counters, limits)', ['reliability_parse'])
await valgrindUnit()
await asanUnit()
await fuzzUnit()
rmSync(reports, { recursive: true, force: true })

const head = ['part', 'suite', 'tried', 'passed', 'fds leaked', 'events lost', 'checked']
const body = rows.map((r) => [r.part, r.suite, String(r.tried), String(r.passed), String(r.fdsLeaked), String(r.eventsLost), r.checked])
const width = head.map((h, i) => Math.max(h.length, ...body.map((b) => (i === 6 ? 0 : b[i].length))))
const line = (cells) => '| ' + cells.map((c, i) => (i === 6 ? c : c.padEnd(width[i]))).join(' | ') + ' |'
const total = rows.reduce((a, r) => ({ tried: a.tried + r.tried, passed: a.passed + r.passed, fds: a.fds + r.fdsLeaked, lost: a.lost + r.eventsLost }), { tried: 0, passed: 0, fds: 0, lost: 0 })
console.log(`\nlifewatch reliability (${quick ? 'quick' : 'full'}), ${Math.round((Date.now() - t0) / 1000)} s\n`)
console.log(line(head))
console.log('| ' + width.map((w, i) => '-'.repeat(i === 6 ? 7 : w)).join(' | ') + ' |')
for (const b of body) console.log(line(b))
console.log(line(['all', '', String(total.tried), String(total.passed), String(total.fds), String(total.lost), '']))
if (cases.length) {
  console.log('\nadversarial cases (each passed; a failing one is in the suite\'s output above)\n')
  console.log('| case | expected | observed |')
  console.log('| ---- | -------- | -------- |')
  for (const c of cases) console.log(`| ${c.case} | ${c.expected} | ${c.observed} |`)
}
const failed = total.tried - total.passed
console.log(`\nreliability: ${total.passed} passed, ${failed} failed`)
process.exitCode = failed || total.fds || total.lost ? 1 : 0
