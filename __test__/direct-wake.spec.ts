// directWake: Node's loop watches the monitor's ready fd and delivers in the loop turn that
// saw it; the reactor thread delivers what JS leaves (busy) after a short grace period.
import test from 'ava'
import { spawn } from 'node:child_process'

import { Monitor, monotonicTime } from '../src/index.js'
import { fixture, node, reaped, sh } from './helpers.js'

test('directWake is on by default, off on request, and off once closed', (t) => {
  const on = new Monitor()
  const off = new Monitor({ directWake: false })
  t.true(on.directWake)
  t.false(off.directWake)
  on.close()
  off.close()
  t.false(on.directWake)
})

for (const directWake of [true, false]) {
  test(`directWake ${directWake}: 50 exits, each once with its code`, async (t) => {
    const monitor = new Monitor({ directWake })
    const children = Array.from({ length: 50 }, (_, i) => sh(`sleep 0.0${i % 10}; exit ${i + 1}`))
    const watches = children.map((c) => monitor.watchPid(c.pid!))
    const events = await Promise.all(watches.map((w) => w.wait()))
    t.deepEqual(events.map((e) => e.exitCode), children.map((_, i) => i + 1))
    t.is(monitor.stats.watches, 0)
    monitor.close()
    await Promise.all(children.map(reaped))
  })
}

test.serial('an exit while JS is blocked comes through the reactor, stamped when it happened', async (t) => {
  const monitor = new Monitor()
  const child = spawn('sleep', ['30'], { stdio: 'ignore' })
  const w = monitor.watchPid(child.pid!)
  const arrived = w.wait()
  child.kill('SIGKILL')
  // Block the JS thread well past the exit and the reactor's grace period (5 ms).
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 600)
  const unblocked = monotonicTime()
  const ev = await arrived
  t.is(ev.signal, 'SIGKILL')
  const early = Number(unblocked - ev.time) / 1e6
  t.true(early > 100, `event.time ${early.toFixed(1)} ms before JS was free again (the kill was 600 ms before)`)
  monitor.close()
  await reaped(child)
})

test('process.exit inside a delivery, monitors open: a clean teardown', async (t) => {
  const r = await node([fixture('exit-in-delivery.ts')])
  t.is(r.code, 0, r.stderr)
  t.is(r.signal, null)
  t.regex(r.stdout, /exit code 9, directWake true/)
  t.is(r.stderr.trim(), '')
})
