// Shared by the project scripts: run a command visibly (waiting, or streaming its output),
// compare mtimes.
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, readdirSync, statSync } from 'node:fs'
import { constants } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const root = fileURLToPath(new URL('..', import.meta.url))

export function run(cmd, args, opts = {}) {
  console.error(`$ ${[cmd, ...args].join(' ')}`)
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: root, ...opts })
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.error?.message ?? `exit ${r.status ?? r.signal}`})`)
  }
}

/**
 * Runs a command, echoing its output as it comes (with `quiet`, only its last lines once it
 * ends: more of them on failure). Resolves with its exit code (non-zero when it could not
 * start or was killed, which is printed), its stdout, and `out`, both streams as they came.
 */
export function stream(cmd, args, { env = {}, cwd = root, quiet = false } = {}) {
  console.log(`\n$ ${[cmd, ...args].join(' ')}`)
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let out = ''
    p.stdout.on('data', (d) => (stdout += d))
    for (const s of [p.stdout, p.stderr]) {
      s.on('data', (d) => {
        out += d
        if (!quiet) process.stdout.write(d)
      })
    }
    p.on('error', (e) => console.log(`${cmd}: ${e.message}`))
    p.on('close', (code, signal) => {
      if (quiet) console.log(out.trimEnd().split('\n').slice(code === 0 ? -5 : -80).join('\n'))
      if (signal) console.log(`${cmd}: killed by ${signal}`)
      resolve({ code: code ?? 128 + constants.signals[signal], stdout, out })
    })
  })
}

/** Newest mtime (ms) of the files below the given paths; 0 when none exist. */
export function newest(...paths) {
  let max = 0
  const visit = (p) => {
    if (!existsSync(p)) return
    const st = statSync(p)
    if (st.isDirectory()) {
      for (const e of readdirSync(p)) if (e !== 'node_modules' && e !== 'target') visit(join(p, e))
    } else max = Math.max(max, st.mtimeMs)
  }
  for (const p of paths) visit(join(root, p))
  return max
}

export function mtime(path) {
  const p = join(root, path)
  return existsSync(p) ? statSync(p).mtimeMs : 0
}

/** The file name `napi build --platform` gives this machine's addon. */
export function addonName() {
  const libc = process.report?.getReport().header.glibcVersionRuntime ? 'gnu' : 'musl'
  return `lifewatch.linux-${process.arch}-${libc}.node`
}
