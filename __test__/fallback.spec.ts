import test from 'ava'
import { spawn } from 'node:child_process'

import { Monitor } from '../src/index.js'
import { fixture, lateReaper, node, reaped } from './helpers.js'

test('forced fallback: exits are detected by polling and labelled; a zombie yields its status', async (t) => {
  const monitor = new Monitor({ forceFallback: true })
  t.false(monitor.usesPidfd)
  // Node reaps its own children at once, so without pidfd their status is gone by the next poll.
  const child = spawn('sh', ['-c', 'sleep 0.2; exit 6'])
  const a = monitor.watchPid(child.pid!)
  // A parent that reaps late: while its child is a zombie, /proc still has the status.
  const { pid, parent } = await lateReaper(7)
  const b = monitor.watchPid(pid)
  const ea = await a.wait()
  t.like(ea, { pid: child.pid, source: 'fallback' })
  // Node may have reaped it before the poll: its status is then unknown, and the event has no
  // status fields at all rather than empty ones.
  t.log(ea.exitCode === undefined ? 'status unknown: Node reaped it first' : 'status read before Node reaped it')
  if (ea.exitCode === undefined) t.deepEqual(Object.keys(ea).sort(), ['pid', 'source', 'time', 'type', 'watch'])
  else t.is(ea.exitCode, 6)
  t.like(await b.wait(), { pid, exitCode: 7, source: 'fallback' })
  monitor.close()
  await Promise.all([reaped(child), reaped(parent)])
})

test('forced fallback: kill escalation still works and ends on a confirmed exit', async (t) => {
  const monitor = new Monitor({ forceFallback: true })
  const child = spawn('sh', ['-c', 'trap "" TERM; echo ready; while :; do sleep 1; done'], { stdio: ['ignore', 'pipe', 'ignore'] })
  await new Promise((r) => child.stdout.once('data', r))
  const { exit, forced } = await monitor.kill(child.pid!, { timeout: 200 })
  t.true(forced)
  t.like(exit, { pid: child.pid, source: 'fallback' })
  monitor.close()
  await reaped(child)
})

test('LIFEWATCH_FORCE_FALLBACK=1 switches the default', async (t) => {
  const r = await node([fixture('mode.ts')], { env: { LIFEWATCH_FORCE_FALLBACK: '1' } })
  t.is(r.stdout.trim(), 'fallback', r.stderr)
  const d = await node([fixture('mode.ts')], { env: { LIFEWATCH_FORCE_FALLBACK: '' } })
  t.is(d.stdout.trim(), 'pidfd', d.stderr)
})
