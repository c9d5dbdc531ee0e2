// The documentation as a user meets it. Code blocks are taken from the Markdown itself
// (README.md, CONTRIBUTING.md, docs/*.md), never from copies:
//   ```ts        a fragment: type-checked, strictly, with TypeScript 5 (the repo's) and 7
//   ```ts run    a complete program: type-checked, then run as written (node --import tsx), and
//                it must exit 0 within RUN_TIMEOUT_MS
//   ```ts run root   the same, needing root (a cgroup): a declared skip otherwise
// Every block is its own module in a scratch project whose `lifewatch` is this repo's built
// package (node_modules/lifewatch -> the repo root: package.json's exports, index.d.ts and
// dist/), so the shipped declarations are what the compilers check, not src/ (package.spec
// checks the same blocks against the npm tarball: doc-blocks.ts).
// Also checked: the README's size and error table, that docs/api.md names every export, that
// docs/cli.md names every flag and NDJSON line type, that relative links resolve, and that
// docs/performance.md is what the last full bench run's JSON makes.
import test from 'ava'
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'

import { docsProject, markdown, tsBlocks, typescript5, typescript7, where } from './doc-blocks.js'
import { CLI, root } from './helpers.js'

const RUN_TIMEOUT_MS = 60_000
const README_MAX_BYTES = 16 * 1024

const project = docsProject(root)
test.after.always(() => project.remove())

const ts7 = typescript7()
if ('skip' in ts7) console.log(`docs.spec: SKIPPED: the TypeScript 7 check: ${ts7.skip}`)

test('every TypeScript block type-checks strictly with TypeScript 5', (t) => {
  t.timeout(2 * 60_000)
  t.true(tsBlocks.length > 0)
  const ts5 = typescript5()
  t.regex(ts5.version, /^5\./)
  const r = project.typecheck(ts5.tsc)
  t.log(`TypeScript ${ts5.version}: ${tsBlocks.length} blocks (${tsBlocks.filter((b) => b.flags.includes('run')).length} programs)`)
  t.is(r.status, 0, r.output)
})

;('skip' in ts7 ? test.skip : test)('every TypeScript block type-checks strictly with TypeScript 7', (t) => {
  t.timeout(2 * 60_000)
  if ('skip' in ts7) return
  const r = project.typecheck(ts7.tsc)
  t.log(`TypeScript ${ts7.version}: ${tsBlocks.length} blocks`)
  t.is(r.status, 0, r.output)
})

const isRoot = process.getuid?.() === 0
for (const b of tsBlocks.filter((x) => x.flags.includes('run'))) {
  const needsRoot = b.flags.includes('root')
  const declare = needsRoot && !isRoot ? test.skip : test.serial
  declare(`runs as written: ${where(b)}${needsRoot ? ' (root)' : ''}`, async (t) => {
    t.timeout(RUN_TIMEOUT_MS + 30_000)
    const started = performance.now()
    const child = spawn(process.execPath, ['--import', 'tsx', project.nameOf(b)], { cwd: project.dir, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d: Buffer) => (out += d))
    child.stderr.on('data', (d: Buffer) => (out += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS)
    const [code, signal] = await new Promise<[number | null, string | null]>((resolve) => child.on('close', (c, s) => resolve([c, s])))
    clearTimeout(timer)
    t.log(`${where(b)}: ${Math.round(performance.now() - started)} ms\n${out.trimEnd().split('\n').slice(-12).join('\n')}`)
    t.is(signal, null, `${where(b)} did not finish within ${RUN_TIMEOUT_MS} ms`)
    t.is(code, 0, `${where(b)} exited with ${code}:\n${out}`)
  })
}
if (!isRoot) console.log('docs.spec: SKIPPED: the programs that need root (a cgroup): not root')

test(`README.md is at most ${README_MAX_BYTES} bytes`, (t) => {
  const size = readFileSync(join(root, 'README.md')).length
  t.log(`README.md: ${size} bytes`)
  t.true(size <= README_MAX_BYTES, `${size} bytes`)
})

test("the README's error table has every error code", (t) => {
  const errors = readFileSync(join(root, 'src/errors.ts'), 'utf8')
  const union = /export type ErrorCode =([^]*?)\n\n/.exec(errors)![1]!
  const codes = [...union.matchAll(/'(ERR_[A-Z_]+)'/g)].map((m) => m[1]!)
  t.true(codes.length > 5)
  const rows = readFileSync(join(root, 'README.md'), 'utf8').split('\n').filter((l) => l.startsWith('| `'))
  for (const code of codes) t.true(rows.some((r) => r.includes(`\`${code}\``)), `${code} has no row in the README's error table`)
})

test('docs/api.md names every export of the package', (t) => {
  const index = readFileSync(join(root, 'src/index.ts'), 'utf8')
  const names = [...index.matchAll(/export (?:type )?\{([^}]*)\}/g)].flatMap((m) =>
    m[1]!.split(',').map((s) => s.trim().replace(/^type /, '').split(/\s+as\s+/).pop()!).filter(Boolean),
  )
  t.true(names.length > 50)
  const api = readFileSync(join(root, 'docs/api.md'), 'utf8')
  const missing = names.filter((n) => !new RegExp(`\`[^\`]*\\b${n}\\b[^\`]*\``).test(api))
  t.deepEqual(missing, [], 'exports docs/api.md does not name (in code spans)')
})

