// `lifewatch` as a whole and `lifewatch watch`: usage, --version, completion, the man page,
// the README against --help, and watch's events and exit statuses, on real processes.
import test from 'ava'
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'

import { lines } from './cli-lines.js'
import { CLI, cli, reaped, root } from './helpers.js'

const CLI_DIR = `${root}packages/lifewatch-cli`
const COMMANDS = ['run', 'watch', 'top', 'demo', 'completion', 'man']

/** Every long option `lifewatch <command> --help` lists. */
async function helpOptions(command: string): Promise<string[]> {
  const r = await cli([command, '--help'])
  return [...new Set([...r.stdout.matchAll(/^\s+(?:-\w, )?(--[a-z-]+)/gm)].map((m) => m[1]!))]
}

/**
 * Runs `lifewatch watch` on processes that exit only once the CLI says its watches are in
 * place (they wait for a gate file), so a slow start can never miss them.
 */
async function watchGated(flags: string[], scripts: string[], as: '--pid' | '--tree' = '--pid') {
  const gate = join(mkdtempSync(join(tmpdir(), 'lw-gate-')), 'open')
  // Bounded (30 s): a run killed half-way leaves no process waiting forever.
  const wait = `i=0; while [ ! -e ${gate} ] && [ $i -lt 1500 ]; do sleep 0.02; i=$((i+1)); done`
  const children = scripts.map((s) => spawn('sh', ['-c', `${wait}; ${s}`], { stdio: 'ignore' }))
  const p = spawn(process.execPath, [CLI, 'watch', ...flags, ...children.flatMap((c) => [as, String(c.pid)])], { env: { ...process.env, NO_COLOR: '1' } })
  let stdout = ''
  let stderr = ''
  p.stdout.on('data', (d) => (stdout += d))
  p.stderr.on('data', (d) => {
    stderr += d
    if (/watching \d+ process/.test(stderr) && !existsSync(gate)) writeFileSync(gate, '')
  })
  const [code] = (await once(p, 'close')) as [number]
  await Promise.all(children.map(reaped))
  rmSync(dirname(gate), { recursive: true, force: true })
  return { code, stdout, stderr, pids: children.map((c) => c.pid!) }
}

test('bare lifewatch: short usage on stderr, 125; --version; --help lists every command', async (t) => {
  const bare = await cli([])
  t.is(bare.code, 125)
  t.regex(bare.stderr, /^Usage: lifewatch <command>/)
  t.is(bare.stdout, '')
  const v = await cli(['--version'])
  t.is(v.code, 0)
  t.is(v.stdout.trim(), JSON.parse(readFileSync(`${CLI_DIR}/package.json`, 'utf8')).version)
  const help = await cli(['--help'])
  t.is(help.code, 0)
  for (const c of COMMANDS) t.regex(help.stdout, new RegExp(`^  ${c}\\b`, 'm'), c)
  for (const c of COMMANDS) {
    const r = await cli([c, '--help'])
    t.is(r.code, 0, c)
    t.regex(r.stdout, new RegExp(`^Usage: lifewatch ${c}`), c)
  }
})

test('watch --json: one valid NDJSON line per exit, 0 when all exited', async (t) => {
  const r = await watchGated(['--json'], ['exit 3', 'kill -9 $$'])
  t.is(r.code, 0, r.stderr)
  const got = lines(t, r.stdout)
  t.is(got.length, 2)
  t.like(got.find((l) => l.pid === r.pids[0]), { type: 'exit', exitCode: 3 })
  t.like(got.find((l) => l.pid === r.pids[1]), { type: 'exit', signal: 'SIGKILL' })
})

test('watch in human mode', async (t) => {
  const r = await watchGated([], ['exit 0'])
  t.is(r.code, 0, r.stderr)
  t.regex(r.stdout, new RegExp(`exit +pid ${r.pids[0]} exited with code 0 via (waitid|pidfd)`))
})

test('watch --tree --forks --json: the root and the children it forks after the watch, each exit with its ppid; 0 when the last is gone', async (t) => {
  const r = await watchGated(['--json', '--forks'], ['(exit 3) & (sleep 0.1; exit 4) & wait; exit 5'], '--tree')
  t.is(r.code, 0, r.stderr)
  t.regex(r.stderr, /watching 0 processes and 0 cgroups, 1 tree/)
  const got = lines(t, r.stdout)
  const forks = got.filter((l) => l.type === 'fork')
  const exits = got.filter((l) => l.type === 'exit')
  // The gate's sleeps are forked too (one may be running when the watch starts): at least the
  // two subshells; every process forked exited, with the parent it was forked by.
  t.true(forks.length >= 2)
  for (const f of forks) t.is(exits.find((l) => l.pid === f.pid)?.ppid, f.ppid, `fork of ${f.pid}`)
  t.like(exits.at(-1), { pid: r.pids[0], exitCode: 5, remaining: 0, source: 'connector' })
  t.true(exits.some((l) => l.exitCode === 3) && exits.some((l) => l.exitCode === 4))
})

