// Brings a fresh clone (or a stale build) up to date: npm packages, the native addon,
// the TypeScript output. Each step runs only when its inputs are newer than its outputs.
import { chmodSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { addonName, mtime, newest, root, run } from './lib.mjs'

if (process.platform !== 'linux') {
  console.error('lifewatch builds and runs on Linux only')
  process.exit(1)
}

if (mtime('node_modules/.package-lock.json') < Math.max(mtime('package.json'), mtime('package-lock.json'))) {
  // `npm install`, not `npm ci`: npm 11.19 refuses even a freshly written lock (it reports the
  // empty-version optional entries of @napi-rs/lzma as missing). install still follows the lock.
  run('npm', ['install', '--no-audit', '--no-fund'])
}

const addon = addonName()
const nativeInputs = newest('crates', 'Cargo.toml', 'Cargo.lock')
if (mtime(addon) < nativeInputs || !mtime('binding.cjs')) {
  if (spawnSync('cargo', ['--version'], { cwd: root }).status !== 0) {
    console.error('the native addon is missing or stale and cargo is not on PATH: install Rust (https://rustup.rs)')
    process.exit(1)
  }
  // LIFEWATCH_DEBUG_BUILD=1: an unoptimised addon, for quick edit-test loops during development.
  const profile = process.env.LIFEWATCH_DEBUG_BUILD === '1' ? [] : ['--release']
  run('npx', ['napi', 'build', '--platform', ...profile, '--manifest-path', 'crates/lifewatch-node/Cargo.toml',
    '--output-dir', '.', '--js', 'binding.cjs', '--dts', 'binding.d.cts'])
}

if (mtime('dist/index.js') < Math.max(newest('src'), mtime('binding.d.cts'), mtime('tsconfig.json'))) {
  run('npx', ['tsc', '-p', 'tsconfig.build.json'])
  chmodSync(`${root}/dist/cli.js`, 0o755)
}
