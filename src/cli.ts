#!/usr/bin/env node
// The `lifewatch` command: dispatch, usage errors (exit 2) and typed errors (exit 1).
import { LifewatchError } from './errors.js'
import { UsageError } from './cli/args.js'
import { demo, demoHelp } from './cli/demo.js'
import { otlpConfigured, startCliTelemetry, stopCliTelemetry } from './cli/otel.js'
import { run, runHelp } from './cli/run.js'
import { watch, watchHelp } from './cli/watch.js'
import { telemetry } from './telemetry.js'

const commands: Record<string, (argv: string[]) => Promise<number>> = { run, watch, demo }

const help = `Usage: lifewatch <command> [options]

Commands:
  run     run a command in a cgroup with limits, supervise it, trace its shutdown
  watch   watch processes and cgroups until they end
  demo    OOM kill, graceful shutdown and a non-child's exit, with span trees

Run 'lifewatch <command> --help' for a command's options. With OTEL_EXPORTER_OTLP_ENDPOINT
set, traces and metrics are exported over OTLP (standard OTEL_* variables apply).

${runHelp}

${watchHelp}

${demoHelp}`

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(help)
    return name === undefined ? 2 : 0
  }
  const command = commands[name]
  if (!command) throw new UsageError(`unknown command ${JSON.stringify(name)} (try 'lifewatch --help')`)
  if (otlpConfigured() && !rest.includes('--help') && !rest.includes('-h')) {
    // Every command exports lifewatch's metrics (fd counters by kind...) when OTLP is configured.
    const tel = await startCliTelemetry()
    telemetry(tel)
  }
  try {
    return await command(rest)
  } finally {
    await stopCliTelemetry()
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (e: unknown) => {
    if (e instanceof UsageError) {
      console.error(`lifewatch: ${e.message}`)
      process.exitCode = 2
    } else if (e instanceof LifewatchError) {
      console.error(`lifewatch: ${e.code}: ${e.message}`)
      process.exitCode = 1
    } else {
      console.error(e)
      process.exitCode = 1
    }
  },
).finally(() => {
  // The OTLP SDK was flushed (bounded) in main; its exporters' retry timers for an unreachable
  // endpoint must not keep the command alive after that.
  if (otlpConfigured()) setTimeout(() => process.exit(), 100).unref()
})
