// Shared by the project scripts: run a command visibly, compare mtimes.
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync, statSync } from 'node:fs'
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
