// The VM guest hands its result back on the serial console, which the host reads from
// scripts/vm/run.sh's output. Kernel lines (the OOM killer's report) may land between any
// two lines, so the JSON goes in short tagged lines between markers and is rebuilt from them.
const BEGIN = 'LIFEWATCH_BENCH_RESULT_BEGIN'
const END = 'LIFEWATCH_BENCH_RESULT_END'
const TAG = 'LWR '

/** Guest side: prints `value` as JSON on stdout (the console). */
export function printResult(value: unknown): void {
  const json = JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? Number(v) : v))
  const lines = [BEGIN]
  for (let i = 0; i < json.length; i += 160) lines.push(TAG + json.slice(i, i + 160))
  lines.push(END)
  process.stdout.write(`${lines.join('\n')}\n`)
}

/** Whether a console line is part of the result (not worth echoing). */
export const isResultLine = (line: string) => line.startsWith(TAG) || line === BEGIN || line === END

/** Host side: the result in a console log, or undefined if the guest printed none. */
export function parseResult(console: string): unknown {
  const lines = console.split('\n')
  const b = lines.lastIndexOf(BEGIN)
  const e = lines.lastIndexOf(END)
  if (b < 0 || e < b) return undefined
  const json = lines.slice(b + 1, e).filter((l) => l.startsWith(TAG)).map((l) => l.slice(TAG.length)).join('')
  return JSON.parse(json)
}
