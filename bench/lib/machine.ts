// Machine facts for the report header: what the figures were measured on.
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import os from 'node:os'

import { root } from './natives.js'

export interface CgroupMount {
  mountPoint: string
  version: 1 | 2
  controllers: string[]
}

export interface MachineFacts {
  date: string
  kernel: string
  arch: string
  cpus: number
  cpuModel: string
  memoryGiB: number
  node: string
  cgroupLayout: 'v2' | 'v1' | 'hybrid' | 'none'
  cgroupMounts: CgroupMount[]
  selfCgroup: string[]
  pidMax: number
  nofile: string
  maxProcesses: string
  virtualization: string
  gitCommit: string
  /** 1/5/15-minute load averages when the run started: other work shares these machines. */
  loadAvg: number[]
}

/** cgroup mounts from /proc/self/mountinfo (fields after ` - `: fstype, source, super options). */
export function cgroupMounts(): CgroupMount[] {
  const out: CgroupMount[] = []
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [pre, post] = line.split(' - ')
    if (!pre || !post) continue
    const [fstype, , superOpts = ''] = post.split(' ')
    const mountPoint = pre.split(' ')[4]!
    if (fstype === 'cgroup2') out.push({ mountPoint, version: 2, controllers: [] })
    else if (fstype === 'cgroup') {
      const ctrl = superOpts.split(',').filter((o) => !['rw', 'ro', 'relatime', 'nosuid', 'nodev', 'noexec'].includes(o) && !o.startsWith('release_agent'))
      out.push({ mountPoint, version: 1, controllers: ctrl })
    }
  }
  return out
}

function limit(name: string): string {
  const m = new RegExp(`^${name}\\s+(\\S+)\\s+(\\S+)`, 'm').exec(readFileSync('/proc/self/limits', 'utf8'))
  return m ? `${m[1]} (hard ${m[2]})` : '?'
}

export function machineFacts(): MachineFacts {
  const mounts = cgroupMounts()
  const v1 = mounts.some((m) => m.version === 1)
  const v2 = mounts.some((m) => m.version === 2)
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8')
  const git = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' })
  const virt = spawnSync('systemd-detect-virt', [], { encoding: 'utf8' })
  return {
    date: new Date().toISOString(),
    kernel: os.release(),
    arch: os.arch(),
    cpus: os.cpus().length,
    cpuModel: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? '?',
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    cgroupLayout: v1 && v2 ? 'hybrid' : v2 ? 'v2' : v1 ? 'v1' : 'none',
    cgroupMounts: mounts,
    selfCgroup: readFileSync('/proc/self/cgroup', 'utf8').trim().split('\n'),
    pidMax: Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8')),
    nofile: limit('Max open files'),
    maxProcesses: limit('Max processes'),
    virtualization: virt.status === 0 || virt.stdout ? virt.stdout.trim() || 'none' : /hypervisor/.test(cpuinfo) ? 'hypervisor (cpuinfo flag)' : 'unknown',
    gitCommit: git.status === 0 ? git.stdout.trim() : 'unknown',
    loadAvg: os.loadavg().map((x) => Math.round(x * 100) / 100),
  }
}

export function describeMachine(m: MachineFacts): string[] {
  const v1 = m.cgroupMounts.filter((c) => c.version === 1).flatMap((c) => c.controllers)
  const v2 = m.cgroupMounts.filter((c) => c.version === 2).map((c) => c.mountPoint)
  return [
    `date ${m.date}  commit ${m.gitCommit}`,
    `kernel ${m.kernel} ${m.arch}, ${m.cpus} CPUs (${m.cpuModel}), ${m.memoryGiB} GiB, virtualization: ${m.virtualization}`,
    `cgroups: ${m.cgroupLayout}${v1.length ? `; v1 controllers: ${v1.join(' ')}` : ''}${v2.length ? `; cgroup2 at ${v2.join(', ')}` : ''}`,
    `node ${m.node}; pid_max ${m.pidMax}; open files ${m.nofile}; processes ${m.maxProcesses}`,
    `load average at start ${m.loadAvg.join(' ')} (other work on the machine)`,
  ]
}
