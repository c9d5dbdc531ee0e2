import { parseArgs, type ParseArgsConfig } from 'node:util'

/** A bad command line: printed as one line, exit code 2. */
export class UsageError extends Error {}

type Options = NonNullable<ParseArgsConfig['options']>
type WithHelp<T extends Options> = T & { help: { type: 'boolean'; short: 'h' } }
type Parsed<T extends Options> = ReturnType<
  typeof parseArgs<{ args: string[]; options: WithHelp<T>; allowPositionals: boolean; strict: true }>
>

export function parse<const T extends Options>(argv: string[], options: T, allowPositionals = false): Parsed<T> {
  const all = { ...options, help: { type: 'boolean', short: 'h' } } as WithHelp<T>
  try {
    return parseArgs({ args: argv, options: all, allowPositionals, strict: true })
  } catch (e) {
    throw new UsageError((e as Error).message.split('\n')[0])
  }
}

/** A PID given on the command line: digits only, in range. */
export function pidArg(text: string): number {
  const n = /^\d+$/.test(text) ? Number(text) : NaN
  if (!Number.isSafeInteger(n) || n < 1 || n > 4_194_304) throw new UsageError(`--pid: not a valid PID: ${JSON.stringify(text)}`)
  return n
}
