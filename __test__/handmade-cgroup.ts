// A v1 memory cgroup made by hand, shaped like the cgroup manager's `Cgroup` (CgroupLike), so
// Task/Platform/shutdown can be tested on a real OOM kill before that manager is merged.
// Root on a machine with the v1 memory controller only; `available()` says why not otherwise.
import { spawn } from 'node:child_process'
import { accessSync, constants, existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

import type { Monitor, Watch } from '../src/index.js'

const MEMORY = '/sys/fs/cgroup/memory'

export function unavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root to create cgroups'
  if (!existsSync(join(MEMORY, 'memory.limit_in_bytes'))) return `no cgroup v1 memory controller at ${MEMORY}`
  try {
    accessSync(MEMORY, constants.W_OK)
  } catch {
    return `${MEMORY} is not writable`
  }
  return undefined
}

export function handmadeCgroup(name: string, limitBytes: number) {
  const dir = join(MEMORY, name)
  mkdirSync(dir)
  writeFileSync(join(dir, 'memory.limit_in_bytes'), String(limitBytes))
  const memsw = join(dir, 'memory.memsw.limit_in_bytes')
  if (existsSync(memsw)) writeFileSync(memsw, String(limitBytes))
  const pids = () =>
    readFileSync(join(dir, 'cgroup.procs'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map(Number)
  return {
    path: dir,
    spawn(cmd: string, args: string[], options: { monitor: Monitor; stdio?: unknown }): Watch {
      // The shell joins the cgroup, then execs the command: everything it runs is inside.
      const child = spawn('sh', ['-c', `echo $$ > ${dir}/cgroup.procs && exec "$0" "$@"`, cmd, ...args], {
        stdio: 'ignore',
      })
      return options.monitor.watchPid(child.pid!)
    },
    async delete(options: { kill?: boolean } = {}) {
      if (!existsSync(dir)) return
      for (let i = 0; i < 200 && pids().length; i++) {
        if (options.kill) for (const pid of pids()) try { process.kill(pid, 'SIGKILL') } catch {}
        await new Promise((r) => setTimeout(r, 10))
      }
      rmdirSync(dir)
    },
  }
}
