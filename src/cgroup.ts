import { abortError, LifewatchError, invalid } from './errors.js'
import type { CgroupStats } from './events.js'
import type { Monitor, MonitorSpawnOptions, SpawnedWatch } from './monitor.js'
import { binding, type NativeCancel, type NativeCgroup } from './native.js'
import type * as Binding from '../binding.cjs'
import { checkAbortSignal, checkBool, checkCgroupPath, checkDuration, checkOptions, checkPid, checkString, describe } from './validate.js'

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

export interface CgroupCreateOptions extends CgroupOptions {
  /** Take over a cgroup that exists already, overwriting its limits. Default false: an
   *  existing cgroup is `ERR_CGROUP_EXISTS`, since its limits and processes are someone else's. */
  adopt?: boolean
}

export interface CgroupSpawnOptions extends Omit<MonitorSpawnOptions, 'cgroup'> {
  /** The monitor that watches (and reaps) the child; its exit arrives there as an event. */
  monitor: Monitor
}

export interface CgroupWaitOptions {
  signal?: AbortSignal
  /** Milliseconds; past it the call rejects with ERR_TIMEOUT. Default: no limit. */
  timeout?: number
}

export interface DeleteOptions extends CgroupWaitOptions {
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

function checkLimit(name: string, v: unknown): number | string | undefined {
  if (v === undefined) return undefined
  if (typeof v === 'number' || typeof v === 'string') return v
  throw invalid(`${name} limit must be a number or a string, got ${describe(v)}`)
}

/**
 * Runs a native wait, cancellable by an AbortSignal: on abort the native side is told to
 * stop and the call rejects with AbortError at once.
 */
async function cancellable<T>(signal: AbortSignal | undefined, run: (cancel: NativeCancel | undefined) => Promise<T>): Promise<T> {
  if (!signal) return run(undefined)
  const cancel = new binding.NativeCancel()
  let onAbort: (() => void) | undefined
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => {
      cancel.cancel()
      reject(abortError(signal))
    }
    signal.addEventListener('abort', onAbort, { once: true })
  })
  const work = run(cancel)
  // Once aborted, how the cancelled wait ends is no longer anyone's to handle.
  work.catch(() => {})
  try {
    return await Promise.race([work, aborted])
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
  /** Set once `delete` succeeded: disposal then has nothing left to do. */
  #deleted = false

  private constructor(n: NativeCgroup) {
    this.#native = n
  }

  /**
   * Creates the cgroup and writes its limits; `ERR_CGROUP_EXISTS` if it exists already
   * (unless `adopt`). Invalid limits are ERR_INVALID_ARGUMENT and nothing is created; if any
   * later step fails, what was created is removed again.
   */
  static create(path: string, limits?: CgroupLimits, options?: CgroupCreateOptions): Cgroup {
    checkCgroupPath(path)
    const l = checkOptions<CgroupLimits>(limits, 'limits', { memory: true, swap: true, pids: true, cpu: true, cpuWeight: true })
    const o = checkOptions<CgroupCreateOptions>(options, 'options', { cgroupRoot: true, adopt: true })
    const root = checkString(o.cgroupRoot, 'cgroupRoot')
    const adopt = checkBool(o.adopt, 'adopt')
    const nl: Binding.NativeLimits = {
      memory: checkLimit('memory', l.memory),
      swap: checkLimit('swap', l.swap),
      pids: checkLimit('pids', l.pids),
      cpu: checkLimit('cpu', l.cpu),
      cpuWeight: checkLimit('cpuWeight', l.cpuWeight),
    }
    return new Cgroup(binding.NativeCgroup.create(path, nl, root, adopt))
  }

  /** An existing cgroup; ERR_NO_SUCH_CGROUP if it exists in no hierarchy. */
  static open(path: string, options?: CgroupOptions): Cgroup {
    checkCgroupPath(path)
    const root = checkString(checkOptions<CgroupOptions>(options, 'options', { cgroupRoot: true }).cgroupRoot, 'cgroupRoot')
    return new Cgroup(binding.NativeCgroup.open(path, root))
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
    this.#native.add(pid)
  }

  /** The PIDs in the cgroup, across hierarchies. */
  procs(): number[] {
    return this.#native.procs()
  }

  /**
   * Spawns a command inside the cgroup (as `monitor.spawn` with `cgroup: this`): placed there
   * before it execs, its pidfd taken at creation. Returns the monitor's watch of the child (its
   * exit is reaped and reported there).
   */
  spawn(command: string, args: readonly string[] = [], options?: CgroupSpawnOptions): SpawnedWatch {
    const o = checkOptions<CgroupSpawnOptions>(options, 'options', { monitor: true, stdio: true, env: true, cwd: true, argv0: true })
    if (!o.monitor) throw invalid('options.monitor is required: the child is watched and reaped by a Monitor')
    const { monitor, ...rest } = o
    return monitor.spawn(command, args, { ...rest, cgroup: this })
  }

  /**
   * Kills every process and resolves once the cgroup is really empty (no PID listed in any
   * hierarchy, `populated 0`): `cgroup.kill` where it exists, else freeze / SIGKILL each
   * member through a pidfd / thaw, repeated until empty.
   */
  async kill(options?: CgroupWaitOptions): Promise<KillReport> {
    const { signal, timeout } = this.#waitOptions(options)
    return cancellable(signal, (c) => this.#native.kill(timeout, c)) as Promise<KillReport>
  }

  /** Freezes every process; resolves once the kernel reports the cgroup frozen. */
  async freeze(options?: CgroupWaitOptions): Promise<void> {
    const { signal, timeout } = this.#waitOptions(options)
    return cancellable(signal, (c) => this.#native.freeze(true, timeout, c))
  }

  async thaw(options?: CgroupWaitOptions): Promise<void> {
    const { signal, timeout } = this.#waitOptions(options)
    return cancellable(signal, (c) => this.#native.freeze(false, timeout, c))
  }

  /** Resolves when the cgroup is empty; ERR_TIMEOUT past `timeout`, AbortError on abort. */
  async waitEmpty(options?: CgroupWaitOptions): Promise<void> {
    const { signal, timeout } = this.#waitOptions(options)
    const empty = await cancellable(signal, (c) => this.#native.waitEmpty(timeout, c))
    if (!empty) throw new LifewatchError('ERR_TIMEOUT', `cgroup ${this.path} still has processes after ${timeout} ms`)
  }

  /**
   * Resolves once a process runs in the cgroup, at once when one does: the state is read, not
   * inferred from `populated` events (the kernel coalesces quick changes). `ERR_TIMEOUT` past
   * `timeout`, AbortError on abort.
   */
  async waitPopulated(options?: CgroupWaitOptions): Promise<void> {
    await this.#waitState('populated', 'has no process', options)
  }

  /**
   * Resolves once the cgroup is frozen (`frozen: false`: thawed), at once when it is, whoever
   * froze it. `ERR_TIMEOUT` past `timeout`, AbortError on abort.
   */
  async waitFrozen(frozen = true, options?: CgroupWaitOptions): Promise<void> {
    await this.#waitState(checkBool(frozen, 'frozen') ? 'frozen' : 'thawed', frozen ? 'is not frozen' : 'is still frozen', options)
  }

  async #waitState(state: 'populated' | 'frozen' | 'thawed', not: string, options: unknown): Promise<void> {
    const { signal, timeout } = this.#waitOptions(options)
    const holds = await cancellable(signal, (c) => this.#native.waitState(state, timeout, c))
    if (!holds) throw new LifewatchError('ERR_TIMEOUT', `cgroup ${this.path} ${not} after ${timeout} ms`)
  }

  /**
   * Removes the cgroup from every hierarchy, and the parent directories `create` made. A busy
   * cgroup is retried until `timeout` (no limit by default), then ERR_TIMEOUT. `kill: true`
   * kills everything first. A cgroup already removed (by someone else, or an earlier `delete`)
   * is what delete wants: it succeeds.
   */
  async delete(options?: DeleteOptions): Promise<void> {
    const o = checkOptions<DeleteOptions>(options, 'options', { kill: true, signal: true, timeout: true })
    const kill = checkBool(o.kill, 'kill') ?? false
    const { signal, timeout } = this.#waitOptions({ signal: o.signal, timeout: o.timeout })
    await cancellable(signal, (c) => this.#native.delete(kill, timeout, c))
    this.#deleted = true
  }

  /** Current usage: memory (with its event counters), swap, pids, CPU time, PSI, population, freezing. */
  stats(): CgroupUsage {
    const { stats, ...rest } = this.#native.stats()
    const out: CgroupUsage = { ...stats, ...rest }
    return out
  }

  /** Kills everything and deletes the cgroup; nothing once it was deleted. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (!this.#deleted) await this.delete({ kill: true })
  }

  #waitOptions(options: unknown): { signal: AbortSignal | undefined; timeout: number | undefined } {
    const o = checkOptions<CgroupWaitOptions>(options, 'options', { signal: true, timeout: true })
    const signal = checkAbortSignal(o.signal)
    const timeout = o.timeout === undefined ? undefined : checkDuration(o.timeout, 'timeout')
    return { signal, timeout: timeout === Infinity ? undefined : timeout }
  }
}
