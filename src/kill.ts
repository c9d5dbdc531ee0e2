// Signal, grace period, SIGKILL, confirmed exit: the one escalation behind `monitor.kill`,
// `task.kill` and shutdown's kill step. Nothing waits before the first signal went out, so
// a refused signal leaves no pending wait behind.
import { LifewatchError } from './errors.js'
import type { ExitEvent } from './events.js'
import { TIMED_OUT, within } from './timers.js'

const SIGKILL = 9

/** @internal What can be killed: a process watch, a task. */
export interface Killable {
  readonly pid: number
  /** Sends a signal; one to a process that already exited is not an error. Throws when refused. */
  signal(signo: number): void
  /** The exit; stops waiting (and unregisters) when `signal` aborts. */
  wait(options: { signal: AbortSignal }): Promise<ExitEvent>
}

/** @internal */
export interface Escalation {
  signo: number
  /** Milliseconds between the first signal and SIGKILL: 0 sends SIGKILL at once, Infinity never. */
  grace: number
  /** Milliseconds to wait for the exit after SIGKILL before saying the process is still alive. */
  confirm: number
  signal?: AbortSignal | undefined
}

export interface KillResult {
  exit: ExitEvent
  /** Whether SIGKILL had to follow because the first signal did not end the process in time. */
  forced: boolean
}

/** @internal */
export async function escalate(target: Killable, e: Escalation): Promise<KillResult> {
  const waitExit = (ms: number) => within(ms, e.signal, (signal) => target.wait({ signal }))
  target.signal(e.signo)
  let forced = false
  if (e.signo !== SIGKILL) {
    const exit = await waitExit(e.grace)
    if (exit !== TIMED_OUT) return { exit, forced }
    target.signal(SIGKILL)
    forced = true
  }
  const exit = await waitExit(e.confirm)
  if (exit === TIMED_OUT) {
    throw new LifewatchError('ERR_TIMEOUT', `pid ${target.pid} was still running ${e.confirm} ms after SIGKILL`)
  }
  return { exit, forced }
}
