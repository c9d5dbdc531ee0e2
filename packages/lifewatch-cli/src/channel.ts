// Where `run` reports: its event channel. Events, warnings, the span tree and the end summary
// go to stderr by default, or to `--events FILE` / `--events-fd N` (as conmon's sync pipe),
// as human lines or, with --json, as NDJSON. The command's own stdio is never touched. A
// channel whose reader went away (EPIPE) is dropped with one line on stderr; the supervision
// goes on.
import { closeSync, fstatSync, openSync, readFileSync, writeSync } from 'node:fs'

import { monotonicTime } from 'lifewatch'

import { colorsFor, paint, type Paint } from './color.js'
import { ndjson, type Record } from './format.js'
import { stdoutGone } from './stdout.js'
import { UsageError } from './usage.js'

export interface ChannelOptions {
  json?: boolean
  events?: string
  eventsFd?: number
}

export class Channel {
  readonly json: boolean
  readonly paint: Paint
  #fd: number | undefined
  #since = monotonicTime()
  #lost = false

  private constructor(json: boolean, fd: number | undefined, color: boolean) {
    this.json = json
    this.#fd = fd
    this.paint = paint(color)
  }

  /**
   * Opens the channel; a file or fd that cannot take events is a bad flag (exit 125). Without
   * --events or --events-fd it is stderr (`run`: stdout is the command's), or stdout for
   * commands whose output the events are (`watch`).
   */
  static open(o: ChannelOptions, fallback: 'stderr' | 'stdout' = 'stderr'): Channel {
    const json = o.json === true
    if (o.events !== undefined && o.eventsFd !== undefined) throw new UsageError('--events and --events-fd: give one of them')
    if (o.events !== undefined) {
      try {
        return new Channel(json, openSync(o.events, 'w'), colorsFor(undefined))
      } catch (e) {
        throw new UsageError(`--events ${o.events}: cannot open for writing: ${(e as Error).message}`)
      }
    }
    if (o.eventsFd !== undefined) return new Channel(json, ownFd(o.eventsFd), colorsFor(undefined))
    return new Channel(json, fallback === 'stdout' ? 1 : undefined, colorsFor(fallback === 'stdout' ? process.stdout : process.stderr))
  }

  /** An event: NDJSON, or a human line stamped with the time since the channel opened. */
  event(rec: Record, human: (p: Paint) => string): void {
    this.#write(this.json ? ndjson(rec) : this.#stamp(human(this.paint)))
  }

  /** lifewatch's own remark (cannot do X, doing Y): a `warning` line in NDJSON. */
  warn(message: string): void {
    this.event({ type: 'warning', time: monotonicTime(), message }, (p) => p.yellow(`lifewatch: ${message}`))
  }

  /** Lines only a person reads (the span tree, the end summary): not in NDJSON. */
  note(lines: string[]): void {
    if (!this.json) for (const l of lines) this.#write(l)
  }

  close(): void {
    if (this.#fd !== undefined && this.#fd > 2) closeSync(this.#fd)
    this.#fd = undefined
  }

  #stamp(line: string): string {
    // The time this line is reported at: the human timeline never goes backwards, while the
    // NDJSON `time` is when the kernel reported the event.
    const ms = Number(monotonicTime() - this.#since) / 1e6
    return `${this.paint.dim(`[+${ms.toFixed(1).padStart(8)} ms]`)} ${line}`
  }

  #write(line: string): void {
    if (this.#lost) return
    if (this.#fd === undefined) {
      process.stderr.write(`${line}\n`)
      return
    }
    if (this.#fd === 1) {
      // Ordered with whatever else goes to stdout; a reader that went away is stdout.ts's.
      if (!stdoutGone()) process.stdout.write(`${line}\n`)
      return
    }
    try {
      writeAll(this.#fd, `${line}\n`)
    } catch (e) {
      this.#lost = true
      process.stderr.write(`lifewatch: the event channel failed (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): no more events are written\n`)
    }
  }
}

function writeAll(fd: number, text: string): void {
  let buf = Buffer.from(text)
  while (buf.length > 0) {
    try {
      buf = buf.subarray(writeSync(fd, buf))
    } catch (e) {
      // A non-blocking pipe that is full: wait for its reader rather than drop a line.
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5)
    }
  }
}

/**
 * The events fd, checked (open, writable) and re-opened close-on-exec through /proc so the
 * command does not inherit it: a pipe's reader then sees EOF when lifewatch exits, whatever
 * the command left running. Sockets cannot be re-opened: those are used as given.
 */
function ownFd(n: number): number {
  let flags: number
  try {
    fstatSync(n)
    flags = parseInt(/^flags:\s*([0-7]+)/m.exec(readFileSync(`/proc/self/fdinfo/${n}`, 'utf8'))?.[1] ?? '1', 8)
  } catch {
    throw new UsageError(`--events-fd ${n}: not an open file descriptor`)
  }
  if ((flags & 3) === 0) throw new UsageError(`--events-fd ${n}: open for reading only`)
  if (n <= 2) return n
  try {
    const own = openSync(`/proc/self/fd/${n}`, 'a')
    closeSync(n)
    return own
  } catch {
    return n
  }
}
