import { AbortError, LifewatchError, fromNative, invalid, native } from './errors.js'
import { internals, type Monitor } from './monitor.js'
import { binding, type NativeCgroup } from './native.js'
import type * as Binding from '../binding.cjs'
import { checkAbortSignal, checkBool, checkDuration, checkOptions, checkPid, describe } from './validate.js'
import { cgroupStats as toCgroupStats, type CgroupStats } from './events.js'
import type { Watch } from './watch.js'

/** A byte size (`67108864`, `'64M'`, `'1.5G'`, `'512k'`) or `'max'`. */
export type ByteLimit = number | string

export interface CgroupLimits {
  /** v2 `memory.max`, v1 `memory.limit_in_bytes`. */
  memory?: ByteLimit
  /** Swap on top of memory: v2 `memory.swap.max`; v1 `memory.memsw.limit_in_bytes` = memory + swap. */
  swap?: ByteLimit
  /** `pids.max`: a whole number or `'max'`. */
  pids?: number | string
  /** CPUs (`0.5`, `2`, `'1.5'`), `'max'`, or `'<quota> <period>'` in microseconds (v2 `cpu.max`, v1 `cpu.cfs_*`). */
  cpu?: number | string
  /** v2 `cpu.weight` 1..10000 (v1 `cpu.shares` derived from it). */
  cpuWeight?: number | string
}

export interface CgroupOptions {
  /** A test tree laid out like /sys/fs/cgroup instead of the mounted hierarchies. */
  cgroupRoot?: string
}

export type StdioOption = 'inherit' | 'ignore' | number

export interface CgroupSpawnOptions {
  /** The monitor that watches (and reaps) the child; its exit arrives there as an event. */
  monitor: Monitor
  /** One value for all three, or one per slot: 'inherit' (default), 'ignore' (/dev/null) or an fd. */
  stdio?: StdioOption | [StdioOption, StdioOption, StdioOption]
  /** The whole environment (default: this process's). */
  env?: Record<string, string>
  cwd?: string
  argv0?: string
}

export interface WaitOptions {
  signal?: AbortSignal
  /** Milliseconds; past it the call rejects with ERR_CGROUP_BUSY. Default: no limit. */
  timeout?: number
}

export interface DeleteOptions extends WaitOptions {
  /** Kill every process first. Default false. */
  kill?: boolean
}

export interface KillReport {
  /** `'cgroup.kill'`, `'signal'` (freeze, SIGKILL each member through a pidfd, thaw) or `'none'`. */
  method: 'cgroup.kill' | 'signal' | 'none'
  /** Processes signalled one by one. */
  signalled: number
  /** Checks made, each after a kernel notification. */
  rounds: number
}

/** The watchers' resource snapshot (`cgroupStats`) plus what the manager knows. */
export interface CgroupUsage extends CgroupStats {
  pidsMax?: number
  /** Processes listed in cgroup.procs across hierarchies. */
  procs: number
  populated?: boolean
  frozen?: boolean
}

/** A spawned child: its exit arrives on the monitor, and through `wait()`. */
export type SpawnedWatch = Watch & { readonly placement: 'clone_into_cgroup' | 'joined_in_child' }

function checkPath(path: unknown): string {
  if (typeof path !== 'string' || path.length === 0) throw invalid(`cgroup path must be a non-empty string, got ${describe(path)}`)
  return path
}

function checkRoot(opts: Partial<CgroupOptions>): string | undefined {
  if (opts.cgroupRoot !== undefined && typeof opts.cgroupRoot !== 'string') {
    throw invalid(`cgroupRoot must be a string, got ${describe(opts.cgroupRoot)}`)
  }
  return opts.cgroupRoot
}

function checkLimit(name: string, v: unknown): number | string | undefined {
  if (v === undefined) return undefined
  if (typeof v === 'number' || typeof v === 'string') return v
  throw invalid(`${name} limit must be a number or a string, got ${describe(v)}`)
}

function stdioSlot(v: unknown, i: number): number {
  if (v === 'inherit' || v === undefined) return -1
  if (v === 'ignore') return -2
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0) return v
  throw invalid(`stdio[${i}] must be 'inherit', 'ignore' or an fd, got ${describe(v)}`)
}

