// OpenTelemetry for the CLI only (the library never registers an SDK). With
// OTEL_EXPORTER_OTLP_ENDPOINT (or the per-signal OTEL_EXPORTER_OTLP_TRACES_/METRICS_ENDPOINT)
// set, traces and metrics are exported over OTLP/HTTP by the SDK's own exporters, which read
// the standard variables (headers, timeout, compression, certificates); the protocol
// (OTEL_EXPORTER_OTLP_[TRACES_|METRICS_]PROTOCOL: http/protobuf, the default, or http/json),
// OTEL_TRACES_EXPORTER / OTEL_METRICS_EXPORTER (otlp or none), OTEL_SDK_DISABLED,
// OTEL_SERVICE_NAME (default lifewatch), OTEL_RESOURCE_ATTRIBUTES and
// OTEL_METRIC_EXPORT_INTERVAL are read here. Without an endpoint nothing is exported and the
// span tree is still recorded for printing. Exporting never holds up the exit for long: see
// `stop`.
import { context, type MeterProvider } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { ExportResultCode, type ExportResult } from '@opentelemetry/core'
import { BasicTracerProvider, BatchSpanProcessor, type SpanExporter } from '@opentelemetry/sdk-trace-base'

import { RecordingTracerProvider } from './spantree.js'
import { sleep } from './timers.js'

export interface CliTelemetry {
  tracerProvider: RecordingTracerProvider
  meterProvider?: MeterProvider
  /** Where traces and metrics go (`traces to http://…/v1/traces`); empty when not exporting. */
  targets: string[]
  /** Lines worth saying about the configuration (an unsupported protocol...). */
  warnings: string[]
  /**
   * Flushes and stops the SDK, giving up at `deadline` (a `performance.now()` time); resolves
   * with one line per export that failed or did not finish, naming where it was going.
   */
  stop(deadline: number): Promise<string[]>
}

export function otlpConfigured(env = process.env): boolean {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return false
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT)
}

type Signal = 'traces' | 'metrics'

/** The URL the SDK's exporter posts to (its own rule: the per-signal variable, else the base + /v1/<signal>). */
function targetUrl(signal: Signal, env = process.env): string {
  const specific = env[`OTEL_EXPORTER_OTLP_${signal.toUpperCase()}_ENDPOINT`]
  if (specific) return specific
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT ?? 'http://localhost:4318'
  return `${base.endsWith('/') ? base : `${base}/`}v1/${signal}`
}

/** Whether a signal is exported, and over which OTLP/HTTP encoding; else why not. */
function plan(signal: Signal, env = process.env): { protocol: 'http/protobuf' | 'http/json' } | { skip: string | undefined } {
  const exporters = (env[`OTEL_${signal.toUpperCase()}_EXPORTER`] ?? 'otlp').split(',').map((s) => s.trim())
  if (exporters.includes('none')) return { skip: undefined }
  if (!exporters.includes('otlp')) return { skip: `OTEL_${signal.toUpperCase()}_EXPORTER=${exporters.join(',')}: only otlp and none are supported: ${signal} not exported` }
  const protocol = env[`OTEL_EXPORTER_OTLP_${signal.toUpperCase()}_PROTOCOL`] ?? env.OTEL_EXPORTER_OTLP_PROTOCOL ?? 'http/protobuf'
  if (protocol === 'http/protobuf' || protocol === 'http/json') return { protocol }
  return { skip: `OTLP protocol ${protocol}: only http/protobuf and http/json are supported: ${signal} not exported` }
}

/** An exporter that remembers its last failure and whether an export is still under way. */
class Watched<T, E extends { export(items: T, done: (r: ExportResult) => void): void; shutdown(): Promise<void> }> {
  failure: Error | undefined
  pending = 0
  constructor(readonly inner: E) {}
  export(items: T, done: (r: ExportResult) => void): void {
    this.pending++
    this.inner.export(items, (r) => {
      this.pending--
      if (r.code !== ExportResultCode.SUCCESS) this.failure = r.error ?? new Error('export failed')
      done(r)
    })
  }
  shutdown(): Promise<void> {
    return this.inner.shutdown()
  }
  forceFlush(): Promise<void> {
    return (this.inner as { forceFlush?: () => Promise<void> }).forceFlush?.() ?? Promise.resolve()
  }
}

