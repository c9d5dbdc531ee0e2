// The library's TypeScript output (dist/), as it ships: tsc with tsconfig.build.json (which
// strips @internal declarations), then everything in dist/ but what this build wrote is
// removed (a module no longer in src/, an older build's source maps), and so are the
// declarations the entry point dist/index.d.ts does not reach: internal modules', which would
// read as public API. Removed after the build, never before: tests may be loading dist/
// meanwhile.
import { execFileSync } from 'node:child_process'
import { readdirSync, rmSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import ts from 'typescript'
import { root } from './lib.mjs'

console.error('$ npx tsc -p tsconfig.build.json --listEmittedFiles')
const listed = execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json', '--listEmittedFiles'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
const emitted = new Set([...listed.matchAll(/^TSFILE: (.*)$/gm)].map((m) => resolve(m[1])))
const dist = join(root, 'dist')
const program = ts.createProgram([join(dist, 'index.d.ts')], { noEmit: true, types: [] })
const reached = new Set(program.getSourceFiles().map((f) => f.fileName).filter((f) => dirname(f) === dist))
for (const f of readdirSync(dist)) {
  const path = join(dist, f)
  if (!emitted.has(path) || (f.endsWith('.d.ts') && !reached.has(path))) rmSync(path, { recursive: true })
}
