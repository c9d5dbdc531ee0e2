// OTLP export from `lifewatch run`: it works against a collector, and with the collector down
// or never answering the exit is not held up by more than a second after the command ended,
// and stderr says the export failed and to where.
import { spawn } from 'node:child_process'
import { once } from 'node:events'

import test from 'ava'

import { lines } from './cli-lines.js'
import { CLI } from './helpers.js'
import { blackhole, collector, down, type Endpoint } from './otlp-receiver.js'

/** `lifewatch run --json -- true` exporting to `endpoint`; ms from the command's exit to lifewatch's. */
async function runTo(endpoint: Endpoint, extraEnv: NodeJS.ProcessEnv = {}) {
  const p = spawn(process.execPath, [CLI, 'run', '--json', '--', 'sh', '-c', 'exit 0'], {
    env: { ...process.env, NO_COLOR: '1', OTEL_EXPORTER_OTLP_ENDPOINT: endpoint.url, ...extraEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stderr = ''
  p.stderr.on('data', (d) => (stderr += d))
  const [code] = (await once(p, 'exit')) as [number]
  // The same clock as the events' `time` (CLOCK_MONOTONIC).
  const exitedAt = process.hrtime.bigint()
  const json = stderr.split('\n').filter((l) => l.startsWith('{')).join('\n')
  const notes = stderr.split('\n').filter((l) => l.startsWith('lifewatch: '))
  return { code, stderr, json, notes, exitedAt }
}

test('with a collector: traces (protobuf) and metrics arrive, nothing is said', async (t) => {
  const c = await collector()
  t.teardown(() => c.close())
  const r = await runTo(c)
  t.is(r.code, 0, r.stderr)
  t.deepEqual(r.notes, [])
  const traces = c.received.filter((x) => x.path === '/v1/traces')
  t.is(traces.length, 1)
  t.is(traces[0]!.contentType, 'application/x-protobuf')
  for (const span of ['shutdown.task.kill', 'shutdown.platform.cleanup.cgroup_manager']) t.true(traces[0]!.body.includes(span), span)
  t.true(c.received.some((x) => x.path === '/v1/metrics' && x.body.includes('lifewatch.fd.allocated')), 'the fd metrics')
  // http/json too.
  const j = await runTo(c, { OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_METRICS_EXPORTER: 'none' })
  t.is(j.code, 0)
  const json = c.received.filter((x) => x.path === '/v1/traces').at(-1)!
  t.is(json.contentType, 'application/json')
  t.regex(json.body.toString(), /"name":"shutdown"/)
})

for (const [what, make] of [
  ['down (connection refused)', down],
  ['never answering', blackhole],
] as const) {
  test(`with the collector ${what}: exits within 1 s of the command and says where the export failed`, async (t) => {
    const e = await make()
    t.teardown(() => e.close())
    const r = await runTo(e)
    t.is(r.code, 0, r.stderr)
    const exit = lines(t, r.json).find((l) => l.type === 'exit')!
    const ms = Number(r.exitedAt - BigInt(exit.time)) / 1e6
    t.log(`${what}: lifewatch exited ${ms.toFixed(0)} ms after the command`)
    t.true(ms < 1000, `${ms} ms`)
    t.true(r.notes.some((n) => n.startsWith(`lifewatch: OTLP export of traces to ${e.url}/v1/traces failed`)), r.notes.join('\n'))
  })
}
