// In its own file (its own process): the subreaper is process-wide.
import { spawn } from 'node:child_process'
import { once } from 'node:events'

import test from 'ava'

import { Monitor, Subreaper, Task, type OrphanEvent } from '../src/index.js'

test.serial('off unless asked; an orphan is reparented to us, reaped and reported; node children are left to node', async (t) => {
  t.false(Subreaper.active, 'never switched on silently')
  const s = Subreaper.enable()
  t.true(Subreaper.active)
  const orphans: OrphanEvent[] = []
  s.on('orphan', (ev) => orphans.push(ev))
  // A node child that exits: libuv must still get its status.
  const child = spawn('sh', ['-c', 'exit 4'], { stdio: 'ignore' })
  // A shell that leaves a background grandchild behind and exits: the grandchild is orphaned.
  const sh = spawn('sh', ['-c', '(sleep 0.3; exit 7) & echo $!'], { stdio: ['ignore', 'pipe', 'ignore'] })
  let out = ''
  sh.stdout.on('data', (d) => (out += d))
  const [code] = (await once(child, 'exit')) as [number]
  t.is(code, 4, "node's own child keeps its status")
  await once(sh, 'exit')
  const orphanPid = Number(out.trim())
  const deadline = Date.now() + 5000
  while (!orphans.some((o) => o.pid === orphanPid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
  const ev = orphans.find((o) => o.pid === orphanPid)
  t.truthy(ev, `orphan ${orphanPid} reported`)
  t.is(ev?.exitCode, 7)
  t.is(ev?.type, 'orphan')
  t.false(orphans.some((o) => o.pid === child.pid || o.pid === sh.pid), 'node children are not taken')
  s.disable()
  t.false(Subreaper.active)
})

test.serial('Task.spawn({ subreaper: true }) collects the orphans of the task', async (t) => {
  const monitor = new Monitor()
  const task = await Task.spawn('sh', ['-c', '(sleep 0.2; exit 9) & exit 0'], { monitor, stdio: 'ignore', subreaper: true })
  t.true(Subreaper.active)
  await task.wait()
  const deadline = Date.now() + 5000
  while (task.orphans.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
  t.is(task.orphans[0]?.exitCode, 9)
  await task.delete()
  t.false(Subreaper.active, 'released with the task')
  monitor.close()
})

test.serial('an exclude that is not a function is ERR_INVALID_ARGUMENT and enables nothing', (t) => {
  for (const exclude of [5, 'x', [], {}]) {
    t.throws(() => Subreaper.enable({ exclude: exclude as never }), { code: 'ERR_INVALID_ARGUMENT' }, JSON.stringify(exclude))
  }
  t.false(Subreaper.active)
})

test.serial('settle is 0..60000 ms: longer, Infinity, negative or NaN is ERR_INVALID_ARGUMENT and enables nothing', (t) => {
  for (const settle of [60_001, 2 ** 31, Infinity, -1, Number.NaN, '50' as unknown as number]) {
    t.throws(() => Subreaper.enable({ settle }), { code: 'ERR_INVALID_ARGUMENT' }, String(settle))
  }
  const s = Subreaper.enable({ settle: 60_000 })
  t.true(s.enabled)
  s.disable()
  t.false(s.enabled, 'one disable for the one enable that succeeded: the refused ones counted nothing')
})
