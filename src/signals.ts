import { invalid } from './errors.js'
import { binding } from './native.js'
import { describe } from './validate.js'

/** A real-time signal as events name it and `kill -l` shows it (`SIGRTMIN+3`, `SIGRTMAX-1`). */
export type RealtimeSignal = 'SIGRTMIN' | 'SIGRTMAX' | `SIGRTMIN+${number}` | `SIGRTMAX-${number}`

/** A signal's name as events give it: `'SIGKILL'`, `'SIGRTMIN+2'`, or `'SIG32'` for a number
 *  without a name. */
export type SignalName = NodeJS.Signals | RealtimeSignal | `SIG${number}`

/** A signal: its name (`'SIGTERM'`, `'SIGRTMIN+2'`) or its number (1..64). */
export type Signal = SignalName | number

/**
 * A signal's number. Names are read as `kill -l` spells them, with or without `SIG`, in any
 * case: `'SIGTERM'`, `'term'`, the aliases `'SIGIOT'`, `'SIGPOLL'`, `'SIGCLD'`, real-time
 * signals from `'SIGRTMIN'` up and `'SIGRTMAX'` down, and `'SIG32'` for a number without a
 * name. Anything else throws `ERR_INVALID_ARGUMENT`.
 */
export function signalNumber(signal: Signal | string): number {
  return checkSignal(signal)
}

/** @internal The name of each signal number 1..64 as the addon names it (index 0 unused):
 *  read once, as exits that a signal ended are named from it. */
export const SIGNAL_NAMES: readonly SignalName[] = Object.freeze(
  Array.from({ length: 65 }, (_, n) => (n === 0 ? 'SIG0' : binding.signalName(n)) as SignalName),
)

/** The name events give a signal number (`9` → `'SIGKILL'`, `35` → `'SIGRTMIN+1'`);
 *  `signalNumber` reads it back. */
export function signalName(signo: number): SignalName {
  if (typeof signo !== 'number' || !Number.isInteger(signo) || signo < 1 || signo > 64) {
    throw invalid(`signo must be an integer from 1 to 64, got ${describe(signo)}`)
  }
  return SIGNAL_NAMES[signo]!
}

/** @internal `signalNumber` for an argument or option named `what`. */
export function checkSignal(sig: unknown, what = 'signal'): number {
  if (typeof sig === 'number') {
    if (!Number.isInteger(sig) || sig < 1 || sig > 64) throw invalid(`${what} must be 1..64, got ${describe(sig)}`)
    return sig
  }
  if (typeof sig !== 'string' || sig.length === 0 || /^\d/.test(sig)) {
    throw invalid(`${what} must be a name such as 'SIGTERM' or a number, got ${describe(sig)}`)
  }
  try {
    return binding.signalNumber(sig)
  } catch {
    throw invalid(`${what}: unknown signal ${JSON.stringify(sig)}`)
  }
}
