// One-shot helpers for callers that do not keep a Monitor around.
import { Monitor, type KillOptions, type KillResult } from './monitor.js'
import { binding } from './native.js'
import { checkPid, signalNumber, type Signal } from './validate.js'

/** Sends one signal through a short-lived pidfd (kill(2) on kernels without pidfd). */
export function signal(pid: number, sig: Signal = 'SIGTERM'): void {
  const signo = signalNumber(sig)
  binding.signalPid(checkPid(pid), signo)
}

/** `Monitor.kill` on a temporary monitor: signal, escalate after `timeout`, confirmed exit.
 *  The temporary monitor is closed on every way out. */
export async function kill(pid: number, options?: KillOptions): Promise<KillResult> {
  checkPid(pid)
  const monitor = new Monitor()
  try {
    return await monitor.kill(pid, options)
  } finally {
    monitor.close()
  }
}
