// Which cgroups a process is in, how the hierarchies are laid out, and a cgroup's resource
// figures: reads, no watching.
import type { CgroupStats } from './events.js'
import { binding } from './native.js'
import { checkCgroupPath, checkOptions, checkPid, checkString } from './validate.js'

export interface Hierarchy {
  /** Where it is mounted. */
  mount: string
  /** Which part of the hierarchy the mount shows (`/` unless in a cgroup namespace). */
  root: string
}

export interface CgroupLayout {
  mode: 'v1' | 'v2' | 'hybrid'
  unified?: Hierarchy
  /** v1 hierarchies by controller (`memory`, `pids`, `cpu`, `name=systemd`...). */
  v1: Record<string, Hierarchy>
}

/** The cgroup layout of this system (or of a test tree laid out like /sys/fs/cgroup). */
export function cgroupLayout(options?: { cgroupRoot?: string }): CgroupLayout {
  const o = checkOptions<{ cgroupRoot?: string }>(options, 'options', { cgroupRoot: true })
  return binding.cgroupLayout(checkString(o.cgroupRoot, 'cgroupRoot'))
}

export interface ProcessCgroups {
  /** The process's directory in the unified hierarchy, where mounted. */
  unified?: string
  /** Its path inside the unified hierarchy (the `0::` line of /proc/<pid>/cgroup). */
  unifiedPath?: string
  /** Its directory per v1 controller. */
  v1: Record<string, string>
}

/** Which cgroups a process is in, as directories. `ERR_NO_SUCH_PROCESS` if it is gone. */
export function cgroupOf(pid: number, options?: { cgroupRoot?: string }): ProcessCgroups {
  checkPid(pid)
  const o = checkOptions<{ cgroupRoot?: string }>(options, 'options', { cgroupRoot: true })
  return binding.cgroupOf(pid, checkString(o.cgroupRoot, 'cgroupRoot'))
}

/** A resource snapshot of a cgroup: memory (current, peak, limit, event counters), pids. */
export function cgroupStats(path: string, options?: { cgroupRoot?: string }): CgroupStats {
  checkCgroupPath(path)
  const o = checkOptions<{ cgroupRoot?: string }>(options, 'options', { cgroupRoot: true })
  return binding.cgroupStats(path, checkString(o.cgroupRoot, 'cgroupRoot'))
}
