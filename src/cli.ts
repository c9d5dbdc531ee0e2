#!/usr/bin/env node
// The `lifewatch` command: dispatch, usage errors (exit 2) and typed errors (exit 1).
import { LifewatchError } from './errors.js'
import { UsageError } from './cli/args.js'
import { demo, demoHelp } from './cli/demo.js'
import { watch, watchHelp } from './cli/watch.js'

const commands: Record<string, (argv: string[]) => Promise<number>> = { watch, demo }

const help = `Usage: lifewatch <command> [options]

Commands:
  watch   watch processes until they exit
  demo    watch processes it starts itself

Run 'lifewatch <command> --help' for a command's options.

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
  return command(rest)
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
)
