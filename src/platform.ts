// Platform: what a containerd shim's platform owns — the OOM watcher (a Monitor with cgroup
// watches) and the cgroup manager (the cgroups it created). `close()` closes both,
// once, and reports what it released.
import { Cgroup, type CgroupLimits } from './cgroup.js'
import type { CgroupWatch } from './cgroup-watch.js'
import { LifewatchError, invalid } from './errors.js'
import type { LifewatchEvent } from './events.js'
import { Monitor } from './monitor.js'
import type { ReleasedFds } from './stats.js'
import type { CgroupManagerCloseResult } from './shutdown.js'
import { Task, trackOoms, type CgroupLike, type SpawnOptions } from './task.js'
import { callEach } from './listeners.js'
import { telemetry, type TelemetryOptions } from './telemetry.js'
import { within } from './timers.js'
import { checkAbortSignal, checkDuration, checkOptions, checkString, describe } from './validate.js'

/** The cgroup manager's factory: `Cgroup` (src/cgroup.ts) by default; tests pass doubles. */
export interface CgroupFactory {
  create(path: string, limits?: CgroupLimits, options?: { cgroupRoot?: string }): CgroupLike | Promise<CgroupLike>
}

export interface PlatformOptions extends TelemetryOptions {
  /** The OOM watcher (the platform is its consumer; its pending iteration does not keep Node
   *  alive, its watches do). Default: a new Monitor the platform owns. */
  oomWatcher?: Monitor
  /** The cgroup manager's factory. Default: lifewatch's `Cgroup`. */
  cgroups?: CgroupFactory
  /** A cgroup tree laid out like /sys/fs/cgroup instead of the mounted hierarchies (tests). */
  cgroupRoot?: string
  /**
   * At close, how long (ms) to wait for the final OOM check of watched cgroups already
   * deleted (their `removed` event). Default 1000.
   */
  drainTimeout?: number
}

export interface PlatformCloseResult {
  oomWatcher: ReleasedFds
  cgroupManager: CgroupManagerCloseResult
}

/** Any event of the OOM watcher (oom, pressure, populated, frozen, removed, exit, error). */
export type PlatformEvent = LifewatchEvent

const noFds = (): ReleasedFds => ({ epoll: 0, pidfd: 0, eventfd: 0, inotify: 0, psi: 0, control: 0, timerfd: 0, netlink: 0, kmsg: 0 })

function addFds(into: ReleasedFds, r: unknown): void {
  if (!r || typeof r !== 'object') return
  for (const k of Object.keys(into) as Array<keyof ReleasedFds>) {
    const v = (r as Record<string, unknown>)[k]
    if (typeof v === 'number') into[k] += v
  }
}

export class Platform {
  readonly oomWatcher: Monitor
  #telemetry: TelemetryOptions
  #cgroupFactory: CgroupFactory
  #cgroupRoot: string | undefined
  #drainMs: number
  #cgroups = new Set<CgroupLike>()
  #oomWatches = new Map<CgroupWatch, Task | undefined>()
  #listeners = new Set<(ev: PlatformEvent) => void>()
  #pump: Promise<void> | undefined
  #oomClosed: Promise<ReleasedFds> | undefined
  #managerClosed: Promise<CgroupManagerCloseResult> | undefined
  #closed: Promise<PlatformCloseResult> | undefined
  /** A close of either part (or of both) was asked for: no new cgroups or watches. */
  #closing = false
  #closeCalled = false

  constructor(options?: PlatformOptions) {
    const o = checkOptions<PlatformOptions>(options, 'options', {
      oomWatcher: true,
      cgroups: true,
      cgroupRoot: true,
      drainTimeout: true,
      tracerProvider: true,
      meterProvider: true,
    })
    this.#drainMs = checkDuration(o.drainTimeout ?? 1000, 'drainTimeout')
    this.oomWatcher = o.oomWatcher ?? new Monitor()
    this.#cgroupFactory = o.cgroups ?? Cgroup
    this.#cgroupRoot = o.cgroupRoot
    this.#telemetry = { tracerProvider: o.tracerProvider, meterProvider: o.meterProvider }
  }