test('docs/cli.md names every flag of every command and every NDJSON line type', (t) => {
  const doc = readFileSync(join(root, 'docs/cli.md'), 'utf8')
  const missing: string[] = []
  for (const cmd of ['run', 'watch', 'top', 'demo']) {
    const help = spawnSync(process.execPath, [CLI, cmd, '--help'], { encoding: 'utf8' })
    t.is(help.status, 0, help.stderr)
    for (const [flag] of help.stdout.matchAll(/--[a-z][a-z-]+/g)) if (flag !== '--help' && !doc.includes(`\`${flag}`)) missing.push(`${cmd} ${flag}`)
  }
  const schema = JSON.parse(readFileSync(join(root, 'packages/lifewatch-cli/schema/events.schema.json'), 'utf8')) as { oneOf: Array<{ properties: { type: { const: string } } }> }
  for (const line of schema.oneOf) if (!doc.includes(`\`${line.properties.type.const}\``)) missing.push(`line type ${line.properties.type.const}`)
  t.deepEqual(missing, [])
})

/** A Markdown file without its fenced code blocks. */
function prose(file: string): string {
  let fence: string | undefined
  return readFileSync(join(root, file), 'utf8')
    .split('\n')
    .filter((line) => {
      const m = /^\s*(`{3,}|~{3,})\s*(.*)$/.exec(line)
      if (!fence) {
        if (m) fence = m[1]!
        return !m
      }
      if (m && m[1]!.startsWith(fence) && m[2]!.trim() === '') fence = undefined
      return false
    })
    .join('\n')
}

/** The anchors of a Markdown file's headings, as GitHub makes them. */
function anchors(file: string): Set<string> {
  const text = prose(file)
  const slug = (h: string) => h.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-')
  return new Set([...text.matchAll(/^#{1,6} (.*)$/gm)].map((m) => slug(m[1]!)))
}

test('relative links in the Markdown resolve, anchors included', (t) => {
  const broken: string[] = []
  for (const file of [...markdown, 'bench/README.md', 'packages/lifewatch-cli/README.md']) {
    for (const [, target] of prose(file).matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/.test(target!)) continue
      const [path, anchor] = target!.split('#') as [string, string | undefined]
      const linked = path ? join(dirname(file), path) : file
      if (!existsSync(join(root, linked))) broken.push(`${file}: ${target}`)
      else if (anchor !== undefined && linked.endsWith('.md') && !anchors(linked).has(anchor)) broken.push(`${file}: ${target} (no such heading)`)
    }
  }
  t.deepEqual(broken, [])
})

test('docs/performance.md is what the last full bench run makes', (t) => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'bench/performance-doc.ts', '--check'], { cwd: root, encoding: 'utf8' })
  t.is(r.status, 0, `${r.stdout}${r.stderr}`)
})

test('both packages ship the same LICENSE', (t) => {
  const license = readFileSync(join(root, 'LICENSE'), 'utf8')
  t.regex(license, /Apache License\s+Version 2\.0, January 2004/)
  t.is(readFileSync(join(root, 'packages/lifewatch-cli/LICENSE'), 'utf8'), license)
  for (const pkg of ['package.json', 'packages/lifewatch-cli/package.json']) {
    const files = (JSON.parse(readFileSync(join(root, pkg), 'utf8')) as { files: string[] }).files
    t.true(files.includes('LICENSE'), `${pkg} files`)
  }
})