/**
 * Runs a native wait, cancellable by an AbortSignal: on abort the native side is told to
 * stop and the call rejects with AbortError at once.
 */
async function cancellable<T>(signal: AbortSignal | undefined, run: (cancel: Binding.NativeCancel | null) => Promise<T>): Promise<T> {
  if (signal?.aborted) throw new AbortError(undefined, { cause: signal.reason })
  if (!signal) {
    try {
      return await run(null)
    } catch (e) {
      throw fromNative(e)
    }
  }
  const cancel = native(() => new binding.NativeCancel())
  let onAbort: (() => void) | undefined
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => {
      cancel.cancel()
      reject(new AbortError(undefined, { cause: signal.reason }))
    }
    signal.addEventListener('abort', onAbort, { once: true })
  })
  try {
    return await Promise.race([run(cancel).catch((e) => Promise.reject(fromNative(e))), aborted])
  } finally {
    signal.removeEventListener('abort', onAbort!)
  }
}

/**
 * One cgroup across every hierarchy it needs (unified, and v1 memory/pids/cpu/freezer on
 * v1 and hybrid hosts). Kills and waits are driven by kernel notifications, never polling.
 */
export class Cgroup implements AsyncDisposable {
  #native: NativeCgroup

  private constructor(n: NativeCgroup) {
    this.#native = n
  }

  /**
   * Creates the cgroup (or takes over an existing one) and writes its limits. Invalid limits
   * are ERR_INVALID_ARGUMENT and nothing is created; if any later step fails, what was created
   * is removed again.
   */
  static create(path: string, limits?: CgroupLimits, options?: CgroupOptions): Cgroup {
    checkPath(path)
    const l = checkOptions<CgroupLimits>(limits, 'limits', { memory: true, swap: true, pids: true, cpu: true, cpuWeight: true })
    const root = checkRoot(checkOptions<CgroupOptions>(options, 'options', { cgroupRoot: true }))
    const nl: Binding.NativeLimits = {
      memory: checkLimit('memory', l.memory),
      swap: checkLimit('swap', l.swap),
      pids: checkLimit('pids', l.pids),
      cpu: checkLimit('cpu', l.cpu),
      cpuWeight: checkLimit('cpuWeight', l.cpuWeight),
    }
    return new Cgroup(native(() => binding.NativeCgroup.create(path, nl, root)))
  }

  /** An existing cgroup; ERR_NO_SUCH_CGROUP if it exists in no hierarchy. */
  static open(path: string, options?: CgroupOptions): Cgroup {
    checkPath(path)
    const root = checkRoot(checkOptions<CgroupOptions>(options, 'options', { cgroupRoot: true }))
    return new Cgroup(native(() => binding.NativeCgroup.open(path, root)))
  }

  /** The path inside the hierarchies, with a leading slash. */
  get path(): string {
    return this.#native.path
  }

