import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'

import test from 'ava'

import { node, root } from './helpers.js'

const cli = (args: string[], env: NodeJS.ProcessEnv = {}) => node(['src/cli.ts', ...args], { timeoutMs: 30_000, env: { NO_COLOR: '1', ...env } })
const isRoot = process.getuid?.() === 0
const ndjson = (text: string) => text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>)

test('--help everywhere; bad flags: one line, exit 2', async (t) => {
  for (const args of [['--help'], ['run', '--help'], ['watch', '--help'], ['demo', '--help']]) {
    const r = await cli(args)
    t.is(r.code, 0, args.join(' '))
    t.regex(r.stdout, /Usage: lifewatch/)
  }
  for (const args of [['run', '--bogus'], ['run'], ['run', '--memory', '12X', '--', 'true'], ['run', '--kill-timeout', 'soon', '--', 'true'], ['run', '--pids', '0', '--', 'true'], ['demo', '--nope'], ['nope']]) {
    const r = await cli(args)
    t.is(r.code, 2, args.join(' '))
    t.is(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`)
    t.regex(r.stderr, /^lifewatch: /)
  }
})

test('run exits with the command code, or 128 + signal; a missing command is 127', async (t) => {
  t.is((await cli(['run', '--', 'sh', '-c', 'exit 3'])).code, 3)
  t.is((await cli(['run', '--', 'sh', '-c', 'kill -TERM $$'])).code, 143)
  t.is((await cli(['run', '--', '/nonexistent/command'])).code, 127)
})

test('run --json: spawn, exit and shutdown as NDJSON; lifewatch human lines off', async (t) => {
  const r = await cli(['run', '--json', '--memory', '64M', '--', 'sh', '-c', 'exit 4'])
  t.is(r.code, 4)
  const lines = ndjson(r.stdout)
  const types = lines.map((l) => l.type)
  t.true(types.includes('spawn'))
  t.true(types.includes('exit'))
  t.is(types.at(-1), 'shutdown')
  const exit = lines.find((l) => l.type === 'exit')!
  t.is(exit.exitCode, 4)
  t.is(typeof exit.time, 'number')
  const sd = lines.at(-1)!
  t.is(sd.exitCode, 4)
  t.false(sd.killed)
  t.deepEqual(sd.errors, [])
  if (isRoot) t.regex(String((lines[0] as { cgroup: string }).cgroup), /^\/lifewatch\/run-\d+$/)
})

test('run prints the span tree', async (t) => {
  const r = await cli(['run', '--', 'sh', '-c', 'exit 0'])
  t.is(r.code, 0)
  for (const name of ['shutdown', 'shutdown.task.kill', 'shutdown.task.delete', 'shutdown.monitor.close', 'shutdown.platform.cleanup', 'shutdown.platform.cleanup.oom_watcher', 'shutdown.platform.cleanup.cgroup_manager']) {
    t.regex(r.stderr, new RegExp(`${name.replace(/\./g, '\\.')}\\s`), name)
  }
})

test('orphans the command leaves are reaped and reported (child subreaper); none is left behind', async (t) => {
  const r = await cli(['run', '--json', '--', 'sh', '-c', '(sleep 0.1; exit 6) & (exec sleep 30) & exit 0'])
  t.is(r.code, 0)
  const orphans = ndjson(r.stdout).filter((l) => l.type === 'orphan')
  t.true(orphans.some((o) => o.exitCode === 6 || o.signal !== undefined), 'the short one, exited or stopped at shutdown')
  const o = orphans.find((x) => x.comm === 'sleep' && x.signal !== undefined)
  t.truthy(o, `the sleep 30 was stopped and reported: ${JSON.stringify(orphans)}`)
  const long = o?.pid as number
  t.false(existsSync(`/proc/${long}`), 'gone: neither running nor a zombie')
})

test('SIGINT is forwarded to the command; a second Ctrl-C runs the shutdown', async (t) => {
  const start = (script: string) => {
    const p = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'run', '--kill-timeout', '1s', '--', 'sh', '-c', script], {
      cwd: root,
      env: { ...process.env, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let err = ''
    p.stderr.on('data', (d) => (err += d))
    const spawned = new Promise<void>((resolve) => p.stderr.on('data', () => /^ready$/m.test(err) && resolve()))
    return { p, spawned, err: () => err }
  }
  // One SIGINT: the command's trap decides.
  const a = start('trap "exit 9" INT; echo ready >&2; while :; do sleep 0.05; done')
  await a.spawned
  a.p.kill('SIGINT')
  const [codeA] = (await once(a.p, 'exit')) as [number]
  t.is(codeA, 9)
  // A command that ignores SIGINT: the second Ctrl-C shuts it down (SIGTERM).
  const b = start('trap "" INT; echo ready >&2; while :; do sleep 0.05; done')
  await b.spawned
  b.p.kill('SIGINT')
  await new Promise((r) => setTimeout(r, 200))
  b.p.kill('SIGINT')
  const [codeB] = (await once(b.p, 'exit')) as [number]
  t.regex(b.err(), /second Ctrl-C/)
  t.is(codeB, 143)
})

test('demo runs end to end (OOM part as root)', async (t) => {
  const r = await node(['src/cli.ts', 'demo', '--json'], { timeoutMs: 60_000, env: { NO_COLOR: '1' } })
  t.is(r.code, 0, r.stderr)
  const lines = ndjson(r.stdout)
  const shutdowns = lines.filter((l) => l.type === 'shutdown')
  t.is(shutdowns.length, isRoot ? 3 : 2)
  if (isRoot) {
    t.true(lines.some((l) => l.type === 'oom'), 'an OOM event')
    t.is(shutdowns[0]!.signal, 'SIGKILL')
    t.true((shutdowns[0]!.oomKills as number) >= 1)
  }
  t.true(shutdowns.some((s) => s.forced === true), 'the stubborn task was escalated')
  t.true(lines.some((l) => l.type === 'exit' && l.exitCode === 5 && l.source === 'pidfd'), 'the non-child exit')
  t.truthy(lines.find((l) => l.type === 'fds'))
})
