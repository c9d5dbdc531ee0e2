// The end summary of `run`, as `systemd-run --wait` prints it: result, how the command ended,
// runtime, CPU time, memory and pids peaks, OOM kills. Figures are the cgroup's, read when the
// command ended (before its cgroup is removed); without a cgroup only what the exit tells.
import { monotonicTime, type CgroupStats, type ExitEvent, type ShutdownResult } from 'lifewatch'

import type { Record } from './format.js'

import { signalNumber } from './units.js'

/** systemd's names for how a unit ended. */
export type Result = 'success' | 'exit-code' | 'signal' | 'core-dump' | 'oom-kill' | 'timeout'

export interface Summary {
  result: Result
  exitCode: number
  signal?: string
  runtimeMs?: number
  cpuUserUsec?: number
  cpuSystemUsec?: number
  memoryPeak?: number
  pidsPeak?: number
  oomKills: number
}

/** The status a shell would report: the exit code, or 128 + the signal number. */
export function exitStatus(exit: ExitEvent | undefined): number {
  if (exit?.exitCode !== undefined) return exit.exitCode
  const n = exit?.signal ? signalNumber(exit.signal) : undefined
  return n === undefined ? 1 : 128 + n
}

export function summarize(exit: ExitEvent | undefined, started: bigint, stats: CgroupStats | undefined, oomKills: number, deadline: boolean): Summary {
  const s: Summary = { result: 'success', exitCode: exitStatus(exit), oomKills }
  if (exit?.signal) s.signal = exit.signal
  s.result = deadline ? 'timeout' : oomKills > 0 && exit?.signal === 'SIGKILL' ? 'oom-kill' : exit?.core ? 'core-dump' : exit?.signal ? 'signal' : s.exitCode === 0 ? 'success' : 'exit-code'
  if (exit) s.runtimeMs = Number(exit.time - started) / 1e6
  if (stats?.cpuUserUsec !== undefined) s.cpuUserUsec = stats.cpuUserUsec
  if (stats?.cpuSystemUsec !== undefined) s.cpuSystemUsec = stats.cpuSystemUsec
  if (stats?.memoryPeak !== undefined) s.memoryPeak = stats.memoryPeak
  if (stats?.pidsPeak !== undefined) s.pidsPeak = stats.pidsPeak
  return s
}

const ms = (n: number) => (n >= 1000 ? `${(n / 1000).toFixed(3)}s` : `${n.toFixed(1)}ms`)

/** Bytes as systemd prints them: 1.2M, 512K, 3.0G. */
export function bytes(n: number): string {
  const units = ['B', 'K', 'M', 'G', 'T']
  let v = n
  let i = 0
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return i === 0 ? `${v}B` : `${v.toFixed(1)}${units[i]}`
}

export function summaryLines(s: Summary): string[] {
  const ended = s.signal ? `code=${s.result === 'core-dump' ? 'dumped' : 'killed'}/signal=${s.signal.replace(/^SIG/, '')}` : `code=exited/status=${s.exitCode}`
  const lines = [`Finished with result: ${s.result}`, `Main processes terminated with: ${ended}`]
  if (s.runtimeMs !== undefined) lines.push(`Service runtime: ${ms(s.runtimeMs)}`)
  if (s.cpuUserUsec !== undefined && s.cpuSystemUsec !== undefined) {
    lines.push(`CPU time consumed: ${ms((s.cpuUserUsec + s.cpuSystemUsec) / 1000)} (user ${ms(s.cpuUserUsec / 1000)}, system ${ms(s.cpuSystemUsec / 1000)})`)
  }
  if (s.memoryPeak !== undefined) lines.push(`Memory peak: ${bytes(s.memoryPeak)}`)
  if (s.pidsPeak !== undefined) lines.push(`Pids peak: ${s.pidsPeak}`)
  lines.push(`OOM kills: ${s.oomKills}`)
  return lines
}

/** The `shutdown` line: how the command ended (`status` is lifewatch's exit status for it) and what the shutdown did. */
export function shutdownRecord(watch: number, r: ShutdownResult, status: number, summary?: Summary): Record {
  const { exitCode: _, signal: __, ...figures } = summary ?? { oomKills: r.oomKills }
  return {
    type: 'shutdown',
    watch,
    pid: r.pid,
    status,
    ...(r.exit?.exitCode !== undefined ? { exitCode: r.exit.exitCode } : {}),
    ...(r.exit?.signal ? { signal: r.exit.signal } : {}),
    ...figures,
    killed: r.killed,
    forced: r.forced,
    cgroupsRemoved: r.cgroupsRemoved,
    durationsMs: r.durations,
    errors: r.errors.map((e) => e.message),
    time: monotonicTime(),
  }
}
