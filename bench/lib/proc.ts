// What the kernel says about this process: memory, context switches (per thread) and CPU
// time, read from /proc/self (CPU time of another process too). Used for the scale scenario's
// idle cost and the burst's observer CPU.
import { readdirSync, readFileSync } from 'node:fs'

const CLK_TCK = 100 // USER_HZ, fixed at 100 on Linux for /proc's clock_t fields

function field(status: string, name: string): number {
  const m = new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(status)
  return m ? Number(m[1]) : NaN
}

export interface ThreadCounters {
  tid: number
  name: string
  voluntary: number
  involuntary: number
  /** utime + stime in ms (clock ticks: 10 ms resolution). */
  cpuMs: number
}

export function threads(): ThreadCounters[] {
  const out: ThreadCounters[] = []
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const dir = `/proc/self/task/${tid}`
      const status = readFileSync(`${dir}/status`, 'utf8')
      const stat = readFileSync(`${dir}/stat`, 'utf8')
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      // Fields 14 and 15 (utime, stime) are rest[11] and rest[12].
      const cpuMs = ((Number(rest[11]) + Number(rest[12])) * 1000) / CLK_TCK
      out.push({
        tid: Number(tid),
        name: readFileSync(`${dir}/comm`, 'utf8').trim(),
        voluntary: field(status, 'voluntary_ctxt_switches'),
        involuntary: field(status, 'nonvoluntary_ctxt_switches'),
        cpuMs,
      })
    } catch {
      // a thread that ended between readdir and read
    }
  }
  return out
}

/** CPU time each thread of a process has run, ns by thread id (schedstat: ns resolution). */
export function runtimes(pid: number | 'self' = 'self'): Map<number, number> {
  const out = new Map<number, number>()
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      out.set(Number(tid), Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]))
    } catch {
      // a thread that ended between readdir and read
    }
  }
  return out
}

/** ms of CPU between two `runtimes` of one process: all threads, and the one given. */
export function ranMs(before: Map<number, number>, after: Map<number, number>, thread: number): { all: number; thread: number } {
  let all = 0
  for (const [tid, ns] of after) all += ns - (before.get(tid) ?? 0)
  return { all: all / 1e6, thread: ((after.get(thread) ?? 0) - (before.get(thread) ?? 0)) / 1e6 }
}

/** Resident set size of this process in bytes. */
export function rssBytes(): number {
  return field(readFileSync('/proc/self/status', 'utf8'), 'VmRSS') * 1024
}

export function openFds(): number {
  return readdirSync('/proc/self/fd').length
}

export interface IdleCost {
  seconds: number
  /** Voluntary context switches of every thread of the process (each one a wakeup). */
  wakeups: number
  /** ... of the lifewatch reactor thread(s) alone. */
  reactorWakeups: number
  involuntary: number
  /** process.cpuUsage() user + system over the window, ms. */
  cpuMs: number
  /** Per-thread wakeups, by thread name. */
  byThread: Record<string, number>
}

/** Counters over a window in which the caller's own code does nothing but one timer. */
export async function idleCost(seconds: number): Promise<IdleCost> {
  const before = new Map(threads().map((t) => [t.tid, t]))
  const cpu0 = process.cpuUsage()
  await new Promise((r) => setTimeout(r, seconds * 1000))
  const cpu = process.cpuUsage(cpu0)
  const after = threads()
  let wakeups = 0
  let reactorWakeups = 0
  let involuntary = 0
  const byThread: Record<string, number> = {}
  for (const t of after) {
    const b = before.get(t.tid)
    const v = t.voluntary - (b?.voluntary ?? 0)
    wakeups += v
    involuntary += t.involuntary - (b?.involuntary ?? 0)
    if (t.name.startsWith('lifewatch-react')) reactorWakeups += v
    byThread[t.name] = (byThread[t.name] ?? 0) + v
  }
  return { seconds, wakeups, reactorWakeups, involuntary, cpuMs: (cpu.user + cpu.system) / 1000, byThread }
}
