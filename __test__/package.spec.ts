import test from 'ava'
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, join, relative } from 'node:path'

import ts from 'typescript'

import { docsProject, tsBlocks, typescript5, typescript7 } from './doc-blocks.js'
import { root } from './helpers.js'
import { collector } from './otlp-receiver.js'

// Packs real npm tarballs and installs them into empty projects whose PATH has no Rust
// toolchain: the prebuilt platform package must be all it takes. The library alone, then the
// CLI package with it; what the tarballs hold (manifests, files, the types); and the library
// without its platform package.
type Packed = { main: string; platform: string; cli: string }
let packing: Packed | undefined
const packed = (): Packed =>
  (packing ??= JSON.parse(execFileSync(process.execPath, ['scripts/pack.mjs'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim().split('\n').pop()!) as Packed)

const path = process.env.PATH!.split(delimiter).filter((p) => !existsSync(join(p, 'cargo')) && !existsSync(join(p, 'rustc'))).join(delimiter)
const env = { ...process.env, PATH: path, npm_config_audit: 'false', npm_config_fund: 'false' }

function project(t: { teardown(fn: () => void): void }, tarballs: string[], npmArgs: string[] = []): string {
  const dir = mkdtempSync(join(tmpdir(), 'lifewatch-install-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', type: 'module', private: true }))
  const install = spawnSync('npm', ['install', '--no-save', ...npmArgs, ...tarballs], { cwd: dir, env, encoding: 'utf8' })
  if (install.status !== 0) throw new Error(install.stderr)
  return dir
}

/** The files of a tarball, as npm lays them out (`package/` stripped). */
const filesOf = (tarball: string) =>
  execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).trim().split('\n').map((f) => f.replace(/^package\//, '')).sort()

/** Bytes of the files under `dir` (symlinks not followed). */
function bytes(dir: string): number {
  let n = 0
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    n += e.isDirectory() ? bytes(p) : lstatSync(p).size
  }
  return n
}

const MB = 1024 * 1024

test.serial('the library installs alone without Rust, under 2 MB besides the @opentelemetry/api peer, and watches a real process', (t) => {
  t.not(spawnSync('cargo', ['--version'], { env }).status, 0, 'cargo must not be reachable in the install test')
  const p = packed()
  const dir = project(t, [p.platform, p.main])
  const nm = join(dir, 'node_modules')
  const installed = readdirSync(nm).filter((n) => !n.startsWith('.')).flatMap((n) => (n.startsWith('@') ? readdirSync(join(nm, n)).map((m) => `${n}/${m}`) : [n]))
  t.deepEqual(installed.sort(), ['@opentelemetry/api', 'lifewatch', 'lifewatch-linux-x64-gnu'].sort(), 'nothing but the library, its addon and the peer')
  const size = bytes(nm) - bytes(join(nm, '@opentelemetry/api'))
  t.log(`library installed: ${(size / MB).toFixed(2)} MB besides the api peer (${(bytes(join(nm, '@opentelemetry/api')) / MB).toFixed(2)} MB)`)
  t.true(size <= 2 * MB, `${size} bytes`)
  t.false(existsSync(join(nm, '.bin/lifewatch')), 'no bin: the command is lifewatch-cli')
  writeFileSync(join(dir, 'use.mjs'), `
    import { spawn } from 'node:child_process'
    import { Monitor } from 'lifewatch'
    const m = new Monitor()
    const child = spawn('sh', ['-c', 'sleep 0.1; exit 11'])
    const ev = await m.watchPid(child.pid).wait()
    m.close()
    console.log(JSON.stringify({ exitCode: ev.exitCode, source: ev.source, pidfd: m.usesPidfd }))
  `)
  const use = spawnSync(process.execPath, ['use.mjs'], { cwd: dir, env, encoding: 'utf8' })
  t.is(use.status, 0, use.stderr)
  t.deepEqual(JSON.parse(use.stdout), { exitCode: 11, source: 'waitid', pidfd: true })
})

test.serial('the CLI package installs without Rust; lifewatch runs, watches and exports over OTLP', async (t) => {
  const p = packed()
  const dir = project(t, [p.platform, p.main, p.cli])
  const nm = join(dir, 'node_modules')
  t.log(`CLI installed: ${(bytes(nm) / MB).toFixed(1)} MB in all (library and OpenTelemetry SDK included)`)
  const bin = join(nm, '.bin/lifewatch')
  const sleeper = spawn('sh', ['-c', 'sleep 1; exit 12'], { stdio: 'ignore' })
  const watch = spawnSync(bin, ['watch', '--json', '--pid', String(sleeper.pid)], { cwd: dir, env, encoding: 'utf8', timeout: 20_000 })
  t.is(watch.status, 0, watch.stderr)
  t.like(JSON.parse(watch.stdout), { type: 'exit', pid: sleeper.pid, exitCode: 12 })
  const help = spawnSync(bin, ['--help'], { cwd: dir, env, encoding: 'utf8' })
  t.is(help.status, 0, help.stderr)
  t.regex(help.stdout, /Usage: lifewatch/)
  t.true(existsSync(join(nm, 'lifewatch-cli/man/lifewatch.1')), 'the man page ships')
  t.true(existsSync(join(nm, 'lifewatch-cli/schema/events.schema.json')), 'the schema ships')
  const c = await collector()
  t.teardown(() => c.close())
  // Not spawnSync: the collector answers from this process's event loop.
  const p2 = spawn(bin, ['run', '--', 'sh', '-c', 'exit 3'], { cwd: dir, env: { ...env, OTEL_EXPORTER_OTLP_ENDPOINT: c.url, NO_COLOR: '1' } })
  const run = { status: 0, stderr: '' }
  p2.stderr.on('data', (d) => (run.stderr += d))
  run.status = ((await once(p2, 'close')) as [number])[0]
  t.is(run.status, 3, run.stderr)
  t.notRegex(run.stderr, /OTLP export .* failed/)
  const traces = c.received.filter((x) => x.path === '/v1/traces')
  t.is(traces.length, 1, 'the shutdown trace arrived')
  t.true(traces[0]!.body.includes('shutdown.task.delete'))
})

test.serial('the manifests name the repository and carry no test-runner config; the tarballs ship what runs, with no source maps', (t) => {
  const p = packed()
  const manifest = (tarball: string) => JSON.parse(execFileSync('tar', ['-xzOf', tarball, 'package/package.json'], { encoding: 'utf8' })) as Record<string, unknown>
  for (const [name, tarball] of [['lifewatch', p.main], ['lifewatch-cli', p.cli], ['lifewatch-linux-x64-gnu', p.platform]] as const) {
    const m = manifest(tarball) as { name: string; repository?: { url?: string }; homepage?: string; bugs?: { url?: string } }
    t.is(m.name, name)
    t.regex(m.repository?.url ?? '', /^git\+https:\/\//, `${name}: repository`)
    t.regex(m.homepage ?? '', /^https:\/\//, `${name}: homepage`)
    t.regex(m.bugs?.url ?? '', /^https:\/\//, `${name}: bugs`)
    t.false('ava' in m, `${name}: no ava config`)
    const files = filesOf(tarball)
    t.log(`${name}: ${files.length} files, ${(lstatSync(tarball).size / 1024).toFixed(1)} KiB packed`)
    t.deepEqual(files.filter((f) => f.endsWith('.map')), [], `${name}: no source maps`)
  }
  t.is((manifest(p.cli) as { repository: { directory?: string } }).repository.directory, 'packages/lifewatch-cli')
  // The library: its entry points, dist's modules and declarations, the loader, the docs.
  const main = filesOf(p.main)
  t.deepEqual(main.filter((f) => !/^dist\/[a-z-]+\.(js|d\.ts)$/.test(f)), ['LICENSE', 'README.md', 'binding.cjs', 'index.d.ts', 'package.json'])
  // One bundled module: the entry (its dependencies are loaded at run time, not bundled).
  t.deepEqual(main.filter((f) => f.endsWith('.js')), ['dist/index.js'])
  const cli = filesOf(p.cli)
  t.deepEqual(cli.filter((f) => !/^dist\/[a-z-]+\.js$/.test(f)), ['LICENSE', 'README.md', 'man/lifewatch.1', 'package.json', 'schema/events.schema.json'])
  // No module points at a map the package does not have.
  for (const [tarball, files] of [[p.main, main], [p.cli, cli]] as const) {
    for (const f of files.filter((x) => x.endsWith('.js'))) {
      t.notRegex(execFileSync('tar', ['-xzOf', tarball, `package/${f}`], { encoding: 'utf8' }), /sourceMappingURL/, f)
    }
  }
})

/** Names the modules share among themselves: none may appear in the published types. */
const INTERNAL = [
  // Task, Watch and CgroupWatch: what the monitor and the platform use to make and feed them.
  'trackOoms', 'WatchFeed', 'CgroupWatchFeed', 'CgroupWatchInit', 'newWatch', 'newCgroupWatch', 'connect',
  // The stream watches (host, tree, OOM-kill): the same, and their option checks.
  'StreamFeed', 'isCgroupEvent', 'newHostWatch', 'newTreeWatch', 'newOomKillWatch', 'checkHostWatch', 'checkTreeWatch', 'checkOomKillWatch', 'meterProviderOf',
  // The shared helpers.
  'checkPsi', 'checkCgroupWatch', 'checkSignal', 'checkOptions', 'checkPid', 'abortError', 'invalid', 'escalate', 'Killable',
  'Escalation', 'delivered', 'NativeExit', 'Telemetry', 'telemetry', 'Outcome', 'timer', 'within', 'TIMED_OUT', 'MAX_TIMER_MS',
  'callEach', 'describe',
  // The addon's own types.
  'binding', 'NativeMonitor', 'NativeProcess', 'NativeEvent', 'NativeCgroup', 'NativeCancel', 'FdKindStats',
]

/**
 * What the published declarations hold beyond the API: declaration files the entry point does
 * not reach, `any`, the internal names, and exported declarations that neither the entry point
 * exports nor its exports' types mention (an internal helper left public).
 */
function extraneous(pkg: string): { files: string[]; anys: string[]; internal: string[]; unreached: string[] } {
  const entry = join(pkg, 'index.d.ts')
  const program = ts.createProgram([entry], { noEmit: true, strict: true, typeRoots: [join(root, 'node_modules/@types')], types: ['node'] })
  const checker = program.getTypeChecker()
  const inPackage = (file: string) => !relative(pkg, file).startsWith('..') && !relative(pkg, file).split('/').includes('node_modules')
  const ours = program.getSourceFiles().filter((f) => inPackage(f.fileName))
  const shipped = (function walk(dir: string): string[] {
    return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
      e.name === 'node_modules' ? [] : e.isDirectory() ? walk(join(dir, e.name)) : /\.d\.[cm]?ts$/.test(e.name) ? [join(dir, e.name)] : [],
    )
  })(pkg)
  const at = (n: ts.Node) => {
    const f = n.getSourceFile()
    return `${relative(pkg, f.fileName)}:${f.getLineAndCharacterOfPosition(n.getStart()).line + 1}`
  }
  const anys: string[] = []
  const internal: string[] = []
  for (const f of ours) {
    f.forEachChild(function walk(n: ts.Node): void {
      if (n.kind === ts.SyntaxKind.AnyKeyword) anys.push(at(n))
      if ((ts.isIdentifier(n) || ts.isPrivateIdentifier(n)) && INTERNAL.includes(n.text)) internal.push(`${n.text} (${at(n)})`)
      n.forEachChild(walk)
    })
  }
  // The declarations the API reaches: the entry's exports, then whatever their text names.
  const top = (n: ts.Node): ts.Node | undefined => {
    while (n.parent && !ts.isSourceFile(n.parent)) n = n.parent
    return n.parent ? n : undefined
  }
  const reached = new Set<ts.Node>()
  const queue: ts.Node[] = []
  const reach = (symbol: ts.Symbol | undefined) => {
    if (!symbol) return
    const s = symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol
    for (const d of s.declarations ?? []) {
      const statement = ours.includes(d.getSourceFile()) ? top(d) : undefined
      if (statement && !reached.has(statement)) {
        reached.add(statement)
        queue.push(statement)
      }
    }
  }
  checker.getExportsOfModule(checker.getSymbolAtLocation(program.getSourceFile(entry)!)!).forEach(reach)
  while (queue.length > 0) {
    queue.pop()!.forEachChild(function walk(n: ts.Node): void {
      if (ts.isIdentifier(n)) reach(checker.getSymbolAtLocation(n))
      n.forEachChild(walk)
    })
  }
  const unreached = ours.flatMap((f) =>
    f.statements
      .filter((st) => !ts.isExportDeclaration(st) && !reached.has(st))
      .filter((st) => ts.canHaveModifiers(st) && ts.getModifiers(st)?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword))
      .map((st) => at(st)),
  )
  return { files: shipped.filter((f) => !ours.some((o) => o.fileName === f)).map((f) => relative(pkg, f)), anys, internal, unreached }
}

test.serial('the packed types are the public API: no internal names or declarations, no any; the documentation compiles against them', (t) => {
  t.timeout(4 * 60_000)
  const dir = project(t, [packed().platform, packed().main])
  const pkg = join(dir, 'node_modules/lifewatch')
  const found = extraneous(pkg)
  t.deepEqual(found.files, [], 'declaration files the entry point does not reach')
  t.deepEqual(found.anys, [], 'any in the published types')
  t.deepEqual(found.internal, [], 'internal names in the published types')
  t.deepEqual(found.unreached, [], 'exported declarations that are not API')
  // A strict project (skipLibCheck off) using the documented API: the docs' own blocks. They
  // bring the repo's OpenTelemetry SDK, so the peer is the repo's @opentelemetry/api too, as a
  // project has one copy of it (npm installed the newest 1.x for the peer here).
  const api = join(dir, 'node_modules/@opentelemetry/api')
  rmSync(api, { recursive: true })
  symlinkSync(join(root, 'node_modules/@opentelemetry/api'), api)
  const docs = docsProject(pkg)
  t.teardown(() => docs.remove())
  for (const compiler of [typescript5(), typescript7()]) {
    if ('skip' in compiler) {
      t.log(`TypeScript 7: skipped (${compiler.skip})`)
      continue
    }
    const r = docs.typecheck(compiler.tsc)
    t.log(`TypeScript ${compiler.version}: ${tsBlocks.length} documentation blocks against the tarball`)
    t.is(r.status, 0, r.output)
  }
})

/** Imports the installed library in `dir` (after `preload`, if given); what it threw, or 'loaded'. */
function importIn(dir: string, preload?: string): { name?: string; code?: string; message?: string; cause?: string } | 'loaded' {
  const script = `import('lifewatch').then(() => console.log('"loaded"'), (e) => console.log(JSON.stringify({ name: e.name, code: e.code, message: e.message, cause: e.cause?.message })))`
  const args = [...(preload ? ['--import', `data:text/javascript,${encodeURIComponent(preload)}`] : []), '--input-type=module', '-e', script]
  const r = spawnSync(process.execPath, args, { cwd: dir, env, encoding: 'utf8' })
  if (r.status !== 0) throw new Error(r.stderr)
  return JSON.parse(r.stdout) as ReturnType<typeof importIn>
}

const glibc = (process.report.getReport() as { header: { glibcVersionRuntime?: string } }).header.glibcVersionRuntime
/** This machine's platform package, as napi names it, and its addon. */
const platform = `lifewatch-linux-${process.arch}-${glibc ? 'gnu' : 'musl'}`
const addonIn = (dir: string) => join(dir, 'node_modules', platform, `${platform.replace('-', '.')}.node`)

/** The oldest glibc the gnu addons run on, as docs/api.md states it. */
function glibcFloor(): string {
  const m = /need\s+\*\*glibc (\d+\.\d+)\*\* or newer/.exec(readFileSync(join(root, 'docs/api.md'), 'utf8'))
  if (!m) throw new Error('docs/api.md states no glibc floor')
  return m[1]!
}

test.serial('the packed gnu addon needs no glibc newer than the documented floor; npm picks the platform package by os, cpu and libc', (t) => {
  const p = packed()
  const m = JSON.parse(execFileSync('tar', ['-xzOf', p.platform, 'package/package.json'], { encoding: 'utf8' })) as { os?: string[]; cpu?: string[]; libc?: string[] }
  t.deepEqual({ os: m.os, cpu: m.cpu, libc: m.libc }, { os: ['linux'], cpu: [process.arch], libc: [glibc ? 'glibc' : 'musl'] })
  const main = JSON.parse(execFileSync('tar', ['-xzOf', p.main, 'package/package.json'], { encoding: 'utf8' })) as { os?: string[]; optionalDependencies?: Record<string, string> }
  t.deepEqual(main.os, ['linux'])
  t.deepEqual(Object.keys(main.optionalDependencies ?? {}).sort(), ['arm64-gnu', 'arm64-musl', 'x64-gnu', 'x64-musl'].map((x) => `lifewatch-linux-${x}`))
  if (!glibc) return t.log('glibc floor: not checked on musl (the musl addon needs no glibc)')
  const objdump = spawnSync('objdump', ['--version'])
  if (objdump.status !== 0) return t.log('glibc floor: not checked, objdump (binutils) is not installed')
  const dir = mkdtempSync(join(tmpdir(), 'lifewatch-addon-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  execFileSync('tar', ['-xzf', p.platform, '-C', dir])
  const addon = join(dir, 'package', `${platform.replace('-', '.')}.node`)
  // The dynamic symbols' versions: what the loader demands of the C library.
  const versions = [...execFileSync('objdump', ['-T', addon], { encoding: 'utf8' }).matchAll(/\bGLIBC_(\d+)\.(\d+)/g)].map((v) => [Number(v[1]), Number(v[2])] as const)
  t.true(versions.length > 0, 'the addon names glibc symbol versions')
  const order = ([a, b]: readonly [number, number]) => a * 1000 + b
  const newest = versions.reduce((x, y) => (order(y) > order(x) ? y : x))
  const floor = glibcFloor().split('.').map(Number) as [number, number]
  t.log(`packed addon: newest symbol version GLIBC_${newest.join('.')}, documented floor glibc ${floor.join('.')}`)
  t.true(order(newest) <= order(floor), `the addon needs GLIBC_${newest.join('.')}, newer than the documented ${floor.join('.')}`)
})

test.serial("without the addon for this machine, importing the library is ERR_UNSUPPORTED_PLATFORM naming what it needs, napi's error the cause", (t) => {
  const p = packed()
  const libc = glibc ? `glibc ${glibc}` : 'musl'
  // npm install --omit=optional: no platform package.
  const missing = importIn(project(t, [p.main], ['--omit=optional']))
  t.like(missing, { name: 'LifewatchError', code: 'ERR_UNSUPPORTED_PLATFORM' })
  t.true(missing !== 'loaded' && missing.message!.includes(`(${process.arch} with ${libc}) is missing: install ${platform}`), JSON.stringify(missing))
  t.regex(missing !== 'loaded' ? missing.cause! : '', /^Cannot find native binding/)
  // Installed, but its addon does not load (as one built for a newer glibc would not).
  const broken = project(t, [p.platform, p.main])
  writeFileSync(addonIn(broken), 'not an ELF file')
  const failed = importIn(broken)
  t.like(failed, { name: 'LifewatchError', code: 'ERR_UNSUPPORTED_PLATFORM' })
  t.true(failed !== 'loaded' && failed.message!.includes(`(${process.arch} with ${libc}) is installed (${platform}) but did not load`), JSON.stringify(failed))
  // A glibc older than the floor docs/api.md states (the addon loads nowhere there).
  const [major, minor] = glibcFloor().split('.').map(Number) as [number, number]
  const tooOld = `${major}.${minor - 1}`
  const oldGlibc = importIn(
    broken,
    `const report = process.report.getReport.bind(process.report); process.report.getReport = (...a) => { const r = report(...a); r.header.glibcVersionRuntime = '${tooOld}'; return r }`,
  )
  t.like(oldGlibc, { name: 'LifewatchError', code: 'ERR_UNSUPPORTED_PLATFORM' })
  t.true(oldGlibc !== 'loaded' && oldGlibc.message!.includes(`needs glibc ${glibcFloor()} or newer: this glibc is ${tooOld}`), JSON.stringify(oldGlibc))
  // An architecture with no prebuilt addon.
  const other = importIn(project(t, [p.platform, p.main]), "Object.defineProperty(process, 'arch', { value: 'riscv64' })")
  t.like(other, { name: 'LifewatchError', code: 'ERR_UNSUPPORTED_PLATFORM' })
  t.true(
    other !== 'loaded' && other.message!.includes(`(riscv64 with ${libc}), only for linux-x64-gnu, linux-x64-musl, linux-arm64-gnu, linux-arm64-musl`),
    JSON.stringify(other),
  )
})