function positiveInt(text: string | undefined, fallback: number): number {
  const n = Number(text)
  return Number.isSafeInteger(n) && n > 0 ? n : fallback
}

let started: Promise<CliTelemetry> | undefined

/** Starts the CLI's telemetry once per process. */
export function startTelemetry(): Promise<CliTelemetry> {
  return (started ??= start())
}

async function start(): Promise<CliTelemetry> {
  // Spans parent under the active context (the shutdown's steps under its root span).
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
  if (!otlpConfigured()) {
    // Real span ids for the printed tree, nothing exported.
    return { tracerProvider: new RecordingTracerProvider(new BasicTracerProvider()), targets: [], warnings: [], stop: async () => [] }
  }
  const { detectResources, envDetector, resourceFromAttributes } = await import('@opentelemetry/resources')
  const resource = resourceFromAttributes({ 'service.name': process.env.OTEL_SERVICE_NAME || 'lifewatch' }).merge(detectResources({ detectors: [envDetector] }))
  const warnings: string[] = []
  const targets: string[] = []
  const watched: Array<[string, Watched<never, never>]> = []

  const tracesPlan = plan('traces')
  let traceExporter: Watched<unknown, SpanExporter> | undefined
  if ('protocol' in tracesPlan) {
    const mod = tracesPlan.protocol === 'http/json' ? await import('@opentelemetry/exporter-trace-otlp-http') : await import('@opentelemetry/exporter-trace-otlp-proto')
    traceExporter = new Watched(new mod.OTLPTraceExporter())
    const where = `traces to ${targetUrl('traces')}`
    targets.push(where)
    watched.push([where, traceExporter as never])
  } else if (tracesPlan.skip) warnings.push(tracesPlan.skip)
  const tracer = new BasicTracerProvider({ resource, spanProcessors: traceExporter ? [new BatchSpanProcessor(traceExporter as unknown as SpanExporter)] : [] })

  const metricsPlan = plan('metrics')
  let meterProvider: (MeterProvider & { shutdown(): Promise<void> }) | undefined
  if ('protocol' in metricsPlan) {
    const { MeterProvider: SdkMeterProvider, PeriodicExportingMetricReader } = await import('@opentelemetry/sdk-metrics')
    const mod = metricsPlan.protocol === 'http/json' ? await import('@opentelemetry/exporter-metrics-otlp-http') : await import('@opentelemetry/exporter-metrics-otlp-proto')
    const inner = new mod.OTLPMetricExporter()
    const exporter = Object.assign(new Watched(inner), {
      selectAggregationTemporality: inner.selectAggregationTemporality.bind(inner),
      selectAggregation: inner.selectAggregation.bind(inner),
    })
    const where = `metrics to ${targetUrl('metrics')}`
    targets.push(where)
    watched.push([where, exporter as never])
    const reader = new PeriodicExportingMetricReader({
      exporter: exporter as unknown as ConstructorParameters<typeof PeriodicExportingMetricReader>[0]['exporter'],
      exportIntervalMillis: positiveInt(process.env.OTEL_METRIC_EXPORT_INTERVAL, 60_000),
    })
    meterProvider = new SdkMeterProvider({ resource, readers: [reader] })
  } else if (metricsPlan.skip) warnings.push(metricsPlan.skip)

  let stopped: Promise<string[]> | undefined
  return {
    tracerProvider: new RecordingTracerProvider(tracer),
    meterProvider,
    targets,
    warnings,
    stop(deadline) {
      return (stopped ??= (async () => {
        const budget = Math.max(0, deadline - performance.now())
        const done = Promise.allSettled([tracer.shutdown(), meterProvider?.shutdown()]).then(() => true)
        const finished = await Promise.race([done, sleep(budget).then(() => false)])
        const problems: string[] = []
        for (const [where, w] of watched) {
          if (w.failure) problems.push(`OTLP export of ${where} failed: ${w.failure.message}`)
          else if (!finished && w.pending > 0) problems.push(`OTLP export of ${where} failed: no answer in the ${Math.round(budget)} ms left (not delivered)`)
        }
        return problems
      })())
    },
  }
}
