// Brings a fresh clone (or a stale build) up to date: npm packages, the native addon,
// the library's TypeScript output, the CLI package (packages/lifewatch-cli: its TypeScript
// output and man page). Each step runs only when its inputs are newer than its outputs.
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { execFileSync, spawnSync } from 'node:child_process'
import { addonName, mtime, newest, root, run } from './lib.mjs'

if (process.platform !== 'linux') {
  console.error('lifewatch builds and runs on Linux only')
  process.exit(1)
}

if (mtime('node_modules/.package-lock.json') < Math.max(mtime('package.json'), mtime('package-lock.json'), mtime('packages/lifewatch-cli/package.json'))) {
  // `npm install`, not `npm ci`: npm 11.19 refuses even a freshly written lock (it reports the
  // empty-version optional entries of @napi-rs/lzma as missing). install still follows the lock.
  run('npm', ['install', '--no-audit', '--no-fund'])
}

const addon = addonName()
// What the addon is compiled from, and nothing else: the fuzz crate's Cargo.lock, which the
// lint's `cargo check` writes, must not make a later step (pack.mjs, mid-way through npm test)
// rebuild the addon under the specs that are loading it.
const crates = ['crates/lifewatch-core', 'crates/lifewatch-node']
const nativeInputs = newest('Cargo.toml', 'Cargo.lock', ...crates.flatMap((c) => [`${c}/src`, `${c}/Cargo.toml`, `${c}/build.rs`]))
// LIFEWATCH_DEBUG_BUILD=1: an unoptimised addon, for quick edit-test loops during development.
// The profile built last is recorded, so a later plain run (a bench) gets a release build again.
const profile = process.env.LIFEWATCH_DEBUG_BUILD === '1' ? 'debug' : 'release'
const profileStamp = join(root, 'target', 'lifewatch-addon-profile')
const builtProfile = existsSync(profileStamp) ? readFileSync(profileStamp, 'utf8').trim() : 'release'
if (mtime(addon) < nativeInputs || !mtime('binding.cjs') || builtProfile !== profile) {
  if (spawnSync('cargo', ['--version'], { cwd: root }).status !== 0) {
    console.error('the native addon is missing or stale and cargo is not on PATH: install Rust (https://rustup.rs)')
    process.exit(1)
  }
  // Built aside and renamed into place: a process loading the addon meanwhile sees the old
  // file or the new one, never a missing or half-copied one.
  const staging = join(root, 'target', 'napi-out')
  rmSync(staging, { recursive: true, force: true })
  mkdirSync(staging, { recursive: true })
  run('npx', ['napi', 'build', '--platform', ...(profile === 'release' ? ['--release'] : []),
    '--manifest-path', 'crates/lifewatch-node/Cargo.toml', '--output-dir', staging, '--js', 'binding.cjs', '--dts', 'binding.d.cts'])
  for (const f of [addon, 'binding.cjs', 'binding.d.cts']) renameSync(join(staging, f), join(root, f))
  mkdirSync(dirname(profileStamp), { recursive: true })
  writeFileSync(profileStamp, profile)
}

if (mtime('dist/index.js') < Math.max(newest('src'), mtime('binding.d.cts'), mtime('tsconfig.json'), mtime('tsconfig.build.json'))) {
  run(process.execPath, ['scripts/build-ts.mjs'])
}

const cli = 'packages/lifewatch-cli'
// The CLI's output depends on its own sources only (the library's types are checked, not
// compiled in).
if (mtime(`${cli}/man/lifewatch.1`) < Math.max(newest(`${cli}/src`), mtime(`${cli}/package.json`), mtime(`${cli}/tsconfig.json`), mtime('tsconfig.json'))) {
  run('npx', ['tsc', '-p', `${cli}/tsconfig.json`])
  // A module removed from src/ (or an older build's source map) must not live on in dist/ (and
  // in the tarball). Removed after the build, never before: tests may be running the CLI
  // meanwhile (npm test packs it).
  const sources = new Set(readdirSync(join(root, cli, 'src')).map((f) => f.replace(/\.ts$/, '.js')))
  for (const f of readdirSync(join(root, cli, 'dist'))) if (!sources.has(f)) rmSync(join(root, cli, 'dist', f))
  chmodSync(join(root, cli, 'dist/cli.js'), 0o755)
  mkdirSync(join(root, cli, 'man'), { recursive: true })
  writeFileSync(join(root, cli, 'man/lifewatch.1'), execFileSync(process.execPath, [join(root, cli, 'dist/cli.js'), 'man']))
}
