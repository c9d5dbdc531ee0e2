// In-memory OpenTelemetry SDK for tests: spans and metrics lifewatch produced, read back.
import { context } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
  type DataPoint,
  type MetricData,
} from '@opentelemetry/sdk-metrics'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base'

let contextManagerSet = false

export interface Otel {
  tracerProvider: BasicTracerProvider
  meterProvider: MeterProvider
  spans(): ReadableSpan[]
  span(name: string): ReadableSpan
  /** The parent span's name (undefined for a root). */
  parentName(span: ReadableSpan): string | undefined
  /** Every metric after a collection, by name. */
  metrics(): Promise<Map<string, MetricData>>
  /** Data points of one metric whose attributes include `attrs`. */
  points(name: string, attrs?: Record<string, unknown>): Promise<DataPoint<unknown>[]>
}

export function otel(): Otel {
  if (!contextManagerSet) {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
    contextManagerSet = true
  }
  const spanExporter = new InMemorySpanExporter()
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spanExporter)] })
  const metricExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE)
  const reader = new PeriodicExportingMetricReader({ exporter: metricExporter, exportIntervalMillis: 3_600_000 })
  const meterProvider = new MeterProvider({ readers: [reader] })
  const spans = () => spanExporter.getFinishedSpans()
  const byId = () => new Map(spans().map((s) => [s.spanContext().spanId, s]))
  const metrics = async () => {
    metricExporter.reset()
    await reader.forceFlush()
    const out = new Map<string, MetricData>()
    for (const rm of metricExporter.getMetrics()) {
      for (const sm of rm.scopeMetrics) for (const m of sm.metrics) out.set(m.descriptor.name, m)
    }
    return out
  }
  return {
    tracerProvider,
    meterProvider,
    spans,
    span(name) {
      const found = spans().filter((s) => s.name === name)
      if (found.length !== 1) throw new Error(`expected one span ${name}, found ${found.length}: ${spans().map((s) => s.name).join(', ')}`)
      return found[0]!
    },
    parentName(span) {
      const id = span.parentSpanContext?.spanId
      return id ? byId().get(id)?.name : undefined
    },
    metrics,
    async points(name, attrs = {}) {
      const m = (await metrics()).get(name)
      if (!m) return []
      return (m.dataPoints as DataPoint<unknown>[]).filter((p) => Object.entries(attrs).every(([k, v]) => p.attributes[k] === v))
    },
  }
}
