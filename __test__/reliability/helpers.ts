// Shared by the reliability specs (`npm run reliability`): fd kinds from /proc/self/fd, the core's
// counters, RSS, helper binaries, and the report lines `npm run reliability` sums up.
import { execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { appendFileSync, existsSync, readdirSync, readlinkSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'

import { fdStats, type FdKind } from '../../src/index.js'
import { fdTable, root } from '../helpers.js'

export { addedFds, fdTable } from '../helpers.js'

export const KINDS: FdKind[] = ['epoll', 'pidfd', 'eventfd', 'inotify', 'psi', 'control']

/** What the kernel says each fd of this process is, by lifewatch's kinds: anon inodes, PSI
 *  files (`*.pressure`, /proc/pressure/*) and other cgroupfs files and directories (control). */
export function procKinds(): Record<FdKind, number> {
  const n = Object.fromEntries(KINDS.map((k) => [k, 0])) as Record<FdKind, number>
  for (const fd of readdirSync('/proc/self/fd')) {
    let target: string
    try {
      target = readlinkSync(`/proc/self/fd/${fd}`)
    } catch {
      continue // the directory's own fd, closed by now
    }
    if (target === 'anon_inode:[eventpoll]') n.epoll++
    else if (target === 'anon_inode:[pidfd]') n.pidfd++
    else if (target === 'anon_inode:[eventfd]') n.eventfd++
    else if (target === 'anon_inode:inotify') n.inotify++
    else if (target.startsWith('/proc/pressure/') || target.endsWith('.pressure')) n.psi++
    else if (target.startsWith('/sys/fs/cgroup')) n.control++
  }
  return n
}

export function coreInUse(): Record<FdKind, number> {
  const s = fdStats()
  return Object.fromEntries(KINDS.map((k) => [k, s[k].inUse])) as Record<FdKind, number>
}

/** A point to compare against: Node itself holds an epoll and eventfds, so kinds are deltas. */
export interface Baseline {
  proc: Record<FdKind, number>
  core: Record<FdKind, number>
  /** Every open fd and what it is. */
  table: Map<string, string>
}

export function baseline(): Baseline {
  return { proc: procKinds(), core: coreInUse(), table: fdTable() }
}

/** Per kind: (kernel's count - baseline) - (core's in-use - baseline); all zero when exact. */
export function mismatch(b: Baseline): Partial<Record<FdKind, number>> {
  // fdStats() first: asked while an exit is being delivered, it first closes what that turn
  // ended (closed right after the delivery otherwise; the fds spec checks that too).
  const core = coreInUse()
  const proc = procKinds()
  const off: Partial<Record<FdKind, number>> = {}
  for (const k of KINDS) {
    const d = proc[k] - b.proc[k] - (core[k] - b.core[k])
    if (d !== 0) off[k] = d
  }
  return off
}

export function rssKiB(): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))
  return m ? Number(m[1]) : 0
}

export interface ReportLine {
  section: string
  case: string
  fdsLeaked: number
  eventsLost: number
  [extra: string]: unknown
}

/** Appends one line for `npm run reliability` (when it set the report path). */
export function report(line: ReportLine): void {
  const path = process.env.LIFEWATCH_RELIABILITY_REPORT
  if (path) appendFileSync(path, JSON.stringify({ runner: 'ava', ...line }) + '\n')
}

/** target/<name>, compiled from tools/<name>.c when missing or stale. */
export function tool(name: string): string {
  const src = join(root, `tools/${name}.c`)
  const bin = join(root, `target/${name}`)
  if (!existsSync(bin) || statSync(bin).mtimeMs < statSync(src).mtimeMs) {
    execFileSync('cc', ['-O2', '-Wall', '-pthread', '-o', bin, src], { stdio: 'inherit' })
  }
  return bin
}

/** target/nopidfd (tools/nopidfd.c): runs a command as if on a kernel without pidfd. */
export const nopidfd = (): string => tool('nopidfd')

/** Whether a command exists on PATH. */
export function have(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

export const isRoot = process.getuid?.() === 0

/** Runs a command line (argv) and collects its output; kills it after `timeoutMs`. */
export async function run(
  argv: string[],
  opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv; input?: string } = {},
): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string; ms: number }> {
  const t0 = Date.now()
  const p = spawn(argv[0], argv.slice(1), { cwd: root, env: { ...process.env, ...opts.env } })
  let stdout = ''
  let stderr = ''
  p.stdout.on('data', (d) => (stdout += d))
  p.stderr.on('data', (d) => (stderr += d))
  p.stdin.end(opts.input ?? '')
  const timer = setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs ?? 60_000)
  const [code, signal] = (await once(p, 'close')) as [number | null, string | null]
  clearTimeout(timer)
  return { code, signal, stdout, stderr, ms: Date.now() - t0 }
}

/** `node --import tsx <args>` as argv, for `run` and for wrapping in unshare/setpriv/nopidfd. */
export function nodeArgv(...args: string[]): string[] {
  return [process.execPath, '--import', 'tsx', ...args]
}

export const fixture = (name: string) => join(root, '__test__/reliability/fixtures', name)

/** The last JSON line a fixture printed. */
export function lastJson<T>(stdout: string): T {
  const lines = stdout.trim().split('\n')
  return JSON.parse(lines[lines.length - 1]) as T
}
