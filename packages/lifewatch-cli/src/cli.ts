#!/usr/bin/env node
// The `lifewatch` command: dispatch through the command definitions (program.ts) and the exit
// status of each kind of failure: 125 for lifewatch's own (bad flags included), 126/127 when
// `run`'s command cannot be run or found.
import { CommanderError } from 'commander'
import { LifewatchError } from 'lifewatch'

import { completion } from './completion.js'
import { demo } from './demo.js'
import { LaunchError } from './launch.js'
import { manPage } from './man.js'
import { program } from './program.js'
import { run, type RunFlags } from './run.js'
import { stdoutGone, watchStdout } from './stdout.js'
import { top, type TopFlags } from './top.js'
import { EXIT_FAILURE, UsageError } from './usage.js'
import { watch, type WatchFlags } from './watch.js'

const SHORT_USAGE = `Usage: lifewatch <command> [options]

  run [options] -- <command> [args...]   run a command in a cgroup, supervise it
  watch --pid <pid> --cgroup <path>      watch processes and cgroups until they end
  top [--all] [--once] [--json]          a live view of cgroups
  demo                                   see it work on this machine

lifewatch --help for more, lifewatch <command> --help for a command's options.`

function fail(message: string, status = EXIT_FAILURE): void {
  process.stderr.write(`lifewatch: ${message}\n`)
  process.exitCode = status
}

async function main(argv: string[]): Promise<void> {
  watchStdout()
  if (argv.length === 0) {
    process.stderr.write(`${SHORT_USAGE}\n`)
    process.exitCode = EXIT_FAILURE
    return
  }
  const p = program(
    {
      run: (operands, o) => run(operands, o as unknown as RunFlags),
      watch: (_, o) => watch(o as WatchFlags),
      top: (_, o) => top(o as unknown as TopFlags),
      demo: (_, o) => demo(o),
      completion: async ([shell]) => completion(p, shell!),
      man: async () => {
        process.stdout.write(manPage(p))
        return 0
      },
    },
    (status) => (process.exitCode = stdoutGone() ? 141 : status),
  )
  // Commander's own messages (unknown option, missing value...) become one `lifewatch:` line.
  p.exitOverride().configureOutput({ writeErr: () => {}, outputError: () => {} })
  for (const c of p.commands) c.exitOverride().configureOutput({ writeErr: () => {}, outputError: () => {} })
  await p.parseAsync(argv, { from: 'user' })
}

main(process.argv.slice(2))
  .catch((e: unknown) => {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version') process.exitCode = 0
      else fail(e.message.replace(/^error: /, '').split('\n')[0]!)
    } else if (e instanceof UsageError) fail(e.message)
    else if (e instanceof LaunchError) fail(e.message, e.status)
    else if (e instanceof LifewatchError) fail(`${e.code}: ${e.message}`)
    else fail(`internal error: ${(e as Error)?.stack ?? String(e)}`)
  })
  .finally(() => {
    // The OTLP exporters' retry timers for an unreachable endpoint must not keep the command
    // alive once it has said what it had to.
    setTimeout(() => process.exit(), 50).unref()
  })
