// Colour, decided for each stream on its own: FORCE_COLOR (unless 0 or false) forces it,
// NO_COLOR turns it off, else the stream must be a terminal that has colours (Node's rule,
// which also reads TERM).
import type { Writable } from 'node:stream'
import type { WriteStream } from 'node:tty'

export function colorsFor(stream: Writable | undefined, env = process.env): boolean {
  const force = env.FORCE_COLOR
  if (force !== undefined) return force !== '0' && force.toLowerCase() !== 'false'
  if (env.NO_COLOR) return false
  const tty = stream as WriteStream | undefined
  return Boolean(tty?.isTTY && tty.hasColors?.())
}

export interface Paint {
  dim(s: string): string
  bold(s: string): string
  red(s: string): string
  green(s: string): string
  yellow(s: string): string
}

export function paint(on: boolean): Paint {
  const p = (code: number) => (s: string) => (on ? `\x1b[${code}m${s}\x1b[0m` : s)
  return { dim: p(2), bold: p(1), red: p(31), green: p(32), yellow: p(33) }
}