  /** Cgroups the manager owns and has not removed yet. */
  get cgroups(): readonly CgroupLike[] {
    return [...this.#cgroups]
  }

  get closed(): boolean {
    return this.#closeCalled
  }

  /** Every event of the OOM watcher, after OOM kills were routed to their tasks. */
  onEvent(listener: (ev: PlatformEvent) => void): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  /** Creates a cgroup with limits through the cgroup manager, which then owns it. */
  async createCgroup(path: string, limits: CgroupLimits = {}): Promise<CgroupLike> {
    this.#checkOpen()
    const cg = await this.#cgroupFactory.create(path, limits, this.#cgroupRoot === undefined ? undefined : { cgroupRoot: this.#cgroupRoot })
    this.#cgroups.add(cg)
    return cg
  }

  /** Hands a cgroup to the manager: `close()` removes it. */
  adopt(cgroup: CgroupLike): void {
    this.#checkOpen()
    this.#cgroups.add(cgroup)
  }

  /**
   * Watches a task's cgroup for OOM kills on the OOM watcher; each kill is recorded on the task
   * (span events at its shutdown) and counted (`lifewatch.oom.kills`). Also the cgroup's
   * `populated`/`frozen`/`removed` events, which reach `onEvent` listeners. `path`: the task's
   * cgroup by default.
   */
  watchOom(task: Task, path?: string): CgroupWatch {
    if (!(task instanceof Task)) throw invalid(`task must be a Task, got ${describe(task)}`)
    path = checkString(path, 'path') ?? task.cgroupPath
    if (!path) throw invalid(`task ${task.pid} has no cgroup to watch`)
    const w = this.#watchOom(path, task)
    trackOoms(task, w)
    return w
  }

  /**
   * The OOM watch of a cgroup, registered before anything runs in it when spawning (counters
   * are baselined at registration: a kill before it would go unreported).
   */
  #watchOom(path: string, task: Task | undefined): CgroupWatch {
    this.#checkOpen()
    const w = this.oomWatcher.watchCgroup(path, { oom: true, events: false })
    const tel = telemetry(this.#telemetry)
    tel.oomWatchers.add(1)
    this.#oomWatches.set(w, task)
    w.onEvent((ev) => {
      if (ev.type === 'oom') tel.oomKills.add(ev.kills)
      else if (ev.type === 'removed' && this.#oomWatches.delete(w)) tel.oomWatchers.add(-1)
    })
    this.#startPump()
    return w
  }

  /**
   * Spawns a task into a new cgroup with `limits` (the manager creates and owns it, the OOM
   * watcher watches it from before the task's first instant). Without `cgroupPath`, a plain
   * spawn.
   */
  async spawn(
    cmd: string,
    args: string[],
    options: Omit<SpawnOptions, 'cgroup' | 'oomWatch'> & { cgroupPath?: string; limits?: CgroupLimits },
  ): Promise<Task> {
    const { cgroupPath, limits, ...spawnOptions } = options
    const tel = { ...this.#telemetry, ...spawnOptions }
    if (!cgroupPath) return Task.spawn(cmd, args, tel)
    const cgroup = await this.createCgroup(cgroupPath, limits)
    let oomWatch: CgroupWatch | undefined
    try {
      oomWatch = this.#watchOom(cgroup.path, undefined)
      const task = await Task.spawn(cmd, args, { ...tel, cgroup: this.#watched(cgroup, oomWatch), oomWatch })
      this.#oomWatches.set(oomWatch, task)
      return task
    } catch (e) {
      if (oomWatch && this.#oomWatches.delete(oomWatch)) {
        this.oomWatcher.unwatch(oomWatch)
        telemetry(this.#telemetry).oomWatchers.add(-1)
      }
      this.#cgroups.delete(cgroup)
      await cgroup.delete({ kill: true })
      throw e
    }
  }

  /**
   * The task's view of a cgroup made for it: removing it reads the OOM counters one last time
   * once it is empty (an empty cgroup cannot OOM again) and then ends the OOM watch at once,
   * instead of waiting for the kernel's word of the removal (for a v1 memory cgroup, tens of
   * milliseconds later), which `closeOomWatcher` would otherwise wait for.
   */
  #watched(cgroup: CgroupLike, oomWatch: CgroupWatch): CgroupLike {
    const watcher = this.oomWatcher
    return {
      path: cgroup.path,
      spawn: cgroup.spawn && ((cmd, args, options) => cgroup.spawn!(cmd, args, options)),
      async delete(options) {
        if (options?.kill && cgroup.kill) {
          try {
            await cgroup.kill(options.signal ? { signal: options.signal } : undefined)
          } catch (e) {
            if ((e as LifewatchError).code !== 'ERR_NO_SUCH_CGROUP') throw e
          }
          if (!watcher.closed) watcher.checkCgroup(oomWatch)
        }
        const done = await cgroup.delete(options)
        if (!watcher.closed && oomWatch.active) watcher.cgroupRemoved(oomWatch)
        return done
      },
    }
  }

  #startPump(): void {
    this.#pump ??= (async () => {
      for await (const ev of this.oomWatcher.events({ persistent: false })) callEach(this.#listeners, ev)
    })().catch(() => {})
  }

  /**
   * Closes the OOM watcher (every cgroup watch and its fds), after delivering what it had
   * already seen. Idempotent. `signal` ends the wait for the last OOM checks early.
   */
  closeOomWatcher(options?: { signal?: AbortSignal }): Promise<ReleasedFds> {
    const signal = checkAbortSignal(checkOptions<{ signal?: AbortSignal }>(options, 'options', { signal: true }).signal)
    return (this.#oomClosed ??= (async () => {
      // The OOM notification of a kill can trail the exit it caused when the exit is watched by
      // another monitor (v1 even notifies before it counts the kill). A watch whose cgroup was
      // deleted ends with a last look at the counters and `removed`: wait for that, bounded,
      // so every OOM kill reaches its task before the watcher closes.
      const ending = [...this.#oomWatches].filter(([w, task]) => w.active && task?.deleted)
      await within(this.#drainMs, signal, (s) => Promise.all(ending.map(([w]) => w.removed({ signal: s })))).catch(() => {})
      await new Promise((r) => setImmediate(r))
      const released = this.oomWatcher.close()
      if (this.#oomWatches.size > 0) telemetry(this.#telemetry).oomWatchers.add(-this.#oomWatches.size)
      this.#oomWatches.clear()
      await this.#pump
      return released
    })())
  }

  /**
   * Removes every cgroup the manager created or adopted (killing what is left in them) and
   * closes their fds. Every cgroup is attempted; failures reject with an AggregateError after.
   * A close that failed or was stopped (`signal`, a shutdown step's limit) may be called
   * again: the cgroups it could not remove are still the manager's.
   */
  closeCgroupManager(options?: { signal?: AbortSignal }): Promise<CgroupManagerCloseResult> {
    const signal = checkAbortSignal(checkOptions<{ signal?: AbortSignal }>(options, 'options', { signal: true }).signal)
    this.#closing = true
    return (this.#managerClosed ??= (async () => {
      const result: CgroupManagerCloseResult = { deleted: [], released: noFds() }
      const errors: unknown[] = []
      for (const cg of this.#cgroups) {
        try {
          addFds(result.released, await cg.delete(signal ? { kill: true, signal } : { kill: true }))
          result.deleted.push(cg.path)
          this.#cgroups.delete(cg)
        } catch (e) {
          // Already removed (by the task that owned it): nothing left to do.
          if ((e as LifewatchError).code === 'ERR_NO_SUCH_CGROUP') this.#cgroups.delete(cg)
          else errors.push(e)
        }
      }
      if (errors.length) {
        throw Object.assign(new AggregateError(errors, `cgroup manager: ${errors.length} cgroup(s) could not be removed`), { result })
      }
      return result
    })().catch((e: unknown) => {
      this.#managerClosed = undefined
      throw e
    }))
  }

  /** Closes the OOM watcher and the cgroup manager; both are attempted. Once it succeeded,
   *  later calls share its result; after a failure, a call tries again what failed. */
  close(): Promise<PlatformCloseResult> {
    this.#closeCalled = true
    return (this.#closed ??= (async () => {
      const [oom, mgr] = await Promise.allSettled([this.closeOomWatcher(), this.closeCgroupManager()])
      if (oom.status === 'rejected' || mgr.status === 'rejected') {
        const errors = [oom, mgr].flatMap((r) => (r.status === 'rejected' ? [r.reason] : []))
        throw new AggregateError(errors, 'platform close failed')
      }
      return { oomWatcher: oom.value, cgroupManager: mgr.value }
    })().catch((e: unknown) => {
      this.#closed = undefined
      throw e
    }))
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }

  #checkOpen(): void {
    if (this.#closing || this.#oomClosed) throw new LifewatchError('ERR_CLOSED', 'the platform is closed')
  }
}