test('watch --host: the exit of a process nobody named, human and NDJSON, until SIGINT (130)', async (t) => {
  for (const json of [false, true]) {
    const p = spawn(process.execPath, [CLI, 'watch', '--host', ...(json ? ['--json'] : [])], { env: { ...process.env, NO_COLOR: '1' } })
    let out = ''
    let err = ''
    p.stdout.on('data', (d) => (out += d))
    await new Promise<void>((resolve) => p.stderr.on('data', (d) => /watching/.test((err += d)) && resolve()))
    t.regex(err, /the host's processes/)
    // Alive for a moment: a process's name is read from /proc at its exec, which a process
    // that is already gone by then no longer has (its `comm` is then left out: docs/host.md).
    const child = spawn('sh', ['-c', 'sleep 0.2; exit 7'], { stdio: 'ignore' })
    await reaped(child)
    const line = json ? `"pid":${child.pid},` : `pid ${child.pid} (sh) ppid ${process.pid}`
    while (!out.includes(line)) await once(p.stdout, 'data')
    p.kill('SIGINT')
    const [code] = (await once(p, 'close')) as [number]
    t.is(code, 130)
    if (json) {
      // The stream was cut by the signal: only whole lines are checked.
      const got = lines(t, out.slice(0, out.lastIndexOf('\n') + 1))
      t.like(got.find((l) => l.pid === child.pid), { type: 'exit', exitCode: 7, ppid: process.pid, comm: 'sh', source: 'connector' })
    } else {
      t.regex(out, new RegExp(`exit +pid ${child.pid} \\(sh\\) ppid ${process.pid} cgroup \\S+ exited with code 7 via connector`))
    }
  }
})

const noUnpriv = process.getuid?.() !== 0 || spawnSync('setpriv', ['--version']).status !== 0 ? 'needs root and setpriv(1)' : undefined
if (noUnpriv) console.log(`cli.spec: SKIPPED: watch --oom-kills unprivileged: ${noUnpriv}`)
;(noUnpriv ? test.skip : test)('watch --oom-kills without CAP_SYSLOG: ERR_PERMISSION naming it, 125', async (t) => {
  if (readFileSync('/proc/sys/kernel/dmesg_restrict', 'utf8').trim() !== '1') return t.pass('kernel.dmesg_restrict is 0: anyone may read the log')
  const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, CLI, 'watch', '--oom-kills'], { encoding: 'utf8', timeout: 20_000 })
  t.is(r.status, 125)
  t.regex(r.stderr, /OOM kills: ERR_PERMISSION: .*CAP_SYSLOG/)
})

test('watch --forks alone is a usage error', async (t) => {
  const r = await cli(['watch', '--pid', String(process.pid), '--forks'])
  t.is(r.code, 125)
  t.regex(r.stderr, /--forks and --execs need --host or --tree/)
})

test('watch exits 130 on SIGINT and 143 on SIGTERM, and its help says so', async (t) => {
  const help = await cli(['watch', '--help'])
  t.regex(help.stdout.replace(/\s+/g, ' '), /130 on SIGINT \(Ctrl-C\), 143 on SIGTERM/)
  for (const [sig, status] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' })
    const p = spawn(process.execPath, [CLI, 'watch', '--pid', String(sleeper.pid)], { stdio: ['ignore', 'pipe', 'pipe'] })
    let err = ''
    await new Promise<void>((resolve) => p.stderr.on('data', (d) => /watching/.test((err += d)) && resolve()))
    p.kill(sig)
    const [code] = (await once(p, 'close')) as [number]
    t.is(code, status, sig)
    sleeper.kill()
    await reaped(sleeper)
  }
})

test('watch of a PID that does not exist says so and exits 125', async (t) => {
  const gone = spawn('true')
  await reaped(gone)
  const r = await cli(['watch', '--pid', String(gone.pid)])
  t.is(r.code, 125)
  t.regex(r.stderr, /ERR_NO_SUCH_PROCESS/)
})

