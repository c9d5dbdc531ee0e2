import test from 'ava'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { Worker } from 'node:worker_threads'

import { fdStats } from '../src/index.js'
import { fixture, anonFds, reaped } from './helpers.js'

const start = (pid: number) => new Worker(fixture('boot.mjs'), { workerData: { pid, script: fixture('worker.ts') } })

test.serial('a worker thread watches a process to its exit', async (t) => {
  const child = spawn('sh', ['-c', 'sleep 2; exit 9'], { stdio: 'ignore' })
  const worker = start(child.pid!)
  const msgs: Array<{ type: string; ev?: { exitCode?: number; pid: number } }> = []
  worker.on('message', (m) => msgs.push(m))
  await once(worker, 'exit')
  t.like(msgs.find((m) => m.type === 'event')?.ev, { exitCode: 9, pid: child.pid })
  await reaped(child)
})

test.serial('terminating a worker mid-iteration releases its monitor (env cleanup hook)', async (t) => {
  const child = spawn('sleep', ['30'], { stdio: 'ignore' })
  const fdsBefore = anonFds().length
  const before = fdStats()
  const worker = start(child.pid!)
  const [first] = (await once(worker, 'message')) as [{ type: string }]
  t.is(first.type, 'watching')
  t.is(fdStats().pidfd.inUse, before.pidfd.inUse + 1, 'the worker holds a pidfd')
  await worker.terminate()
  const after = fdStats()
  t.is(after.pidfd.inUse, before.pidfd.inUse)
  t.is(after.epoll.inUse, before.epoll.inUse)
  t.true(after.epoll.leakPrevented > before.epoll.leakPrevented, 'released by the cleanup hook, counted as a prevented leak')
  t.is(anonFds().length, fdsBefore)
  child.kill()
  await reaped(child)
})
