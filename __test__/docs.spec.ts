// The documentation as a user meets it. Code blocks are taken from the Markdown itself
// (README.md, CONTRIBUTING.md, docs/*.md), never from copies:
//   ```ts        a fragment: type-checked, strictly, with TypeScript 5 (the repo's) and 7
//   ```ts run    a complete program: type-checked, then run as written (node --import tsx), and
//                it must exit 0 within RUN_TIMEOUT_MS
//   ```ts run root   the same, needing root (a cgroup): a declared skip otherwise
// Every block is its own module in a scratch project whose `lifewatch` is this repo's built
// package (node_modules/lifewatch -> the repo root: package.json's exports, index.d.ts and
// dist/), so the shipped declarations are what the compilers check, not src/.
// Also checked: the README's size and error table, that docs/api.md names every export, that
// docs/cli.md names every flag and NDJSON line type, that relative links resolve, and that
// docs/performance.md is what the last full bench run's JSON makes.
import test from 'ava'
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { homedir, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'

import { CLI, root } from './helpers.js'

const RUN_TIMEOUT_MS = 60_000
const README_MAX_BYTES = 16 * 1024

interface Block {
  /** The Markdown file, relative to the repo root. */
  file: string
  /** 1-based line of the block's first code line. */
  line: number
  lang: string
  flags: string[]
  code: string
}

const markdown = ['README.md', 'CONTRIBUTING.md', ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`)]

/** The fenced code blocks of a Markdown file. */
function blocksOf(file: string): Block[] {
  const lines = readFileSync(join(root, file), 'utf8').split('\n')
  const out: Block[] = []
  let open: { indent: string; fence: string; lang: string; flags: string[]; line: number; body: string[] } | undefined
  lines.forEach((text, i) => {
    const fence = /^(\s*)(`{3,}|~{3,})\s*(.*)$/.exec(text)
    if (!open) {
      if (fence) {
        const [lang = '', ...flags] = fence[3]!.trim().split(/\s+/)
        open = { indent: fence[1]!, fence: fence[2]!, lang, flags, line: i + 2, body: [] }
      }
    } else if (fence && fence[2]!.startsWith(open.fence) && fence[3]!.trim() === '') {
      out.push({ file, line: open.line, lang: open.lang, flags: open.flags, code: open.body.join('\n') })
      open = undefined
    } else {
      open.body.push(text.startsWith(open.indent) ? text.slice(open.indent.length) : text)
    }
  })
  if (open) throw new Error(`${file}:${open.line - 1}: a code block is never closed`)
  return out
}

const blocks = markdown.flatMap(blocksOf)
const tsBlocks = blocks.filter((b) => b.lang === 'ts' || b.lang === 'typescript')
const where = (b: Block) => `${b.file}:${b.line}`

// The scratch project: one module per TypeScript block, `lifewatch` mapped to this repo.
const project = mkdtempSync(join(tmpdir(), 'lifewatch-docs-'))
test.after.always(() => rmSync(project, { recursive: true, force: true }))
const modules = join(project, 'node_modules')
mkdirSync(modules)
symlinkSync(root, join(modules, 'lifewatch'))
// Everything else the examples import (tsx, @types/node, the OpenTelemetry SDK) from the repo's
// own node_modules.
for (const name of readdirSync(join(root, 'node_modules'))) {
  if (name === 'lifewatch' || name.startsWith('.')) continue
  symlinkSync(join(root, 'node_modules', name), join(modules, name))
}
writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'lifewatch-docs', private: true, type: 'module' }))
writeFileSync(
  join(project, 'tsconfig.json'),
  JSON.stringify({
    compilerOptions: {
      strict: true,
      noUnusedLocals: true,
      noUnusedParameters: true,
      target: 'es2022',
      module: 'nodenext',
      moduleResolution: 'nodenext',
      types: ['node'],
      // lifewatch's own declarations are part of what is checked.
      skipLibCheck: false,
      noEmit: true,
    },
    include: ['*.ts'],
  }),
)
const fileOf = new Map<string, Block>()
tsBlocks.forEach((b, i) => {
  const name = `block${String(i).padStart(2, '0')}.ts`
  fileOf.set(name, b)
  // Each block is a module of its own, even one without imports.
  writeFileSync(join(project, name), `${b.code}\nexport {}\n`)
})
const nameOf = (b: Block) => [...fileOf].find(([, x]) => x === b)![0]

/** `tsc` output with each `blockNN.ts(line,col)` rewritten to the Markdown's `file:line:col`. */
function located(output: string): string {
  return output.replace(/(block\d+\.ts)\((\d+),(\d+)\)/g, (m, name: string, line: string, col: string) => {
    const b = fileOf.get(name)
    return b ? `${b.file}:${b.line + Number(line) - 1}:${col}` : m
  })
}

function typecheck(tscJs: string): { status: number | null; output: string } {
  const r = spawnSync(process.execPath, [tscJs, '-p', project, '--pretty', 'false'], { cwd: project, encoding: 'utf8', timeout: 110_000 })
  return { status: r.status, output: located(`${r.stdout}${r.stderr}${r.error ? `\n${r.error.message}` : ''}`) }
}

/**
 * TypeScript 7 (npm's current `typescript`), installed once into the cache lifewatch's scripts
 * use (outside the repo, so the lock file does not change); a reason when npm cannot get it.
 */
function typescript7(): { tsc: string; version: string } | { skip: string } {
  const prefix = join(process.env.LIFEWATCH_CACHE ?? join(homedir(), '.cache/lifewatch'), 'typescript-7')
  const pkg = join(prefix, 'node_modules/typescript')
  const version = () => (JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')) as { version: string }).version
  if (!existsSync(join(pkg, 'package.json')) || !version().startsWith('7.')) {
    mkdirSync(prefix, { recursive: true })
    const r = spawnSync('npm', ['install', '--prefix', prefix, '--no-audit', '--no-fund', '--no-package-lock', 'typescript@7'], { encoding: 'utf8', timeout: 120_000 })
    if (r.status !== 0) return { skip: `npm could not install typescript@7: ${(r.stderr || r.error?.message || '').trim().split('\n').pop()}` }
  }
  return { tsc: join(pkg, 'bin/tsc'), version: version() }
}

const ts7 = typescript7()
if ('skip' in ts7) console.log(`docs.spec: SKIPPED: the TypeScript 7 check: ${ts7.skip}`)

test('every TypeScript block type-checks strictly with TypeScript 5', (t) => {
  t.timeout(2 * 60_000)
  t.true(tsBlocks.length > 0)
  const tsc5 = join(root, 'node_modules/typescript/lib/tsc.js')
  const version = (JSON.parse(readFileSync(join(root, 'node_modules/typescript/package.json'), 'utf8')) as { version: string }).version
  t.regex(version, /^5\./)
  const r = typecheck(tsc5)
  t.log(`TypeScript ${version}: ${tsBlocks.length} blocks (${tsBlocks.filter((b) => b.flags.includes('run')).length} programs)`)
  t.is(r.status, 0, r.output)
})

;('skip' in ts7 ? test.skip : test)('every TypeScript block type-checks strictly with TypeScript 7', (t) => {
  t.timeout(2 * 60_000)
  if ('skip' in ts7) return
  const r = typecheck(ts7.tsc)
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
    const child = spawn(process.execPath, ['--import', 'tsx', nameOf(b)], { cwd: project, stdio: ['ignore', 'pipe', 'pipe'] })
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
