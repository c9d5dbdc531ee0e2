// OTLP end to end: `lifewatch run --memory 32M -- <memory hog>` exports its shutdown trace to a
// real Jaeger (built from the Go module proxy, scripts/jaeger), read back from the query API.
import test from 'ava'

// @ts-expect-error: a plain .mjs kit without types
import { getTraces, startJaeger } from '../scripts/jaeger/start.mjs'
import { SPAN } from '../src/index.js'
import { cli } from './helpers.js'

interface JaegerSpan {
  spanID: string
  operationName: string
  duration: number
  startTime: number
  references: Array<{ refType: string; spanID: string }>
  tags: Array<{ key: string; value: unknown }>
  logs: Array<{ timestamp: number; fields: Array<{ key: string; value: unknown }> }>
}

type Jaeger = { otlpHttpUrl: string; queryUrl: string; stop(): Promise<void> }

// Started (and, on a fresh machine, built: minutes; `npm test` builds it before ava) when the
// file loads, so that an unavailable Jaeger is a declared skip with its reason printed.
let started: Jaeger | undefined
try {
  started = (await startJaeger()) as Jaeger
} catch (e) {
  if ((e as { code?: string }).code !== 'JAEGER_UNAVAILABLE') throw e
  console.log(`jaeger.spec: SKIPPED: jaeger unavailable: ${(e as Error).message}`)
}
const withJaeger = started ? test : test.skip

withJaeger('lifewatch run exports the shutdown trace over OTLP; Jaeger returns every span, parent links, pid/exit and the OOM event', async (t) => {
  t.timeout(2 * 60_000)
  const jaeger = started! // the test is declared only when Jaeger started
  try {
    const service = `lifewatch-e2e-${process.pid}`
    const oom = process.getuid?.() === 0
    const r = await cli(['run', '--memory', '32M', '--swap', '0', '--', 'tail', '/dev/zero'], {
      timeoutMs: 60_000,
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: jaeger.otlpHttpUrl, OTEL_SERVICE_NAME: service, OTEL_METRICS_EXPORTER: 'none', NO_COLOR: '1' },
    })
    t.log(r.stderr)
    t.is(r.code, 137, 'the hog was SIGKILLed by the OOM killer: 128 + 9')

    const traces = (await getTraces(jaeger.queryUrl, service, { minSpans: 7, timeoutMs: 20_000 })) as Array<{ spans: JaegerSpan[] }>
    t.is(traces.length, 1, 'one trace')
    const spans = traces[0]!.spans
    const byName = new Map(spans.map((s) => [s.operationName, s]))
    t.deepEqual([...byName.keys()].sort(), Object.values(SPAN).sort())
    t.is(spans.length, 7)
    const parentOf = (name: string) => {
      const ref = byName.get(name)!.references.find((x) => x.refType === 'CHILD_OF')
      return spans.find((s) => s.spanID === ref?.spanID)?.operationName
    }
    t.is(parentOf(SPAN.shutdown), undefined)
    for (const n of [SPAN.kill, SPAN.delete, SPAN.monitorClose, SPAN.platformCleanup]) t.is(parentOf(n), SPAN.shutdown, n)
    for (const n of [SPAN.oomWatcher, SPAN.cgroupManager]) t.is(parentOf(n), SPAN.platformCleanup, n)
    const tag = (name: string, key: string) => byName.get(name)!.tags.find((x) => x.key === key)?.value
    const root = SPAN.shutdown
    t.is(typeof tag(root, 'process.pid'), 'number')
    t.is(tag(root, 'process.exit.code'), 137)
    t.is(tag(root, 'lifewatch.exit.signal'), 'SIGKILL')
    t.is(tag(root, 'process.executable.name'), 'tail')
    t.is(tag(SPAN.kill, 'lifewatch.kill.skipped'), true)
    t.is(tag(SPAN.kill, 'process.exit.code'), 137)
    if (oom) {
      t.regex(String(tag(root, 'lifewatch.cgroup.path')), /^\/lifewatch\/run-\d+$/)
      const log = byName.get(root)!.logs.find((l) => l.fields.some((f) => f.key === 'event' && f.value === 'lifewatch.oom_kill'))
      t.truthy(log, 'the OOM kill as a span event')
      t.true(Number(log?.fields.find((f) => f.key === 'lifewatch.oom.kills')?.value) >= 1)
    } else {
      t.log('not root: no cgroup, so no OOM; the OOM assertions need root')
    }
    // The trace as Jaeger returned it.
    const t0 = Math.min(...spans.map((s) => s.startTime))
    const depth = (s: JaegerSpan): number => {
      const p = spans.find((x) => x.spanID === s.references[0]?.spanID)
      return p ? depth(p) + 1 : 0
    }
    const lines = [...spans]
      .sort((a, b) => a.startTime - b.startTime || depth(a) - depth(b))
      .map((s) => `${'  '.repeat(depth(s))}${s.operationName}  +${((s.startTime - t0) / 1000).toFixed(2)} ms  ${(s.duration / 1000).toFixed(2)} ms`)
    t.log(`Jaeger trace:\n${lines.join('\n')}`)
  } finally {
    await jaeger.stop()
  }
})
