// The documentation's TypeScript blocks as a project the compilers check: shared by docs.spec
// (lifewatch as this repo builds it) and package.spec (lifewatch as its npm tarball installs).
// Code blocks are taken from the Markdown itself (README.md, CONTRIBUTING.md, docs/*.md):
//   ```ts        a fragment: type-checked, strictly
//   ```ts run    a complete program: type-checked, then run as written
//   ```ts run root   the same, needing root (a cgroup)
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { homedir, tmpdir } from 'node:os'
import { join } from 'node:path'

import { root } from './helpers.js'

export interface Block {
  /** The Markdown file, relative to the repo root. */
  file: string
  /** 1-based line of the block's first code line. */
  line: number
  lang: string
  flags: string[]
  code: string
}

export const markdown = ['README.md', 'CONTRIBUTING.md', ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`)]

/** The fenced code blocks of a Markdown file. */
export function blocksOf(file: string): Block[] {
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

export const tsBlocks = markdown.flatMap(blocksOf).filter((b) => b.lang === 'ts' || b.lang === 'typescript')
export const where = (b: Block) => `${b.file}:${b.line}`

export interface DocsProject {
  dir: string
  /** The module file of a block (for running it). */
  nameOf(b: Block): string
  /** `tsc -p` on the project: its status and output, located in the Markdown. */
  typecheck(tscJs: string): { status: number | null; output: string }
  remove(): void
}

/**
 * A scratch project with one module per TypeScript block, whose `lifewatch` is `lifewatch`
 * (a package directory: its package.json's exports, index.d.ts and dist/ are what the
 * compilers check, with skipLibCheck off); everything else the examples import (tsx,
 * @types/node, the OpenTelemetry SDK) comes from the repo's own node_modules.
 */
export function docsProject(lifewatch: string): DocsProject {
  const dir = mkdtempSync(join(tmpdir(), 'lifewatch-docs-'))
  const modules = join(dir, 'node_modules')
  mkdirSync(modules)
  symlinkSync(lifewatch, join(modules, 'lifewatch'))
  for (const name of readdirSync(join(root, 'node_modules'))) {
    if (name === 'lifewatch' || name.startsWith('.')) continue
    symlinkSync(join(root, 'node_modules', name), join(modules, name))
  }
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'lifewatch-docs', private: true, type: 'module' }))
  writeFileSync(
    join(dir, 'tsconfig.json'),
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
    writeFileSync(join(dir, name), `${b.code}\nexport {}\n`)
  })
  /** `tsc` output with each `blockNN.ts(line,col)` rewritten to the Markdown's `file:line:col`. */
  const located = (output: string) =>
    output.replace(/(block\d+\.ts)\((\d+),(\d+)\)/g, (m, name: string, line: string, col: string) => {
      const b = fileOf.get(name)
      return b ? `${b.file}:${b.line + Number(line) - 1}:${col}` : m
    })
  return {
    dir,
    nameOf: (b) => [...fileOf].find(([, x]) => x === b)![0],
    typecheck(tscJs) {
      const r = spawnSync(process.execPath, [tscJs, '-p', dir, '--pretty', 'false'], { cwd: dir, encoding: 'utf8', timeout: 110_000 })
      return { status: r.status, output: located(`${r.stdout}${r.stderr}${r.error ? `\n${r.error.message}` : ''}`) }
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  }
}

/** The repo's TypeScript 5 compiler and its version. */
export function typescript5(): { tsc: string; version: string } {
  const version = (JSON.parse(readFileSync(join(root, 'node_modules/typescript/package.json'), 'utf8')) as { version: string }).version
  return { tsc: join(root, 'node_modules/typescript/lib/tsc.js'), version }
}

/**
 * TypeScript 7 (npm's current `typescript`), installed once into the cache lifewatch's scripts
 * use (outside the repo, so the lock file does not change); a reason when npm cannot get it.
 */
export function typescript7(): { tsc: string; version: string } | { skip: string } {
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