  /** Its directory per hierarchy: `unified`, and each v1 controller. */
  get dirs(): Record<string, string> {
    return Object.fromEntries(this.#native.dirs.map((d) => [d.controller, d.path]))
  }

  /** Moves a process into the cgroup in every hierarchy. */
  add(pid: number): void {
    checkPid(pid)
    native(() => this.#native.add(pid))
  }

  /** The PIDs in the cgroup, across hierarchies. */
  procs(): number[] {
    return native(() => this.#native.procs())
  }

  /**
   * Spawns a command inside the cgroup: placed there before it execs (clone3
   * CLONE_INTO_CGROUP, or joining in the child), its pidfd taken at creation. Returns the
   * monitor's Watch of the child (its exit is reaped and reported there).
   */
  spawn(command: string, args: readonly string[] = [], options?: CgroupSpawnOptions): SpawnedWatch {
    if (typeof command !== 'string' || command.length === 0) throw invalid(`command must be a non-empty string, got ${describe(command)}`)
    if (!Array.isArray(args) || args.some((a) => typeof a !== 'string')) throw invalid('args must be an array of strings')
    const o = checkOptions<CgroupSpawnOptions>(options, 'options', { monitor: true, stdio: true, env: true, cwd: true, argv0: true })
    if (!o.monitor) throw invalid('options.monitor is required: the child is watched and reaped by a Monitor')
    const stdio = Array.isArray(o.stdio) ? o.stdio : [o.stdio, o.stdio, o.stdio]
    if (stdio.length !== 3) throw invalid('stdio must have three entries')
    let env: string[] | undefined
    if (o.env !== undefined) {
      if (o.env === null || typeof o.env !== 'object') throw invalid('env must be an object')
      env = Object.entries(o.env).flatMap(([k, v]) => {
        if (typeof v !== 'string') throw invalid(`env.${k} must be a string, got ${describe(v)}`)
        return [k, v]
      })
    }
    for (const [k, v] of [['cwd', o.cwd], ['argv0', o.argv0]] as const) {
      if (v !== undefined && typeof v !== 'string') throw invalid(`${k} must be a string, got ${describe(v)}`)
    }
    const monitor = o.monitor
    const nm = internals.native(monitor)
    const s = native(() =>
      this.#native.spawn(nm, command, [...args], { stdio: stdio.map(stdioSlot), env, cwd: o.cwd, argv0: o.argv0 }),
    )
    const w = internals.adopt(monitor, s.watch, s.pid)
    Object.defineProperty(w, 'placement', { value: s.placement, enumerable: true })
    return w as SpawnedWatch
  }

  /**
   * Kills every process and resolves once the cgroup is really empty (no PID listed in any
   * hierarchy, `populated 0`): `cgroup.kill` where it exists, else freeze / SIGKILL each
   * member through a pidfd / thaw, repeated until empty.
   */
  async kill(options?: WaitOptions): Promise<KillReport> {
    const { signal, timeout } = this.#waitOptions(options)
    return cancellable(signal, (c) => this.#native.kill(timeout, c)) as Promise<KillReport>
  }

  /** Freezes every process; resolves once the kernel reports the cgroup frozen. */
  async freeze(options?: WaitOptions): Promise<void> {
    const { signal, timeout } = this.#waitOptions(options)
    return cancellable(signal, (c) => this.#native.freeze(true, timeout, c))
  }

  async thaw(options?: WaitOptions): Promise<void> {
    const { signal, timeout } = this.#waitOptions(options)
    return cancellable(signal, (c) => this.#native.freeze(false, timeout, c))
  }

  /** Resolves when the cgroup is empty; ERR_CGROUP_BUSY past `timeout`, AbortError on abort. */
  async waitEmpty(options?: WaitOptions): Promise<void> {
    const { signal, timeout } = this.#waitOptions(options)
    const empty = await cancellable(signal, (c) => this.#native.waitEmpty(timeout, c))
    if (!empty) throw new LifewatchError('ERR_CGROUP_BUSY', `cgroup ${this.path} still has processes after ${timeout} ms`)
  }

  /**
   * Removes the cgroup from every hierarchy. A busy cgroup is retried until `timeout`
   * (default 10 s), then ERR_CGROUP_BUSY. `kill: true` kills everything first.
   */
  async delete(options?: DeleteOptions): Promise<void> {
    const o = checkOptions<DeleteOptions>(options, 'options', { kill: true, signal: true, timeout: true })
    const kill = checkBool(o.kill, 'kill') ?? false
    const { signal, timeout } = this.#waitOptions({ signal: o.signal, timeout: o.timeout })
    return cancellable(signal, (c) => this.#native.delete(kill, timeout, c))
  }

  /** Current usage: memory (with its event counters), swap, pids, CPU time, PSI, population, freezing. */
  stats(): CgroupUsage {
    const u = native(() => this.#native.stats())
    const s = u.stats
    const out: CgroupUsage = { ...toCgroupStats(s), procs: u.procs }
    if (u.pidsMax != null) out.pidsMax = u.pidsMax
    if (u.populated != null) out.populated = u.populated
    if (u.frozen != null) out.frozen = u.frozen
    return out
  }

  /** Kills everything and deletes the cgroup. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.delete({ kill: true })
  }

  #waitOptions(options: unknown): { signal: AbortSignal | undefined; timeout: number | undefined } {
    const o = checkOptions<WaitOptions>(options, 'options', { signal: true, timeout: true })
    const signal = checkAbortSignal(o.signal)
    const timeout = o.timeout === undefined ? undefined : checkDuration(o.timeout, 'timeout')
    return { signal, timeout: timeout === Infinity ? undefined : timeout }
  }
}
