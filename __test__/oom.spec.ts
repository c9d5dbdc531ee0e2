// A real OOM kill in a real (v1) memory cgroup, through Platform + Task + shutdown.
import test from 'ava'

import { Monitor, Platform, shutdown, SPAN, Task } from '../src/index.js'
import { handmadeCgroup, unavailable } from './handmade-cgroup.js'
import { otel } from './otel.js'

const why = unavailable()

test('a memory hog in a 32M cgroup is OOM-killed: OOM span event, exit 137, every step traced', async (t) => {
  if (why) return t.pass(`skipped: ${why}`)
  const o = otel()
  const tel = { tracerProvider: o.tracerProvider, meterProvider: o.meterProvider }
  const monitor = new Monitor()
  const platform = new Platform(tel)
  const cgroup = handmadeCgroup(`lifewatch-test-oom-${process.pid}`, 32 << 20)
  platform.adopt(cgroup)
  const task = await Task.spawn('tail', ['/dev/zero'], { monitor, cgroup, ...tel })
  platform.watchOom(task)
  const exit = await task.wait()
  t.is(exit.signal, 'SIGKILL')
  const result = await shutdown(task, { monitor, platform, ...tel })
  t.true(result.oomKills >= 1, 'the OOM kill reached the task before shutdown read it')
  t.false(result.killed, 'already dead: not signalled')
  t.deepEqual(result.cgroupsRemoved, [cgroup.path])
  const root = o.span(SPAN.shutdown)
  t.is(root.attributes['process.exit.code'], 137)
  t.is(root.attributes['lifewatch.cgroup.path'], cgroup.path)
  const ev = root.events.find((e) => e.name === 'lifewatch.oom_kill')
  t.truthy(ev)
  t.true((ev?.attributes?.['lifewatch.oom.kills'] as number) >= 1)
  t.is(o.spans().length, Object.values(SPAN).length)
  t.is((await o.points('lifewatch.oom.watchers'))[0]?.value, 0)
  t.true(((await o.points('lifewatch.oom.kills'))[0]?.value as number) >= 1)
  t.true((o.span(SPAN.oomWatcher).attributes['lifewatch.fd.released'] as number) >= 2, 'epoll + eventfd + control fds')
})
