import test from 'ava'
import { spawn } from 'node:child_process'

import { once } from 'node:events'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'

import { reaped, root, run } from './helpers.js'

// The built CLI, as users run it (npm test builds dist/ first); tsx start-up is too slow
// for the short-lived processes these tests watch.
const cli = (args: string[]) => run(process.execPath, [`${root}dist/cli.js`, ...args], { timeoutMs: 60_000 })

/**
 * Runs `lifewatch watch` on processes that exit only once the CLI says its watches are in
 * place (they wait for a gate file), so a slow start can never miss them.
 */
async function watchGated(flags: string[], scripts: string[]) {
  const gate = join(mkdtempSync(join(tmpdir(), 'lw-gate-')), 'open')
  const wait = `while [ ! -e ${gate} ]; do sleep 0.02; done`
  const children = scripts.map((s) => spawn('sh', ['-c', `${wait}; ${s}`], { stdio: 'ignore' }))
  const p = spawn(process.execPath, [`${root}dist/cli.js`, 'watch', ...flags, ...children.flatMap((c) => ['--pid', String(c.pid)])])
  let stdout = ''
  let stderr = ''
  p.stdout.on('data', (d) => (stdout += d))
  p.stderr.on('data', (d) => {
    stderr += d
    if (/watching \d+ process/.test(stderr)) writeFileSync(gate, '')
  })
  const [code] = (await once(p, 'close')) as [number]
  await Promise.all(children.map(reaped))
  rmSync(dirname(gate), { recursive: true, force: true })
  return { code, stdout, stderr, pids: children.map((c) => c.pid!) }
}

test('watch --json prints one NDJSON line per exit and returns 0 when all exited', async (t) => {
  const r = await watchGated(['--json'], ['exit 3', 'kill -9 $$'])
  t.is(r.code, 0, r.stderr)
  const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l))
  t.is(lines.length, 2)
  t.like(lines.find((l) => l.pid === r.pids[0]), { type: 'exit', exitCode: 3 })
  t.like(lines.find((l) => l.pid === r.pids[1]), { type: 'exit', signal: 'SIGKILL' })
  t.regex(r.stdout, /"time":\d+}/, 'time is an exact integer')
})

test('watch in human mode', async (t) => {
  const r = await watchGated([], ['exit 0'])
  t.is(r.code, 0, r.stderr)
  t.regex(r.stdout, new RegExp(`exit +pid ${r.pids[0]} exited with code 0 via (waitid|pidfd)`))
})

test('bad command lines: one line on stderr, exit code 2', async (t) => {
  for (const args of [['watch'], ['watch', '--pid', 'abc'], ['watch', '--pid', '0'], ['watch', '--bogus'], ['nope'], ['watch', '--pid']]) {
    const r = await cli(args)
    t.is(r.code, 2, `${args.join(' ')}: ${r.stderr}`)
    t.is(r.stderr.trim().split('\n').length, 1, `${args.join(' ')}: ${r.stderr}`)
    t.regex(r.stderr, /^lifewatch: /)
  }
})

test('watch of a PID that does not exist says so and exits 1', async (t) => {
  const gone = spawn('true')
  await reaped(gone)
  const r = await cli(['watch', '--pid', String(gone.pid)])
  t.is(r.code, 1)
  t.regex(r.stderr, /ERR_NO_SUCH_PROCESS/)
})

test('--help for every command', async (t) => {
  for (const args of [['--help'], ['watch', '--help'], ['demo', '--help']]) {
    const r = await cli(args)
    t.is(r.code, 0, r.stderr)
    t.regex(r.stdout, /Usage: lifewatch/)
  }
})
