import test from 'ava'
import { spawn } from 'node:child_process'

import { nonChild, reaped, root, run } from './helpers.js'

// The built CLI, as users run it (npm test builds dist/ first); tsx start-up is too slow
// for the short-lived processes these tests watch.
const cli = (args: string[]) => run(process.execPath, [`${root}dist/cli.js`, ...args])

test('watch --json prints one NDJSON line per exit and returns 0 when all exited', async (t) => {
  const a = spawn('sh', ['-c', 'sleep 1.5; exit 3'], { stdio: 'ignore' })
  const b = await nonChild('sleep 1.7; kill -9 $$')
  const r = await cli(['watch', '--json', '--pid', String(a.pid), '--pid', String(b.pid)])
  t.is(r.code, 0, r.stderr)
  const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l))
  t.is(lines.length, 2)
  t.like(lines.find((l) => l.pid === a.pid), { type: 'exit', exitCode: 3 })
  t.like(lines.find((l) => l.pid === b.pid), { type: 'exit', signal: 'SIGKILL' })
  t.true(lines.every((l) => Number.isSafeInteger(l.time) || typeof l.time === 'number'), 'time is an integer')
  t.regex(r.stdout, /"time":\d+}/)
  await Promise.all([reaped(a), reaped(b.parent)])
})

test('watch in human mode', async (t) => {
  const a = spawn('sh', ['-c', 'sleep 1.5; exit 0'], { stdio: 'ignore' })
  const r = await cli(['watch', '--pid', String(a.pid)])
  t.is(r.code, 0, r.stderr)
  t.regex(r.stdout, new RegExp(`exit +pid ${a.pid} exited with code 0 via (waitid|pidfd)`))
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

test('demo shows real exits of a child and non-children, including an escalated kill', async (t) => {
  const r = await cli(['demo'])
  t.is(r.code, 0, r.stderr)
  t.regex(r.stdout, /exited with code 3 via waitid/)
  t.regex(r.stdout, /exited with code 5 via pidfd/)
  t.regex(r.stdout, /killed by SIGTERM via pidfd/)
  t.regex(r.stdout, /killed by SIGKILL/)
  t.regex(r.stdout, /escalated to SIGKILL: true/)
  t.regex(r.stdout, /epoll 0 in use/)
})
