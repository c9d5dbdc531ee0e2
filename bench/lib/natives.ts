// The bench's native programs (crates/lifewatch-floor): the kernel floor observer and the
// helper that plays the dying, parent and sleeping processes; and the JS floor addon
// (crates/lifewatch-jsfloor). Built by `bench/run.ts`.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { closeSync, copyFileSync, existsSync, ftruncateSync, openSync, readSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { createInterface, type Interface } from 'node:readline'
import { fileURLToPath } from 'node:url'

export const root = fileURLToPath(new URL('../..', import.meta.url))
export const floorBin = `${root}target/release/lifewatch-floor`
export const helperBin = `${root}target/release/lifewatch-bench-helper`
/** Shared-memory files; the VM guest has no /dev/shm, but its /tmp is a tmpfs too. */
const shm = existsSync('/dev/shm') ? '/dev/shm' : tmpdir()

const jsFloorAddon = `${root}target/release/lifewatch_jsfloor.node`

/** Builds the programs and the addon (release); returns how long it took in ms. Throws on failure. */
export function buildNatives(): number {
  const t0 = performance.now()
  const r = spawnSync('cargo', ['build', '--release', '--quiet', '-p', 'lifewatch-floor', '-p', 'lifewatch-jsfloor'], { cwd: root, stdio: 'inherit' })
  if (r.status !== 0) throw new Error(`cargo build of the bench natives failed (${r.error?.message ?? `exit ${r.status}`})`)
  // Node loads addons by the .node name.
  copyFileSync(`${root}target/release/liblifewatch_jsfloor.so`, jsFloorAddon)
  return performance.now() - t0
}

/**
 * The JS floor: `watchExit(pid, fn)` calls `fn()` from Node's loop once `pid` has exited;
 * `watchExitStatus(pid, fn)` calls `fn(time, status)` with the exit's wait status (-1: not
 * read) once it has also read it and closed the pidfd.
 */
export interface JsFloor {
  watchExit(pid: number, fn: () => void): void
  watchExitStatus(pid: number, fn: (time: bigint, status: number) => void): void
}

export function jsFloor(): JsFloor {
  return createRequire(import.meta.url)(jsFloorAddon) as JsFloor
}

/** An exit event object as lifewatch's has it, from a wait status (-1: unknown). */
export function exitObject(pid: number, time: bigint, status: number): Record<string, unknown> {
  const base = { type: 'exit', watch: 0, time, pid, source: 'pidfd' }
  if (status < 0) return base
  const signo = status & 0x7f
  return signo === 0 ? { ...base, exitCode: (status >> 8) & 0xff } : { ...base, signal: signo, core: (status & 0x80) !== 0 }
}

/**
 * A shared file of u64 slots in shared memory: each dying helper stores its CLOCK_MONOTONIC ns
 * into its slot right before `_exit`, and the observer reads it after the exit arrived.
 */
export class StampFile {
  readonly path: string
  #fd: number
  #next = 0
  readonly slots: number

  constructor(slots: number) {
    this.slots = slots
    this.path = `${shm}/lifewatch-bench-${process.pid}-${Math.random().toString(36).slice(2)}`
    this.#fd = openSync(this.path, 'w+')
    ftruncateSync(this.#fd, slots * 8)
  }

  take(): number {
    if (this.#next >= this.slots) throw new Error(`stamp file full (${this.slots} slots)`)
    return this.#next++
  }

  /** The stamp in a slot; 0n if the process never wrote one. */
  read(slot: number): bigint {
    const b = Buffer.alloc(8)
    readSync(this.#fd, b, 0, 8, slot * 8)
    return b.readBigUInt64LE(0)
  }

  close(): void {
    closeSync(this.#fd)
    rmSync(this.path, { force: true })
  }
}

/** A line reader over a child's stdout with an awaitable `next()`. */
export class Lines {
  #rl: Interface
  #buf: string[] = []
  #wait: ((l: string | null) => void) | undefined
  #ended = false

  constructor(p: ChildProcess) {
    this.#rl = createInterface({ input: p.stdout! })
    this.#rl.on('line', (l) => {
      if (this.#wait) {
        const w = this.#wait
        this.#wait = undefined
        w(l)
      } else this.#buf.push(l)
    })
    this.#rl.on('close', () => {
      this.#ended = true
      this.#wait?.(null)
    })
  }

