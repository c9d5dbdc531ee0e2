// The CLI's NDJSON lines, checked against the schema the CLI package ships.
import { readFileSync } from 'node:fs'

import { Ajv } from 'ajv'
import type { ExecutionContext } from 'ava'

import { root } from './helpers.js'

const schema = JSON.parse(readFileSync(`${root}packages/lifewatch-cli/schema/events.schema.json`, 'utf8')) as object
const validate = new Ajv({ allErrors: true }).compile(schema)

export type Line = Record<string, unknown> & { type: string; time: number }

/** Every line of `text` parsed and validated (a failed assertion names the line); the parsed lines. */
export function lines(t: ExecutionContext, text: string): Line[] {
  const out: Line[] = []
  for (const l of text.split('\n').filter(Boolean)) {
    let v: unknown
    try {
      v = JSON.parse(l)
    } catch {
      t.fail(`not JSON: ${l}`)
      continue
    }
    t.true(validate(v), `${l}\n${JSON.stringify(validate.errors)}`)
    // `time` must be an exact integer in the text, never a float or a string.
    t.regex(l, /"time":\d+[,}]/, l)
    out.push(v as Line)
  }
  return out
}
