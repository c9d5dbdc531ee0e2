import test from 'ava'
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'

import { root } from './helpers.js'

// Packs real npm tarballs and installs them into an empty project whose PATH has no Rust
// toolchain: the prebuilt platform package must be all it takes.
test('the packed tarballs install without Rust and watch a real process', (t) => {
  const packed = JSON.parse(execFileSync(process.execPath, ['scripts/pack.mjs'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim().split('\n').pop()!) as { main: string; platform: string }
  const dir = mkdtempSync(join(tmpdir(), 'lifewatch-install-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const path = process.env.PATH!.split(delimiter).filter((p) => !existsSync(join(p, 'cargo')) && !existsSync(join(p, 'rustc'))).join(delimiter)
  const env = { ...process.env, PATH: path, npm_config_audit: 'false', npm_config_fund: 'false' }
  t.not(spawnSync('cargo', ['--version'], { env }).status, 0, 'cargo must not be reachable in the install test')
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', type: 'module', private: true }))
  const install = spawnSync('npm', ['install', '--no-save', packed.platform, packed.main], { cwd: dir, env, encoding: 'utf8' })
  t.is(install.status, 0, install.stderr)
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
  const sleeper = spawn('sh', ['-c', 'sleep 1; exit 12'], { stdio: 'ignore' })
  const cli = spawnSync(join(dir, 'node_modules/.bin/lifewatch'), ['watch', '--json', '--pid', String(sleeper.pid)], { cwd: dir, env, encoding: 'utf8', timeout: 20_000 })
  t.is(cli.status, 0, cli.stderr)
  t.like(JSON.parse(cli.stdout), { type: 'exit', pid: sleeper.pid, exitCode: 12 })
  const help = spawnSync(join(dir, 'node_modules/.bin/lifewatch'), ['--help'], { cwd: dir, env, encoding: 'utf8' })
  t.is(help.status, 0, help.stderr)
  t.regex(help.stdout, /Usage: lifewatch <command>/)
})
