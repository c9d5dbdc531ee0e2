// The library's TypeScript output (dist/), as it ships: tsc with tsconfig.build.json (which
// strips @internal declarations), then everything in dist/ but what this build wrote is
// removed (a module no longer in src/, an older build's source maps), and so are the
// declarations the entry point dist/index.d.ts does not reach: internal modules', which would
// read as public API. Removed after the build, never before: tests may be loading dist/
// meanwhile.
import { execFileSync } from 'node:child_process'
import { readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import esbuild from 'esbuild'
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

// The entry ships as one ES module: a fresh process's `import('lifewatch')` spent most of its
// time resolving and linking twenty small modules (19 ms against 11 ms bundled, measured on
// this machine). What it loads at run time stays outside: Node's modules, the addon's loader
// (binding.cjs) and @opentelemetry/api (both through createRequire). Written aside and renamed
// into place, then the modules it took in are removed: a process loading dist/ meanwhile sees
// the old entry or the new one, whole.
const entry = join(dist, 'index.js')
const bundled = await esbuild.build({
  entryPoints: [entry],
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: ['@opentelemetry/api'],
  write: false,
  logLevel: 'warning',
})
writeFileSync(`${entry}.tmp`, bundled.outputFiles[0].contents)
renameSync(`${entry}.tmp`, entry)
for (const f of readdirSync(dist)) if (f.endsWith('.js') && f !== 'index.js') rmSync(join(dist, f))
