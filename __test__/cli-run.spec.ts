// `lifewatch run` on real processes: the event channel, wrapper exit statuses, limits,
// signals, the end summary and colour.
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import test from 'ava'

import { lines } from './cli-lines.js'
import { CLI, cli, root } from './helpers.js'

const isRoot = process.getuid?.() === 0
const nobody = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups']
const env = { NO_COLOR: '1' }

/** A shell line that runs `lifewatch <args>`, its arguments quoted. */
const shellLine = (args: string[]) => [process.execPath, CLI, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ')

test('run --json --events-fd 3: the command output is byte-identical to running it bare; every event line validates', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lw-events-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  // Text, a line without a newline on stderr, binary bytes, and a status of its own.
  const script = `printf 'out 1\\n'; printf 'err 1' >&2; printf '\\000\\377\\n'; echo "line with { \\"json\\": 1 }"; exit 7`
  const bare = spawnSync('sh', ['-c', `sh -c '${script.replace(/'/g, `'\\''`)}' >${dir}/bare.out 2>${dir}/bare.err`])
  const wrapped = spawnSync('sh', ['-c', `${shellLine(['run', '--json', '--events-fd', '3', '--', 'sh', '-c', script])} >${dir}/lw.out 2>${dir}/lw.err 3>${dir}/events`])
  t.is(wrapped.status, 7)
  t.is(bare.status, 7)
  t.deepEqual(readFileSync(`${dir}/lw.out`), readFileSync(`${dir}/bare.out`), 'stdout byte-identical')
  t.deepEqual(readFileSync(`${dir}/lw.err`), readFileSync(`${dir}/bare.err`), 'stderr byte-identical')
  const ev = lines(t, readFileSync(`${dir}/events`, 'utf8'))
  const types = ev.map((l) => l.type)
  t.is(types[0], 'spawn')
  t.true(types.includes('exit'))
  t.is(types.at(-1), 'shutdown')
  t.like(ev.at(-1), { status: 7, exitCode: 7, result: 'exit-code' })
  const watch = ev[0]!.watch
  for (const l of ev) if (l.type !== 'warning') t.is(typeof l.watch, 'number', `${l.type} has its watch`)
  t.true(ev.filter((l) => ['spawn', 'exit', 'shutdown'].includes(l.type)).every((l) => l.watch === watch), 'spawn, exit and shutdown name the command')
  // The events fd is lifewatch's: the command does not inherit it (a pipe's reader sees EOF
  // when lifewatch exits, whatever the command left running).
  const fds = spawnSync('sh', ['-c', `${shellLine(['run', '--events-fd', '3', '--', 'sh', '-c', 'ls /proc/$$/fd'])} 3>${dir}/events2`], { encoding: 'utf8' })
  t.is(fds.stdout, '0\n1\n2\n')
})

test('run --json without --events: NDJSON on stderr, stdout untouched; --events FILE', async (t) => {
  const r = await cli(['run', '--json', '--', 'sh', '-c', 'echo hello; exit 4'], { env })
  t.is(r.code, 4)
  t.is(r.stdout, 'hello\n')
  const ev = lines(t, r.stderr)
  t.like(ev.find((l) => l.type === 'exit'), { exitCode: 4 })
  const dir = mkdtempSync(join(tmpdir(), 'lw-events-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const f = await cli(['run', '--events', `${dir}/ev`, '--', 'sh', '-c', 'echo hi >&2'], { env })
  t.is(f.code, 0)
  t.is(f.stderr, 'hi\n', 'human reports went to the file, not to stderr')
  t.regex(readFileSync(`${dir}/ev`, 'utf8'), /spawn pid \d+ sh[\s\S]*Finished with result: success/)
})

test('exit statuses: the command code, 128 + signal, 127 missing, 126 not runnable (never a cgroup error), 125 bad flags', async (t) => {
  t.is((await cli(['run', '--', 'sh', '-c', 'exit 3'], { env })).code, 3)
  t.is((await cli(['run', '--', 'sh', '-c', 'kill -TERM $$'], { env })).code, 143)
  const missing = await cli(['run', '--', '/nonexistent/command'], { env })
  t.is(missing.code, 127)
  t.regex(missing.stderr, /^lifewatch: cannot run \/nonexistent\/command: /m)
  for (const argv of [[], nobody]) {
    const r = argv.length
      ? await (async () => {
          const p = spawnSync(argv[0]!, [...argv.slice(1), process.execPath, CLI, 'run', '--', '/etc/passwd'], { encoding: 'utf8', env: { ...process.env, ...env } })
          return { code: p.status, stderr: p.stderr }
        })()
      : await cli(['run', '--', '/etc/passwd'], { env })
    const who = argv.length ? 'nobody' : 'root'
    t.is(r.code, 126, `${who}: ${r.stderr}`)
    // The last line says why; nothing is retried after it (nobody: no cgroup, said before it).
    t.regex(r.stderr.trim().split('\n').at(-1)!, /^lifewatch: cannot run \/etc\/passwd: .*(EACCES|Permission denied)/, who)
    if (who === 'root' && isRoot) t.notRegex(r.stderr, /cannot create/, 'an exec failure is not a cgroup failure')
  }
  const swap = await cli(['run', '--swap', '0', '--', 'true'], { env })
  t.is(swap.code, 125)
  t.regex(swap.stderr, /--swap 0/)
  t.is(swap.stderr.trim().split('\n').length, 1)
})

test('--deadline stops the command with its stop signal, SIGKILL after --kill-timeout, exits 124', async (t) => {
  const t0 = Date.now()
  const r = await cli(['run', '--json', '--deadline', '300ms', '--stop-signal', 'INT', '--', 'sh', '-c', 'trap "echo got INT; exit 9" INT; while :; do sleep 0.05; done'], { env })
  t.is(r.code, 124)
  t.is(r.stdout, 'got INT\n', 'the stop signal was the one asked for')
  const ev = lines(t, r.stderr)
  t.truthy(ev.find((l) => l.type === 'deadline'))
  t.like(ev.at(-1), { type: 'shutdown', status: 124, result: 'timeout', exitCode: 9 })
  // Ignores the stop signal: SIGKILL after the kill timeout.
  const k = await cli(['run', '--json', '--deadline', '0.2', '--kill-timeout', '300ms', '--', 'sh', '-c', 'trap "" TERM; while :; do sleep 0.05; done'], { env })
  t.is(k.code, 124)
  t.like(lines(t, k.stderr).at(-1), { type: 'shutdown', signal: 'SIGKILL', forced: true })
  t.true(Date.now() - t0 < 20_000)
  // 0 and infinity: no deadline.
  for (const none of ['0', 'infinity']) t.is((await cli(['run', '--deadline', none, '--', 'sh', '-c', 'sleep 0.3; exit 5'], { env })).code, 5, none)
})

test('huge durations never fire early: a 30-day kill timeout and deadline, a step timeout of infinity', async (t) => {
  // Node fires a raw setTimeout above 2**31 - 1 ms after 1 ms: a command that ignores TERM must
  // not be SIGKILLed early; it is stopped here by a second Ctrl-C... which does the same.
  const r = await cli(['run', '--json', '--deadline', '30d', '--kill-timeout', '30d', '--step-timeout', 'infinity', '--', 'sh', '-c', 'sleep 0.5; exit 6'], { env })
  t.is(r.code, 6, r.stderr)
  const p = spawn(process.execPath, [CLI, 'run', '--json', '--deadline', '0.3', '--kill-timeout', '99999d', '--', 'sh', '-c', 'trap "" TERM; echo ready; while :; do sleep 0.05; done'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } })
  let out = ''
  let err = ''
  p.stdout.on('data', (d) => (out += d))
  p.stderr.on('data', (d) => (err += d))
  const deadlineSeen = Date.now() + 20_000
  while (!/"type":"deadline"/.test(err) && Date.now() < deadlineSeen) await new Promise((r) => setTimeout(r, 20))
  t.regex(err, /"type":"deadline"/)
  // The stop signal went out; SIGKILL is 99999 days away, and stays there.
  await new Promise((r) => setTimeout(r, 1500))
  t.is(p.exitCode, null, 'still waiting for the TERM-ignoring command: no early SIGKILL')
  t.is(out, 'ready\n')
  // Ctrl-C while stopping: SIGKILL at once.
  p.kill('SIGINT')
  const [code] = (await once(p, 'close')) as [number]
  t.is(code, 124)
  t.like(lines(t, err).at(-1), { type: 'shutdown', signal: 'SIGKILL', status: 124 })
})

test('limits are honoured or the run fails: as non-root --memory is 125 unless --best-effort', async (t) => {
  const run = (args: string[]) => spawnSync(nobody[0]!, [...nobody.slice(1), process.execPath, CLI, 'run', ...args], { encoding: 'utf8', env: { ...process.env, ...env }, cwd: '/' })
  const r = run(['--memory', '32M', '--', 'sh', '-c', 'echo ran'])
  t.is(r.status, 125, r.stderr)
  t.is(r.stdout, '', 'the command did not run')
  t.is(r.stderr.trim().split('\n').length, 1, r.stderr)
  t.regex(r.stderr, /cannot apply --memory 32M: .*ERR_PERMISSION.*run as root.*delegated.*--best-effort/)
  const b = run(['--memory', '32M', '--best-effort', '--', 'sh', '-c', 'echo ran'])
  t.is(b.status, 0, b.stderr)
  t.is(b.stdout, 'ran\n')
  t.regex(b.stderr, /--memory 32M NOT applied \(--best-effort\)/)
  const plain = run(['--', 'sh', '-c', 'echo ran'])
  t.is(plain.status, 0, plain.stderr)
  t.regex(plain.stderr, /running without one/)
})

test('the end summary, --name/--parent, and a timeline that never goes backwards', async (t) => {
  const name = `lw-test-${process.pid}`
  const r = await cli(['run', '--name', name, '--', 'sh', '-c', 'i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 0.1 & wait; exit 2'], { env })
  t.is(r.code, 2)
  const stamps = [...r.stderr.matchAll(/^\[\+\s*([\d.]+) ms\]/gm)].map((m) => Number(m[1]))
  t.true(stamps.length >= 4, r.stderr)
  t.deepEqual(stamps, [...stamps].sort((a, b) => a - b), 'never backwards')
  t.regex(r.stderr, /^Finished with result: exit-code$/m)
  t.regex(r.stderr, /^Main processes terminated with: code=exited\/status=2$/m)
  t.regex(r.stderr, /^Service runtime: [\d.]+m?s$/m)
  t.regex(r.stderr, /^OOM kills: 0$/m)
  if (isRoot) {
    t.regex(r.stderr, new RegExp(`spawn pid \\d+ sh in cgroup /lifewatch/${name}`))
    const cpu = /^CPU time consumed: ([\d.]+)(m?s) \(user [\d.]+m?s, system [\d.]+m?s\)$/m.exec(r.stderr)
    t.truthy(cpu, r.stderr)
    t.true(Number(cpu![1]) > 0, 'the busy loop used CPU')
    t.regex(r.stderr, /^Memory peak: [\d.]+[KMG]$/m)
    t.regex(r.stderr, /^Pids peak: [2-9]$/m, 'the shell and its sleep')
  }
})

test('OOM: the summary says oom-kill, 137', async (t) => {
  if (!isRoot) return t.pass('creating a limited cgroup needs root')
  const r = await cli(['run', '--json', '--memory', '32M', '--swap', '0', '--', 'tail', '/dev/zero'], { env, timeoutMs: 60_000 })
  t.is(r.code, 137)
  const ev = lines(t, r.stderr)
  t.truthy(ev.find((l) => l.type === 'oom'))
  t.like(ev.at(-1), { type: 'shutdown', result: 'oom-kill', signal: 'SIGKILL', status: 137 })
  t.true((ev.at(-1)!.oomKills as number) >= 1)
  t.true((ev.at(-1)!.memoryPeak as number) >= 30 * 1024 * 1024)
})

test('colour per stream: stderr on a terminal is coloured, a file is not; NO_COLOR and FORCE_COLOR', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lw-color-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const clean = { ...process.env }
  delete clean.NO_COLOR
  delete clean.FORCE_COLOR
  // Node's colour depth rule reads CI as "2 colours" (CI=true is set by the CI runner).
  delete clean.CI
  // Under a pseudo-terminal (script): stdout to a file, stderr on the terminal...
  const tty = spawnSync('script', ['-qec', `${shellLine(['run', '--', 'true'])} >${dir}/out`, '/dev/null'], { encoding: 'utf8', env: { ...clean, TERM: 'xterm-256color' } })
  t.is(tty.status, 0, tty.stdout)
  t.regex(tty.stdout, /\x1b\[\d+m/, 'stderr is a terminal: coloured')
  // ...and stderr to a file while stdout is the terminal: no colour in the file.
  const file = spawnSync('script', ['-qec', `${shellLine(['run', '--', 'true'])} 2>${dir}/err`, '/dev/null'], { encoding: 'utf8', env: { ...clean, TERM: 'xterm-256color' } })
  t.is(file.status, 0)
  t.notRegex(readFileSync(`${dir}/err`, 'utf8'), /\x1b\[/)
  const noColor = spawnSync('script', ['-qec', shellLine(['run', '--', 'true']), '/dev/null'], { encoding: 'utf8', env: { ...clean, TERM: 'xterm-256color', NO_COLOR: '1' } })
  t.notRegex(noColor.stdout, /\x1b\[\d+m/)
  const forced = await cli(['run', '--', 'true'], { env: { FORCE_COLOR: '1', NO_COLOR: '' } })
  t.regex(forced.stderr, /\x1b\[\d+m/, 'FORCE_COLOR on a pipe')
})

test('Ctrl-C: the first is forwarded and says so; a second stops the command', async (t) => {
  const start = (script: string) => {
    const p = spawn(process.execPath, [CLI, 'run', '--kill-timeout', '1s', '--', 'sh', '-c', script], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let err = ''
    p.stderr.on('data', (d) => (err += d))
    const ready = new Promise<void>((resolve) => p.stderr.on('data', () => /^ready$/m.test(err) && resolve()))
    return { p, ready, err: () => err }
  }
  const a = start('trap "exit 9" INT; echo ready >&2; while :; do sleep 0.05; done')
  await a.ready
  a.p.kill('SIGINT')
  const [codeA] = (await once(a.p, 'exit')) as [number]
  t.is(codeA, 9)
  t.regex(a.err(), /SIGINT forwarded to pid \d+; Ctrl-C again stops it \(SIGTERM, then SIGKILL after 1000 ms\)/)
  const b = start('trap "" INT; echo ready >&2; while :; do sleep 0.05; done')
  await b.ready
  b.p.kill('SIGINT')
  await new Promise((r) => setTimeout(r, 200))
  b.p.kill('SIGINT')
  const [codeB] = (await once(b.p, 'exit')) as [number]
  t.regex(b.err(), /second Ctrl-C: stopping pid \d+/)
  t.is(codeB, 143)
})

test('orphans the command leaves are reaped and reported (child subreaper); none is left behind', async (t) => {
  // The command ends once the sleep has exec'd: one that is still a forked shell when the
  // leftovers are killed would be reported as `sh`.
  const script = '(sleep 0.1; exit 6) & sleep 30 & until read c < /proc/$!/comm && [ "$c" = sleep ]; do :; done; exit 0'
  const r = await cli(['run', '--json', '--', 'sh', '-c', script], { env })
  t.is(r.code, 0)
  const orphans = lines(t, r.stderr).filter((l) => l.type === 'orphan')
  t.true(orphans.some((o) => o.exitCode === 6 || o.signal !== undefined), 'the short one, exited or stopped at shutdown')
  const o = orphans.find((x) => x.comm === 'sleep' && x.signal !== undefined)
  t.truthy(o, `the sleep 30 was stopped and reported: ${JSON.stringify(orphans)}`)
  t.false(existsSync(`/proc/${o?.pid as number}`), 'gone: neither running nor a zombie')
})

test('run prints the span tree', async (t) => {
  const r = await cli(['run', '--', 'sh', '-c', 'exit 0'], { env })
  t.is(r.code, 0)
  for (const name of ['shutdown', 'shutdown.task.kill', 'shutdown.task.delete', 'shutdown.monitor.close', 'shutdown.platform.cleanup', 'shutdown.platform.cleanup.oom_watcher', 'shutdown.platform.cleanup.cgroup_manager']) {
    t.regex(r.stderr, new RegExp(`${name.replace(/\./g, '\\.')}\\s`), name)
  }
})

test('demo runs end to end (OOM part as root); every line validates', async (t) => {
  const r = await cli(['demo', '--json'], { timeoutMs: 60_000, env })
  t.is(r.code, 0, r.stderr)
  const ev = lines(t, r.stdout)
  const shutdowns = ev.filter((l) => l.type === 'shutdown')
  t.is(shutdowns.length, isRoot ? 3 : 2)
  if (isRoot) {
    t.true(ev.some((l) => l.type === 'oom'), 'an OOM event')
    t.is(shutdowns[0]!.signal, 'SIGKILL')
    t.true((shutdowns[0]!.oomKills as number) >= 1)
  }
  t.true(shutdowns.some((s) => s.forced === true), 'the stubborn task was escalated')
  t.true(ev.some((l) => l.type === 'exit' && l.exitCode === 5 && l.source === 'pidfd'), 'the non-child exit')
  t.truthy(ev.find((l) => l.type === 'fds'))
})
