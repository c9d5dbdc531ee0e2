// Starting `run`'s command: the cgroup is created as its own step, so a cgroup failure and an
// exec failure are never confused. Limits are honoured or the run fails (exit 125), as
// `docker run -m` and `systemd-run -p MemoryMax=` do, unless --best-effort; a command that
// cannot be run is 127 (not found) or 126 (found, not runnable), as a shell says it.
import { Cgroup, LifewatchError, Platform, Task, type CgroupLimits, type Monitor, type TelemetryOptions } from 'lifewatch'

import type { Channel } from './channel.js'
import { EXIT_CANNOT_RUN, EXIT_FAILURE, EXIT_NOT_FOUND } from './usage.js'

/** A start that failed: the exit status and the one line that says why. */
export class LaunchError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message)
  }
}

export interface Launch {
  cmd: string
  args: string[]
  cgroupPath: string
  limits: CgroupLimits
  /** The flags that set the limits, as given (`--memory 32M`), for messages. */
  limitFlags: string[]
  bestEffort: boolean
  monitor: Monitor
  telemetry: TelemetryOptions
  channel: Channel
}

/** A platform whose cgroup manager reports its creation failures to `onFailure`. */
export function platformFor(telemetry: TelemetryOptions, onFailure: (e: unknown) => void): Platform {
  const cgroups = {
    async create(path: string, limits?: CgroupLimits, options?: { cgroupRoot?: string }) {
      try {
        return await Cgroup.create(path, limits, options)
      } catch (e) {
        onFailure(e)
        throw e
      }
    },
  }
  return new Platform({ ...telemetry, cgroups })
}

const ENOENT = 2
const EACCES = 13

/** Starts the command in its cgroup (or, where allowed, without one). */
export async function launch(l: Launch, platform: Platform, cgroupFailure: () => unknown): Promise<Task> {
  const spawnOpts = { monitor: l.monitor, stdio: 'inherit' as const, ...l.telemetry }
  try {
    return await platform.spawn(l.cmd, l.args, { ...spawnOpts, cgroupPath: l.cgroupPath, limits: l.limits })
  } catch (e) {
    if (e !== cgroupFailure()) throw execFailure(l.cmd, e)
    noCgroup(l, e)
  }
  try {
    return await Task.spawn(l.cmd, l.args, spawnOpts)
  } catch (e) {
    throw execFailure(l.cmd, e)
  }
}

/** The cgroup could not be made: fail (limits asked for, or a bad path), or say what is lost and go on. */
function noCgroup(l: Launch, e: unknown): void {
  if (!(e instanceof LifewatchError)) throw e
  const why = `${e.code}: ${e.message}`
  const refused = ['ERR_PERMISSION', 'ERR_UNSUPPORTED_KERNEL', 'ERR_NO_SUCH_CGROUP'].includes(e.code)
  if (!refused) throw new LaunchError(EXIT_FAILURE, `cannot create cgroup ${l.cgroupPath}${l.limitFlags.length ? ` with ${l.limitFlags.join(' ')}` : ''}: ${why}`)
  if (l.limitFlags.length && !l.bestEffort) {
    throw new LaunchError(
      EXIT_FAILURE,
      `cannot apply ${l.limitFlags.join(' ')}: cgroup ${l.cgroupPath} cannot be created (${why}); ` +
        `run as root, or give --parent a cgroup subtree delegated to you, or add --best-effort to run without the limits`,
    )
  }
  l.channel.warn(`cannot create cgroup ${l.cgroupPath} (${why})`)
  l.channel.warn(`running without one: ${l.limitFlags.length ? `${l.limitFlags.join(' ')} NOT applied (--best-effort), ` : ''}no OOM watching, orphans still reaped`)
}

/** An error from starting the command, as its exit status. */
function execFailure(cmd: string, e: unknown): LaunchError {
  // Node's own spawn errors can come through as they are (ENOTDIR): read them the same way.
  const err = e as { code?: string; errno?: number; syscall?: string; message?: string }
  const line = `cannot run ${cmd}: ${e instanceof LifewatchError ? `${err.code}: ` : ''}${err.message ?? String(e)}`
  // Kernel errnos come as positive numbers or, Node style, negative.
  const errno = Math.abs(err.errno ?? 0)
  const exec = err.syscall === 'execve' || err.syscall?.startsWith('spawn') === true
  if (err.code === 'ERR_NO_SUCH_COMMAND' || (exec && errno === ENOENT)) return new LaunchError(EXIT_NOT_FOUND, line)
  if (exec || (err.code === 'ERR_PERMISSION' && errno === EACCES)) return new LaunchError(EXIT_CANNOT_RUN, line)
  return new LaunchError(EXIT_FAILURE, line)
}
