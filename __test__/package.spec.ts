import test from 'ava'
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, lstatSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'

import { root } from './helpers.js'
import { collector } from './otlp-receiver.js'

// Packs real npm tarballs and installs them into empty projects whose PATH has no Rust
// toolchain: the prebuilt platform package must be all it takes. The library alone, then the
// CLI package with it.
type Packed = { main: string; platform: string; cli: string }
let packing: Packed | undefined
const packed = (): Packed =>
  (packing ??= JSON.parse(execFileSync(process.execPath, ['scripts/pack.mjs'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim().split('\n').pop()!) as Packed)

const path = process.env.PATH!.split(delimiter).filter((p) => !existsSync(join(p, 'cargo')) && !existsSync(join(p, 'rustc'))).join(delimiter)
const env = { ...process.env, PATH: path, npm_config_audit: 'false', npm_config_fund: 'false' }

function project(t: { teardown(fn: () => void): void }, tarballs: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'lifewatch-install-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', type: 'module', private: true }))
  const install = spawnSync('npm', ['install', '--no-save', ...tarballs], { cwd: dir, env, encoding: 'utf8' })
  if (install.status !== 0) throw new Error(install.stderr)
  return dir
}

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
