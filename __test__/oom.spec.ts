// A real OOM kill in a real memory cgroup, through Platform (cgroup manager + OOM watcher),
// Task and shutdown.
import test from 'ava'

import { Monitor, Platform, shutdown, SPAN } from '../src/index.js'
import { otel } from './otel.js'

const why = process.getuid?.() !== 0 ? 'needs root to create cgroups' : undefined
if (why) console.log(`oom.spec: SKIPPED: every test: ${why}`)
const rootTest = why ? test.skip : test

rootTest('a memory hog in a 32M cgroup is OOM-killed: OOM span event, exit 137, every step traced', async (t) => {
  const o = otel()
  const tel = { tracerProvider: o.tracerProvider, meterProvider: o.meterProvider }
  const monitor = new Monitor()
  const platform = new Platform(tel)
  const cgroupPath = `lifewatch-test/oom-${process.pid}`
  const task = await platform.spawn('tail', ['/dev/zero'], { monitor, cgroupPath, limits: { memory: '32M', swap: 0 }, stdio: 'ignore', ...tel })
  const exit = await task.wait()
  t.is(exit.signal, 'SIGKILL')
  const result = await shutdown(task, { monitor, platform, ...tel })
  t.deepEqual(result.errors, [])
  t.true(result.oomKills >= 1, 'the OOM kill reached the task before shutdown read it')
  t.false(result.killed, 'already dead: not signalled')
  t.deepEqual(result.cgroupsRemoved, [`/${cgroupPath}`])
  const root = o.span(SPAN.shutdown)
  t.is(root.attributes['process.exit.code'], 137)
  t.is(root.attributes['process.executable.name'], 'tail')
  t.is(root.attributes['lifewatch.cgroup.path'], `/${cgroupPath}`)
  const ev = root.events.find((e) => e.name === 'lifewatch.oom_kill')
  t.truthy(ev)
  t.true((ev?.attributes?.['lifewatch.oom.kills'] as number) >= 1)
  t.is(o.spans().length, Object.values(SPAN).length)
  t.is((await o.points('lifewatch.oom.watchers'))[0]?.value, 0)
  t.true(((await o.points('lifewatch.oom.kills'))[0]?.value as number) >= 1)
  t.true((o.span(SPAN.oomWatcher).attributes['lifewatch.fd.released'] as number) >= 2)
  t.deepEqual(platform.cgroups, [])
})

rootTest('a graceful task in a cgroup: SIGTERM, cgroup removed by Delete, manager has nothing left', async (t) => {
  const o = otel()
  const tel = { tracerProvider: o.tracerProvider, meterProvider: o.meterProvider }
  const monitor = new Monitor()
  const platform = new Platform(tel)
  const cgroupPath = `lifewatch-test/graceful-${process.pid}`
  const task = await platform.spawn('sleep', ['60'], { monitor, cgroupPath, limits: { pids: 8 }, stdio: 'ignore', ...tel })
  const result = await shutdown(task, { monitor, platform, ...tel })
  t.deepEqual(result.errors, [])
  t.true(result.killed)
  t.is(result.exit?.signal, 'SIGTERM')
  t.is(o.span(SPAN.delete).attributes['lifewatch.cgroup.path'], `/${cgroupPath}`)
  t.deepEqual(result.cgroupsRemoved, [`/${cgroupPath}`])
})

rootTest('deleting a platform task ends its OOM watch at once, after a last reading: every kill counted, `removed` without waiting for the kernel', async (t) => {
  const monitor = new Monitor()
  const platform = new Platform()
  const events: string[] = []
  const removed = new Promise<void>((resolve) =>
    platform.onEvent((ev) => {
      events.push(ev.type === 'oom' ? `oom ${ev.kills}` : ev.type)
      if (ev.type === 'removed') resolve()
    }),
  )
  const cgroupPath = `lifewatch-test/oom-delete-${process.pid}`
  const task = await platform.spawn('tail', ['/dev/zero'], { monitor, cgroupPath, limits: { memory: '32M', swap: 0 }, stdio: 'ignore' })
  t.is((await task.wait()).signal, 'SIGKILL')
  t.is(platform.oomWatcher.stats.watches, 1)
  await task.delete()
  // The v1 memory cgroup's own removal notice comes only after an RCU grace period: the watch
  // ended before it, when the task removed the cgroup.
  t.is(platform.oomWatcher.stats.watches, 0, 'the OOM watch ended with the deletion')
  await removed
  t.is(events.at(-1), 'removed', events.join(', '))
  const kills = events.filter((e) => e.startsWith('oom')).reduce((n, e) => n + Number(e.split(' ')[1]), 0)
  t.true(kills >= 1, events.join(', '))
  t.is(task.oomKills, kills)
  monitor.close()
  await platform.close()
})
