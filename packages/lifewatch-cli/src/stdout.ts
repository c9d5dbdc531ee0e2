// A reader of stdout that went away (`lifewatch watch | head -1`): EPIPE arrives as an 'error'
// event on process.stdout, which would otherwise crash Node. The command then ends with 141
// (128 + SIGPIPE, as a C program killed by it): `watch` and `top` stop at once, `demo` runs on
// to clean up what it started, writing nothing more.

let gone = false
const listeners = new Set<() => void>()

export function watchStdout(): void {
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e
    if (gone) return
    gone = true
    process.exitCode = 141
    for (const l of listeners) l()
  })
}

export const stdoutGone = (): boolean => gone

/** Calls `fn` once stdout's reader is gone. */
export function onStdoutGone(fn: () => void): void {
  listeners.add(fn)
}
