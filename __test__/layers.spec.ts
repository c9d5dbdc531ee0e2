// The layout is the architecture: no import cycles in the core, the binding, the TypeScript
// layer or the CLI, and the core's layers import only downwards (lib.rs lists them).
import test from 'ava'
import { readFileSync } from 'node:fs'

import { root } from './helpers.js'
import { cycles, rustGraph, tsGraph, type Graph } from './import-graph.js'

/** The core's layers, lowest first; a file may import its own layer and those below. */
function layer(file: string): { rank: number; name: string } {
  const top = file.split('/')[0]
  if (['error.rs', 'fd.rs', 'failpoint.rs', 'event.rs', 'status.rs', 'pseudofile.rs'].includes(top)) return { rank: 0, name: 'base' }
  if (top === 'reactor') return { rank: 1, name: 'reactor' }
  if (top === 'process') return { rank: 2, name: 'process' }
  if (file.startsWith('cgroup/watch/')) return { rank: 4, name: 'cgroup/watch' }
  if (file.startsWith('cgroup/manage/')) return { rank: 4, name: 'cgroup/manage' }
  if (top === 'cgroup') return { rank: 3, name: 'cgroup' }
  if (file === 'monitor.rs') return { rank: 5, name: 'monitor' }
  if (file === 'lib.rs') return { rank: 6, name: 'lib' }
  throw new Error(`${file} is in no layer: add it to lib.rs's list and to this test`)
}

const edges = (g: Graph) => [...g].flatMap(([from, to]) => [...to].map((t) => [from, t] as const))

test('the core: no cycles; every import goes to its own layer or one below', (t) => {
  const g = rustGraph(`${root}crates/lifewatch-core/src`)
  t.true(g.size > 40, `read ${g.size} files`)
  t.deepEqual(cycles(g), [])
  const upward = edges(g)
    .filter(([from, to]) => {
      const a = layer(from)
      const b = layer(to)
      // A folder's mod.rs declares and re-exports its children: not an import of them.
      if (from.endsWith('mod.rs') && to.startsWith(from.slice(0, -'mod.rs'.length))) return false
      return b.rank > a.rank || (b.rank === a.rank && a.name !== b.name)
    })
    .map(([from, to]) => `${from} (${layer(from).name}) -> ${to} (${layer(to).name})`)
  t.deepEqual(upward, [])
})

test('the binding, the TypeScript layer and the CLI: no cycles', (t) => {
  for (const [name, g] of [
    ['crates/lifewatch-node/src', rustGraph(`${root}crates/lifewatch-node/src`)],
    ['src', tsGraph(`${root}src`)],
    ['packages/lifewatch-cli/src', tsGraph(`${root}packages/lifewatch-cli/src`)],
  ] as const) {
    t.true(g.size > 10, `${name}: read ${g.size} files`)
    t.deepEqual(cycles(g), [], name)
  }
  // The public entry point is imported by nothing inside the library.
  const src = tsGraph(`${root}src`)
  t.deepEqual(edges(src).filter(([, to]) => to === 'index.ts'), [])
})

test('the CLI uses the library only through its public package name', (t) => {
  const cli = tsGraph(`${root}packages/lifewatch-cli/src`)
  const reaching = [...cli.keys()].filter((f) => /from '\.\.\/\.\.\/\.\.\/src|from '(\.\.\/)+src\//.test(readFileSync(`${root}packages/lifewatch-cli/src/${f}`, 'utf8')))
  t.deepEqual(reaching, [])
})

test('the graph finds a cycle and an upward import where there is one', (t) => {
  const g: Graph = new Map([
    ['a.rs', new Set(['b.rs'])],
    ['b.rs', new Set(['c.rs'])],
    ['c.rs', new Set(['a.rs'])],
    ['d.rs', new Set<string>()],
  ])
  t.deepEqual(cycles(g), [['a.rs', 'b.rs', 'c.rs']])
  t.is(layer('process/handle.rs').rank > layer('reactor/mod.rs').rank, true)
  t.not(layer('cgroup/watch/hub.rs').name, layer('cgroup/manage/kill.rs').name)
})
