// An observability agent that already runs its own OpenTelemetry SDK and embeds lifewatch to
// supervise a workload: lifewatch's spans join the agent's traces (under the agent's own
// "supervise" span) and its metrics go out through the agent's meter provider. lifewatch
// itself never registers a global SDK; the agent hands it the providers.
//
//   node --import tsx examples/agent.ts                    # spans and metrics on the console
//   OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 node --import tsx examples/agent.ts
//
// As root the workload runs in its own cgroup with a memory limit (and gets OOM-killed: it is
// a memory hog); otherwise it runs as a plain child process.
import { trace } from '@opentelemetry/api'
import { NodeSDK, metrics as sdkMetrics, tracing } from '@opentelemetry/sdk-node'

import { Monitor, Platform, shutdown, Subreaper, Task } from '../src/index.js'

const otlp = Boolean(process.env.OTEL_EXPORTER_OTLP_ENDPOINT)
// The agent's SDK: OTLP when configured, the console otherwise.
const sdk = new NodeSDK({
  serviceName: 'example-agent',
  instrumentations: [],
  ...(otlp
    ? {}
    : {
        spanProcessors: [new tracing.SimpleSpanProcessor(new tracing.ConsoleSpanExporter())],
        metricReaders: [new sdkMetrics.PeriodicExportingMetricReader({ exporter: new sdkMetrics.ConsoleMetricExporter(), exportIntervalMillis: 60_000 })],
      }),
})
sdk.start()

// lifewatch uses the global providers the SDK just registered; passing them explicitly
// (tracerProvider / meterProvider) works as well, e.g. for a non-global SDK.
const monitor = new Monitor()
const platform = new Platform()
// Opt-in, process-wide: orphans of the workload are reparented to the agent and reaped.
const reaper = Subreaper.enable()
reaper.on('orphan', (o) => console.log(`agent: reaped orphan ${o.pid} (${o.comm}) ${o.signal ?? `code ${o.exitCode}`}`))

const tracer = trace.getTracer('example-agent')
await tracer.startActiveSpan('supervise', async (span) => {
  let task: Task
  try {
    task = await platform.spawn('tail', ['/dev/zero'], {
      monitor,
      cgroupPath: `example-agent/job-${process.pid}`,
      limits: { memory: '32M', swap: 0 },
      stdio: 'ignore',
    })
  } catch (e) {
    console.log(`agent: no cgroup (${(e as Error).message}); running a plain, well-behaved job instead`)
    task = await Task.spawn('sleep', ['30'], { monitor, stdio: 'ignore' })
    setTimeout(() => void task.kill('SIGTERM'), 500)
  }
  span.setAttribute('process.pid', task.pid)
  const exit = await task.wait()
  console.log(`agent: job ${task.pid} ended:`, exit.signal ?? `code ${exit.exitCode}`, task.oomKills ? `(${task.oomKills} OOM kill)` : '')
  // The shutdown trace is a child of "supervise": Kill → Delete → monitor close → platform cleanup.
  const result = await shutdown(task, { monitor, platform })
  console.log('agent: shutdown', { killed: result.killed, oomKills: result.oomKills, cgroupsRemoved: result.cgroupsRemoved, ms: result.durations.shutdown })
  span.end()
})

reaper.disable()
await sdk.shutdown()
