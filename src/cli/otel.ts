// OpenTelemetry for the CLI only (the library never registers a global SDK). With
// OTEL_EXPORTER_OTLP_ENDPOINT (or the per-signal OTEL_EXPORTER_OTLP_TRACES_/METRICS_ENDPOINT)
// set, `@opentelemetry/sdk-node` is started from the standard OTel environment variables
// (protocol, headers, service name, resource attributes, OTEL_TRACES/METRICS_EXPORTER...) and
// exports traces and metrics over OTLP. Without it nothing is exported; the span tree is still
// recorded for printing. The SDK is loaded only when used.
import type { TracerProvider } from '@opentelemetry/api'

import type { TelemetryOptions } from '../telemetry.js'
import { RecordingTracerProvider } from './spantree.js'

export interface CliTelemetry extends TelemetryOptions {
  tracerProvider: RecordingTracerProvider
  /** Whether traces and metrics go out over OTLP. */
  exporting: boolean
  /** Flushes and stops the SDK (bounded: never keeps the CLI from exiting for long). */
  stop(): Promise<void>
}

export function otlpConfigured(env = process.env): boolean {
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT)
}

let started: Promise<CliTelemetry> | undefined

/** Starts the CLI's telemetry once per process. */
export function startCliTelemetry(): Promise<CliTelemetry> {
  return (started ??= start())
}

/** Flushes and stops the SDK if a command started it. */
export async function stopCliTelemetry(): Promise<void> {
  if (started) await (await started).stop()
}

async function start(): Promise<CliTelemetry> {
  const { NodeSDK, tracing } = await import('@opentelemetry/sdk-node')
  if (!otlpConfigured()) {
    // Real span ids (for the printed tree) without exporting anything.
    const local = new tracing.BasicTracerProvider()
    return { tracerProvider: new RecordingTracerProvider(local), exporting: false, stop: async () => {} }
  }
  const { trace, metrics } = await import('@opentelemetry/api')
  let stopped = false
  const sdk = new NodeSDK({
    serviceName: process.env.OTEL_SERVICE_NAME || 'lifewatch',
    instrumentations: [],
  })
  sdk.start()
  const global: TracerProvider = trace.getTracerProvider()
  return {
    tracerProvider: new RecordingTracerProvider(global),
    meterProvider: metrics.getMeterProvider(),
    exporting: true,
    async stop() {
      if (stopped) return
      stopped = true
      let timer: NodeJS.Timeout | undefined
      const limit = new Promise<void>((r) => (timer = setTimeout(r, 5000)))
      await Promise.race([sdk.shutdown().catch((e: unknown) => console.error(`lifewatch: OTLP export: ${(e as Error).message}`)), limit])
      clearTimeout(timer)
    },
  }
}
