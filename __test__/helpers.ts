import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { readdirSync, readlinkSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

import type { LifewatchEvent, Monitor } from '../src/index.js'

export const root = fileURLToPath(new URL('..', import.meta.url))

/** Each open fd of this process and what it is (its /proc/self/fd link). */
export function fdTable(): Map<string, string> {
  const table = new Map<string, string>()
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      table.set(fd, readlinkSync(`/proc/self/fd/${fd}`))
    } catch {
      // the directory's own fd, closed by now
    }
  }
  return table
}

/**
 * The fds open now that were not open at `before` (or are something else now): what a leak
 * looks like, whatever its kind. An fd closed meanwhile is not one: the runtime closes fds of
 * its own at times of its choosing (a file handle left to the garbage collector), which made a
 * bare count of /proc/self/fd one short now and then.
 */
export function addedFds(before: Map<string, string>): string[] {
  return [...fdTable()].filter(([fd, target]) => before.get(fd) !== target).map(([fd, target]) => `${fd} -> ${target}`)
}

/**
 * Open anonymous-inode fds (epoll, eventfd, pidfd, inotify, timerfd: every kind lifewatch opens
 * but its cgroup files) as `fd -> kind`. Unlike `fdTable()`, not moved by the loader's own
 * sockets and files, which tsx opens and closes during a run on Node 22 and 26.
 */
export function anonFds(): string[] {
  return readdirSync('/proc/self/fd').flatMap((fd) => {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`)
      return target.startsWith('anon_inode:') ? [`${fd} -> ${target}`] : []
    } catch {
      return [] // the directory's own fd, closed by the time it is read
    }
  })
}

/** A child process running `sh -c script`. */
export function sh(script: string): ChildProcess {
  return spawn('sh', ['-c', script], { stdio: 'ignore' })
}

export { nonChild } from '../packages/lifewatch-cli/src/nonchild.js'

/**
 * A non-child that exits with `code` after 200 ms while its parent (perl) only reaps it
 * a second later: for that second it is a zombie whose status /proc still holds.
 */
export async function lateReaper(code: number): Promise<{ pid: number; parent: ChildProcess }> {
  const script = `$|=1; my $p = fork // die; if (!$p) { select(undef,undef,undef,0.2); exit ${code} } print "$p\\n"; sleep 1; waitpid($p, 0)`
  const parent = spawn('perl', ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
  const lines = createInterface({ input: parent.stdout! })
  const [line] = (await once(lines, 'line')) as [string]
  lines.close()
  parent.stdout!.destroy()
  return { pid: Number(line), parent }
}

/** The next `n` events of a monitor, or fewer if it closes. */
export async function take(monitor: Monitor, n: number): Promise<LifewatchEvent[]> {
  const out: LifewatchEvent[] = []
  if (n === 0) return out
  for await (const ev of monitor) {
    out.push(ev)
    if (out.length === n) break
  }
  return out
}

/** Resolves when the child has been reaped by Node. */
export function reaped(child: ChildProcess): Promise<unknown> {
  return child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : once(child, 'exit')
}

type Ran = { code: number | null; signal: string | null; stdout: string; stderr: string; ms: number }
type RunOptions = { timeoutMs?: number; env?: NodeJS.ProcessEnv }

/** The built `lifewatch` command (npm test builds it first). */
export const CLI = `${root}packages/lifewatch-cli/dist/cli.js`

/** Runs `lifewatch <args>`; resolves with its exit status and output. */
export function cli(args: string[], opts: RunOptions = {}): Promise<Ran> {
  return run(process.execPath, [CLI, ...args], { timeoutMs: 30_000, ...opts })
}

/** Runs `node` with the tsx loader on a script; resolves with its exit status and output. */
export function node(args: string[], opts: RunOptions = {}): Promise<Ran> {
  return run(process.execPath, ['--import', 'tsx', ...args], opts)
}

/** Runs a command to completion (killed after the timeout); resolves with status and output. */
export async function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<Ran> {
  const t0 = Date.now()
  const p = spawn(cmd, args, { cwd: root, env: { ...process.env, ...opts.env } })
  let stdout = ''
  let stderr = ''
  p.stdout.on('data', (d) => (stdout += d))
  p.stderr.on('data', (d) => (stderr += d))
  const timer = setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs ?? 20_000)
  const [code, signal] = (await once(p, 'close')) as [number | null, string | null]
  clearTimeout(timer)
  return { code, signal, stdout, stderr, ms: Date.now() - t0 }
}

export const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url))

/** A child Node process (idle, with V8's worker threads) and the ID of one of its threads that
 *  is not the leader: those threads live as long as the process. */
export async function threaded(): Promise<{ child: ChildProcess; tid: number }> {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000); console.log("up")'], { stdio: ['ignore', 'pipe', 'ignore'] })
  await once(child.stdout!, 'data')
  const tid = readdirSync(`/proc/${child.pid}/task`).map(Number).find((id) => id !== child.pid)
  if (tid === undefined) throw new Error(`no thread besides the leader in ${child.pid}`)
  return { child, tid }
}