  next(): Promise<string | null> {
    const l = this.#buf.shift()
    if (l !== undefined) return Promise.resolve(l)
    if (this.#ended) return Promise.resolve(null)
    return new Promise((r) => (this.#wait = r))
  }

  /** The next line, which must start with `word`; anything else is an error. */
  async expect(word: string, what: string): Promise<string[]> {
    const l = await this.next()
    const parts = l?.split(' ') ?? []
    if (parts[0] !== word) throw new Error(`${what}: expected '${word} ...', got ${JSON.stringify(l)}`)
    return parts.slice(1)
  }
}

/** The floor observer, kept running across samples. */
export class Floor {
  #p: ChildProcess
  #lines: Lines

  constructor() {
    this.#p = spawn(floorBin, [], { stdio: ['pipe', 'pipe', 'inherit'] })
    this.#lines = new Lines(this.#p)
  }

  get pid(): number {
    return this.#p.pid!
  }

  /** Registers a pidfd for `pid`; resolves once the floor is blocked in epoll_wait on it. */
  async watch(pid: number): Promise<{ exit: Promise<bigint> }> {
    this.#p.stdin!.write(`watch ${pid}\n`)
    await this.#lines.expect('ready', `floor watch ${pid}`)
    return { exit: this.#lines.expect('exit', `floor exit ${pid}`).then((w) => BigInt(w[1]!)) }
  }

  /** Registers every PID in `pidfile`; the returned promise settles when all have exited. */
  async burst(pidfile: string): Promise<{ done: Promise<{ first: bigint; last: bigint; wakeups: number }> }> {
    this.#p.stdin!.write(`burst ${pidfile}\n`)
    await this.#lines.expect('ready', 'floor burst')
    return {
      done: this.#lines.expect('burst', 'floor burst').then((w) => ({ first: BigInt(w[0]!), last: BigInt(w[1]!), wakeups: Number(w[2]) })),
    }
  }

  async close(): Promise<void> {
    this.#p.stdin!.end()
    if (this.#p.exitCode === null) await once(this.#p, 'exit')
  }
}

/**
 * A dying helper, a child of this Node process, started and blocked on its trigger;
 * `trigger()` makes it stamp and exit.
 */
export async function spawnDier(stamps: StampFile): Promise<{ child: ChildProcess; pid: number; slot: number; trigger: () => void }> {
  const slot = stamps.take()
  const child = spawn(helperBin, ['die', stamps.path, String(slot)], { stdio: ['pipe', 'pipe', 'inherit'] })
  const lines = new Lines(child)
  await lines.expect('r', 'dying helper start')
  return { child, pid: child.pid!, slot, trigger: () => child.stdin!.end('x') }
}

/** A dying helper that is NOT our child: its parent (another helper) reaps it. */
export async function spawnNonChild(stamps: StampFile): Promise<{ parent: ChildProcess; pid: number; slot: number; trigger: () => void }> {
  const slot = stamps.take()
  const parent = spawn(helperBin, ['parent', stamps.path, String(slot)], { stdio: ['pipe', 'pipe', 'inherit'] })
  const lines = new Lines(parent)
  let pid = 0
  let started = false
  while (!pid || !started) {
    const line = await lines.next()
    if (line === 'r') started = true
    else if (line !== null && /^\d+$/.test(line)) pid = Number(line)
    else throw new Error(`helper parent printed ${JSON.stringify(line)}, not a pid or r`)
  }
  return { parent, pid, slot, trigger: () => parent.stdin!.end('x') }
}

/** Resolves once `c` has exited (at once if it already has). */
export const exited = (c: ChildProcess): Promise<unknown> => (c.exitCode !== null || c.signalCode !== null ? Promise.resolve() : once(c, 'exit'))

/** `n` sleeping processes (children of one helper, which reaps them); killed all at once on demand. */
export class Sleepers {
  readonly n: number
  readonly pidfile: string
  #p: ChildProcess
  #lines: Lines
  pids: number[] = []

  private constructor(n: number) {
    this.n = n
    this.pidfile = `${shm}/lifewatch-bench-pids-${process.pid}-${Math.random().toString(36).slice(2)}`
    this.#p = spawn(helperBin, ['sleepers', String(n), this.pidfile], { stdio: ['pipe', 'pipe', 'inherit'] })
    this.#lines = new Lines(this.#p)
  }

  static async start(n: number): Promise<Sleepers> {
    const s = new Sleepers(n)
    await s.#lines.expect('ready', `starting ${n} sleepers`)
    const { readFileSync } = await import('node:fs')
    s.pids = readFileSync(s.pidfile, 'utf8').trim().split('\n').map(Number)
    if (s.pids.length !== n) throw new Error(`expected ${n} sleeper pids, got ${s.pids.length}`)
    return s
  }

  /** SIGKILLs the group; resolves with the CLOCK_MONOTONIC ns taken just before kill(). */
  async kill(): Promise<{ t0: bigint; reaped: Promise<bigint> }> {
    // (an object, not a bare promise: an async function would flatten it)
    this.#p.stdin!.write('kill\n')
    const [t0] = await this.#lines.expect('killed', 'killing sleepers')
    return { t0: BigInt(t0!), reaped: this.#lines.expect('reaped', 'reaping sleepers').then((w) => BigInt(w[0]!)) }
  }

  /** Kills (if not yet) and waits until every sleeper was reaped. */
  async close(): Promise<void> {
    this.#p.stdin!.end()
    if (this.#p.exitCode === null && this.#p.signalCode === null) await once(this.#p, 'exit')
    rmSync(this.pidfile, { force: true })
  }
}

/** A native floor process for one OOM kill at a time (`oom <dir>`: v1 eventfd or v2 inotify). */
export class OomFloor {
  #p: ChildProcess
  #lines: Lines

  constructor() {
    this.#p = spawn(floorBin, [], { stdio: ['pipe', 'pipe', 'inherit'] })
    this.#lines = new Lines(this.#p)
  }

  /** Registers the notification; resolves once the floor is blocked in epoll_wait on it. */
  async watch(memDir: string): Promise<{ oom: Promise<{ wake: bigint; seen: bigint; kills: number }> }> {
    this.#p.stdin!.write(`oom ${memDir}\n`)
    await this.#lines.expect('ready', `floor oom ${memDir}`)
    return {
      oom: this.#lines.expect('oom', `floor oom ${memDir}`).then((w) => ({ wake: BigInt(w[0]!), seen: BigInt(w[1]!), kills: Number(w[2]) })),
    }
  }

  async close(): Promise<void> {
    this.#p.stdin!.end()
    if (this.#p.exitCode === null) await once(this.#p, 'exit')
  }
}