test('stdout closed: --help, watch and demo end quietly with 141, no stack, nothing left behind', async (t) => {
  const r = spawnSync('sh', ['-c', `${process.execPath} ${CLI} --help | head -c 1 >/dev/null`], { encoding: 'utf8' })
  t.is(r.stderr, '', 'no EPIPE error')
  // A process that exits once the watch is in place (a gate file), whatever the load.
  const gate = join(mkdtempSync(join(tmpdir(), 'lw-gate-')), 'open')
  t.teardown(() => rmSync(dirname(gate), { recursive: true, force: true }))
  const sleeper = spawn('sh', ['-c', `i=0; while [ ! -e ${gate} ] && [ $i -lt 1500 ]; do sleep 0.02; i=$((i+1)); done`], { stdio: 'ignore' })
  // The reader is gone before the first line: the exit line's write fails.
  const p = spawn(process.execPath, [CLI, 'watch', '--pid', String(sleeper.pid)], { stdio: ['ignore', 'pipe', 'pipe'] })
  p.stdout.destroy()
  let err = ''
  p.stderr.on('data', (d) => {
    err += d
    if (/watching/.test(err)) writeFileSync(gate, '')
  })
  const [code] = (await once(p, 'close')) as [number]
  await reaped(sleeper)
  t.is(code, 141, err)
  t.notRegex(err, /^\s+at /m)
  // demo runs on to clean up what it started (its cgroups, its stubborn task), then says 141.
  const demo = spawn(process.execPath, [CLI, 'demo'], { stdio: ['ignore', 'pipe', 'pipe'] })
  await once(demo.stdout, 'data')
  demo.stdout.destroy()
  const [demoCode] = (await once(demo, 'close')) as [number]
  t.is(demoCode, 141)
  const parent = '/sys/fs/cgroup/memory/lifewatch'
  const left = (existsSync(parent) ? readdirSync(parent, { withFileTypes: true }) : []).filter((e) => e.isDirectory() && e.name.endsWith(`-${demo.pid}`))
  t.deepEqual(left.map((e) => e.name), [], 'no demo cgroup left behind')
})

test('completion scripts name every command and option of --help; bash completes them for real', async (t) => {
  for (const shell of ['bash', 'zsh', 'fish']) {
    const r = await cli(['completion', shell])
    t.is(r.code, 0, shell)
    for (const c of COMMANDS) t.true(r.stdout.includes(c), `${shell}: ${c}`)
    for (const c of COMMANDS) for (const o of await helpOptions(c)) if (o !== '--help') t.true(r.stdout.includes(shell === 'fish' ? `-l ${o.slice(2)}` : o), `${shell}: ${c} ${o}`)
  }
  const script = (await cli(['completion', 'bash'])).stdout
  const complete = (words: string[]) => {
    const r = spawnSync('bash', ['-c', `${script}\nCOMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _lifewatch; printf '%s\\n' "\${COMPREPLY[@]}"`], { encoding: 'utf8' })
    t.is(r.status, 0, r.stderr)
    return r.stdout.split('\n').filter(Boolean)
  }
  t.deepEqual(complete(['lifewatch', 'w']), ['watch'])
  t.true(complete(['lifewatch', 'run', '--me']).includes('--memory'))
  t.true(complete(['lifewatch', 'run', '--stop-signal', 'IN']).includes('INT'))
  t.deepEqual(complete(['lifewatch', 'completion', 'fi']), ['fish'])
  for (const [shell, check] of [['zsh', ['-n']], ['fish', ['--no-execute']]] as const) {
    if (spawnSync(shell, ['--version']).status !== 0) {
      t.log(`${shell} not installed: its script was checked for content only`)
      continue
    }
    const r = spawnSync(shell, [...check], { input: (await cli(['completion', shell])).stdout, encoding: 'utf8' })
    t.is(r.status, 0, `${shell} syntax: ${r.stderr}`)
  }
})

test('the man page and the README show every command and option --help shows', async (t) => {
  const page = readFileSync(`${CLI_DIR}/man/lifewatch.1`, 'utf8')
  t.is(page, (await cli(['man'])).stdout, 'the installed page is the one the definitions make')
  const rendered = spawnSync('man', ['-P', 'cat', '-l', '-'], { input: page, encoding: 'utf8', env: { ...process.env, MANWIDTH: '200' } })
  t.is(rendered.status, 0, rendered.stderr)
  const text = rendered.stdout.replace(/‐\n\s*/g, '').replace(/\u2010/g, '-')
  const readme = readFileSync(`${CLI_DIR}/README.md`, 'utf8')
  for (const c of COMMANDS) {
    t.regex(text, new RegExp(`lifewatch ${c}\\b`), `man: ${c}`)
    t.regex(readme, new RegExp(`lifewatch ${c}\\b`), `README: ${c}`)
    for (const o of await helpOptions(c)) {
      if (o === '--help') continue
      t.true(text.includes(o), `man: ${c} ${o}`)
      t.true(readme.includes(o), `README: ${c} ${o}`)
    }
  }
})
