// Cgroup resource metrics as OpenTelemetry observable instruments, read back through an
// in-memory metric reader (a real cgroup with limits, a process using memory in it, a real OOM
// kill counted; close() stops the reading) and over OTLP/HTTP to a local collector.
import test from 'ava'

import { Cgroup, CGROUP_METRIC, Monitor, observeCgroups } from '../src/index.js'
import { otel } from './otel.js'
import { collector } from './otlp-receiver.js'

const why = process.getuid?.() !== 0 ? 'needs root to create cgroups' : undefined
if (why) console.log(`cgroup-metrics.spec: SKIPPED: every test: ${why}`)
const rootTest = why ? test.skip : test.serial

rootTest('memory, limits, pids and CPU of a live cgroup; its OOM kills counted; nothing after close', async (t) => {
  const o = otel()
  const monitor = new Monitor()
  const cg = Cgroup.create(`lifewatch-test/metrics-${process.pid}`, { memory: '24M', swap: 0, pids: 50 })
  t.teardown(() => cg.delete({ kill: true }))
  const watch = monitor.watchCgroup(cg.path, { oom: true })
  // All three name the same cgroup: it is reported once.
  let reads = 0
  const counted = () => (reads++, [cg.path])
  const observed = observeCgroups([cg.path, watch, counted], { meterProvider: o.meterProvider })
  const at = { 'lifewatch.cgroup.path': cg.path }
  const one = async (name: string, attrs: Record<string, unknown> = {}) => {
    const p = await o.points(name, { ...at, ...attrs })
    t.is(p.length, 1, `${name} ${JSON.stringify(attrs)}: one point`)
    return p[0]?.value as number
  }
  // A shell holding 8 MiB in a variable.
  const holder = cg.spawn('sh', ['-c', 'x=$(head -c 8000000 /dev/zero | tr "\\0" a); echo; sleep 30'], { monitor, stdio: ['ignore', 'ignore', 'ignore'] })
  const deadline = Date.now() + 10_000
  while ((await one(CGROUP_METRIC.memoryUsage)) < 8_000_000 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
  const usage = await one(CGROUP_METRIC.memoryUsage)
  const stats = cg.stats()
  t.true(usage >= 8_000_000, `memory usage ${usage}`)
  t.is(await one(CGROUP_METRIC.memoryLimit), 24 << 20)
  t.is(await one(CGROUP_METRIC.pidsLimit), 50)
  t.is(await one(CGROUP_METRIC.pidsUsage), stats.pidsCurrent ?? -1)
  t.true((await one(CGROUP_METRIC.memoryPeak)) >= usage)
  const user = await one(CGROUP_METRIC.cpuTime, { 'cpu.mode': 'user' })
  const system = await one(CGROUP_METRIC.cpuTime, { 'cpu.mode': 'system' })
  t.true(user + system > 0, `cpu ${user} + ${system} s`)
  t.is(await one(CGROUP_METRIC.oomKills), 0)
  const m = await o.metrics()
  t.is(m.get(CGROUP_METRIC.memoryUsage)?.descriptor.unit, 'By')
  t.is(m.get(CGROUP_METRIC.cpuTime)?.descriptor.unit, 's')
  monitor.signal(holder, 'SIGKILL')
  await holder.wait()

  // A real OOM kill: the counter says so at the next collection.
  const hog = cg.spawn('tail', ['/dev/zero'], { monitor, stdio: 'ignore' })
  const exit = await hog.wait()
  t.is(exit.signal, 'SIGKILL')
  t.true((await one(CGROUP_METRIC.oomKills)) >= 1)
  // v1 counts kills only (memory.oom_control); v2 also the times the limit was hit.
  if ('oom' in cg.stats().memoryEvents) t.true((await one(CGROUP_METRIC.oomEvents)) >= 1)
  else t.deepEqual(await o.points(CGROUP_METRIC.oomEvents, at), [])

  const before = reads
  await o.metrics()
  t.is(reads, before + 1, 'read once per collection')
  observed.close()
  t.false(observed.active)
  await o.metrics()
  t.is(reads, before + 1, 'not read after close')
  monitor.close()
})

test('bad sources are ERR_INVALID_ARGUMENT; a cgroup that cannot be read is left out', async (t) => {
  t.throws(() => observeCgroups(42 as never), { code: 'ERR_INVALID_ARGUMENT' })
  t.throws(() => observeCgroups(['/', {} as never]), { code: 'ERR_INVALID_ARGUMENT' })
  const o = otel()
  const m = observeCgroups(() => ['/lifewatch-no-such-cgroup'], { meterProvider: o.meterProvider })
  t.deepEqual(await o.points(CGROUP_METRIC.memoryUsage), [])
  m.close()
})

rootTest('over OTLP/HTTP to a collector: the cgroup metrics arrive with their cgroup path', async (t) => {
  const { OTLPMetricExporter } = await import('@opentelemetry/exporter-metrics-otlp-http')
  const { MeterProvider, PeriodicExportingMetricReader } = await import('@opentelemetry/sdk-metrics')
  const endpoint = await collector()
  t.teardown(() => endpoint.close())
  const reader = new PeriodicExportingMetricReader({ exporter: new OTLPMetricExporter({ url: `${endpoint.url}/v1/metrics` }), exportIntervalMillis: 3_600_000 })
  const meterProvider = new MeterProvider({ readers: [reader] })
  const cg = Cgroup.create(`lifewatch-test/metrics-otlp-${process.pid}`, { memory: '32M' })
  t.teardown(() => cg.delete({ kill: true }))
  const observed = observeCgroups(cg.path, { meterProvider })
  await reader.forceFlush()
  observed.close()
  await meterProvider.shutdown()
  const posts = endpoint.received.filter((r) => r.path === '/v1/metrics')
  t.true(posts.length >= 1, 'a metrics export arrived')
  const body = JSON.parse(posts[0]!.body.toString()) as {
    resourceMetrics: Array<{ scopeMetrics: Array<{ scope: { name: string }; metrics: Array<{ name: string; sum?: { dataPoints: Array<{ attributes: Array<{ key: string; value: { stringValue?: string } }>; asInt?: string | number }> } }> }> }>
  }
  const metrics = body.resourceMetrics.flatMap((rm) => rm.scopeMetrics).filter((sm) => sm.scope.name === 'lifewatch').flatMap((sm) => sm.metrics)
  const limit = metrics.find((m) => m.name === CGROUP_METRIC.memoryLimit)
  const point = limit?.sum?.dataPoints[0]
  t.is(Number(point?.asInt), 32 << 20)
  t.deepEqual(point?.attributes, [{ key: 'lifewatch.cgroup.path', value: { stringValue: cg.path } }])
})
