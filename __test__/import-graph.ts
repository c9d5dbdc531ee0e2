// Import graphs of the Rust crates (file to file, through `use crate::...` and inline
// `crate::...` paths, re-exports followed to the file that defines the name) and of the
// TypeScript sources (`import`/`export ... from './x.js'`), and their cycles.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'

/** file -> the files it imports (paths relative to the source root). */
export type Graph = Map<string, Set<string>>

function files(dir: string, ext: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name)
    return statSync(p).isDirectory() ? files(p, ext) : p.endsWith(ext) ? [p] : []
  })
}

/** The code of a Rust file without comments, string contents and its trailing test module. */
function rustCode(text: string): string {
  const cut = text.search(/#\[cfg\(test\)\]\s*mod tests/)
  return (cut >= 0 ? text.slice(0, cut) : text)
    .replace(/\/\/.*$/gm, '')
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
}

/** `a::{b, c::{d, e}}` -> `a::b`, `a::c::d`, `a::c::e`. */
function expand(tree: string): string[] {
  const t = tree.replace(/\s+as\s+[A-Za-z_]\w*/g, '').replace(/\s+/g, '')
  const open = t.indexOf('{')
  if (open < 0) return [t]
  const prefix = t.slice(0, open)
  const inner = t.slice(open + 1, t.lastIndexOf('}'))
  const parts: string[] = []
  let depth = 0
  let start = 0
  for (let i = 0; i < inner.length; i++) {
    if (inner[i] === '{') depth++
    else if (inner[i] === '}') depth--
    else if (inner[i] === ',' && depth === 0) {
      parts.push(inner.slice(start, i))
      start = i + 1
    }
  }
  parts.push(inner.slice(start))
  return parts.filter(Boolean).flatMap((p) => expand(prefix + p))
}

/** The file of module path `segs` under `root`, or undefined. */
function moduleFile(root: string, segs: string[]): string | undefined {
  if (segs.length === 0) return join(root, 'lib.rs')
  const base = join(root, ...segs)
  if (existsSync(`${base}.rs`)) return `${base}.rs`
  if (existsSync(join(base, 'mod.rs'))) return join(base, 'mod.rs')
  return undefined
}

/** The module path of a file (`process/handle.rs` -> ['process', 'handle']). */
function modulePath(root: string, file: string): string[] {
  const rel = relative(root, file).replace(/\.rs$/, '')
  const segs = rel.split('/')
  if (segs[segs.length - 1] === 'mod' || rel === 'lib') segs.pop()
  return segs
}

/** Names a module file re-exports from its child modules: name -> child module path. */
function reexports(root: string, file: string): Map<string, string[]> {
  const out = new Map<string, string[]>()
  const code = rustCode(readFileSync(file, 'utf8'))
  const here = modulePath(root, file)
  for (const m of code.matchAll(/pub use ([^;]+);/g)) {
    for (const path of expand(m[1])) {
      const segs = path.split('::')
      if (segs[0] === 'crate' || segs[0] === 'self' || segs[0] === 'super') continue
      out.set(segs[segs.length - 1], [...here, ...segs.slice(0, -1)])
    }
  }
  return out
}

/** Where a `crate::` path leads: the deepest module file, or the file a re-exported name comes from. */
function resolve(root: string, segs: string[]): string | undefined {
  let mod: string[] = []
  let i = 0
  while (i < segs.length && moduleFile(root, [...mod, segs[i]])) mod = [...mod, segs[i++]]
  const file = moduleFile(root, mod)
  if (!file || i >= segs.length) return file
  const from = reexports(root, file).get(segs[i])
  return from ? resolve(root, [...from, segs[i]]) ?? file : file
}

/** The file-level import graph of a Rust crate's `src` directory. */
export function rustGraph(root: string): Graph {
  const g: Graph = new Map()
  for (const file of files(root, '.rs')) {
    const code = rustCode(readFileSync(file, 'utf8'))
    const here = modulePath(root, file)
    // In a file with an inline module (`mod armed { .. }`), `super::` is the file itself.
    const inline = /^\s*mod [a-z_]+ \{/m.test(code)
    // Module paths from the crate root: `crate::`, `super::`, `self::`, and a child module's
    // own name (`use handle::Process` in process/mod.rs).
    const absolute = (path: string): string[] | undefined => {
      const segs = path.split('::')
      if (segs[0] === 'crate') return segs.slice(1)
      if (segs[0] === 'self') return [...here, ...segs.slice(1)]
      if (segs[0] === 'super') return [...(inline ? here : here.slice(0, -1)), ...segs.slice(1)]
      return moduleFile(root, [...here, segs[0]]) ? [...here, ...segs] : undefined
    }
    const paths = [...code.matchAll(/\buse ([^;]+);/g)].flatMap((m) => expand(m[1]))
    paths.push(...[...code.matchAll(/(?<!use )\b(?:crate|super)(?:::[a-z_][a-z0-9_]*)+/g)].map((m) => m[0]))
    const from = relative(root, file)
    const to = new Set<string>()
    for (const p of paths) {
      const segs = absolute(p)
      const target = segs && resolve(root, segs)
      if (target && target !== file) to.add(relative(root, target))
    }
    g.set(from, to)
  }
  return g
}

/** The import graph of the TypeScript files of a directory (relative imports only). */
export function tsGraph(root: string): Graph {
  const g: Graph = new Map()
  for (const file of files(root, '.ts')) {
    const code = readFileSync(file, 'utf8')
    const to = new Set<string>()
    for (const m of code.matchAll(/^(?:import|export)\b[^;]*?\bfrom '(\.[^']+)'/gms)) {
      const target = join(dirname(file), m[1].replace(/\.js$/, '.ts'))
      if (target.startsWith(root) && existsSync(target)) to.add(relative(root, target))
    }
    g.set(relative(root, file), to)
  }
  return g
}

/** The cycles of a graph: its strongly connected components of more than one file. */
export function cycles(g: Graph): string[][] {
  let index = 0
  const idx = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const on = new Set<string>()
  const out: string[][] = []
  const visit = (v: string): void => {
    idx.set(v, index)
    low.set(v, index++)
    stack.push(v)
    on.add(v)
    for (const w of g.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w)
        low.set(v, Math.min(low.get(v)!, low.get(w)!))
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!))
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = []
      let w: string
      do {
        w = stack.pop()!
        on.delete(w)
        scc.push(w)
      } while (w !== v)
      if (scc.length > 1) out.push(scc.sort())
    }
  }
  for (const v of g.keys()) if (!idx.has(v)) visit(v)
  return out
}
