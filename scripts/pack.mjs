// Builds the npm tarballs: the main package and this machine's platform package, as
// `napi prepublish` would lay them out, and the CLI package (packages/lifewatch-cli), into
// pack/. Prints the tarball paths as JSON.
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import { addonName, root, run } from './lib.mjs'

const out = join(root, 'pack')
rmSync(out, { recursive: true, force: true })
mkdirSync(out)

// Always a release build: a debug addon left by a development loop must never ship.
// ensure.mjs builds one when the last build was not (it records the profile), and rebuilds
// the addon, the library and the CLI only when stale: a fresh tree is not rewritten while
// other specs load it (npm test packs in parallel with them).
run(process.execPath, ['scripts/ensure.mjs'], { env: { ...process.env, LIFEWATCH_DEBUG_BUILD: '0' } })

const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
const triples = { 'x86_64-unknown-linux-gnu': 'linux-x64-gnu', 'x86_64-unknown-linux-musl': 'linux-x64-musl',
  'aarch64-unknown-linux-gnu': 'linux-arm64-gnu', 'aarch64-unknown-linux-musl': 'linux-arm64-musl' }
const platform = addonName().replace(/^lifewatch\./, '').replace(/\.node$/, '')
// Only this machine's target can be built here (CI's matrix builds the rest), and
// `napi artifacts` wants every configured one: give it a config naming just this one.
const local = join(out, 'napi.json')
const triple = Object.keys(triples).find((t) => triples[t] === platform)
writeFileSync(local, JSON.stringify({ ...pkg.napi, targets: [triple] }))
// napi lays out the platform package in a copy of the package (its package.json and the
// addon): `napi artifacts` rewrites the addon in the package root too, and npm test packs
// while other specs load the repo's addon.
const napiRoot = join(out, 'napi')
mkdirSync(join(napiRoot, 'addon'), { recursive: true })
cpSync(join(root, 'package.json'), join(napiRoot, 'package.json'))
if (platform.endsWith('-gnu')) {
  // As CI builds it: linked against glibc 2.17 by napi-rs's cross toolchain. The repo's addon
  // links against this machine's glibc, and would need it (2.34 or so) wherever it is installed.
  // The toolchain is fetched once into ~/.napi-rs and unpacked with @napi-rs/lzma; package.json
  // pins both (`overrides`): lzma 1.5 wants Node 22.20 or newer, so on Node 20 npm skipped its
  // native part and a machine without the cached toolchain could not pack, and the toolchain
  // 1.0.5 asks for a target package the registry here does not have (1.0.0 it has).
  run('npx', ['napi', 'build', '--platform', '--release', '--target', triple, '--use-napi-cross', '--manifest-path', 'crates/lifewatch-node/Cargo.toml',
    '--output-dir', join(napiRoot, 'addon'), '--no-js', '--dts', 'binding.d.cts'])
} else {
  cpSync(join(root, addonName()), join(napiRoot, 'addon', addonName()))
}
run('npx', ['napi', 'create-npm-dirs', '--cwd', napiRoot])
run('npx', ['napi', 'artifacts', '--cwd', napiRoot, '--output-dir', 'addon', '--config-path', local])
const platformDir = join(napiRoot, 'npm', platform)
if (!existsSync(join(platformDir, addonName()))) throw new Error(`napi artifacts did not place ${addonName()} in ${platformDir}`)

// The main package names every platform package as optional, as `napi prepublish` does.
const stage = join(out, 'stage')
mkdirSync(stage)
for (const f of [...pkg.files, 'README.md', 'LICENSE']) if (existsSync(join(root, f))) cpSync(join(root, f), join(stage, f), { recursive: true })
pkg.optionalDependencies = Object.fromEntries(pkg.napi.targets.map((t) => [`${pkg.name}-${triples[t]}`, pkg.version]))
delete pkg.devDependencies
delete pkg.scripts
// This repo's workspace layout, not the published package's.
delete pkg.workspaces
delete pkg.overrides
writeFileSync(join(stage, 'package.json'), JSON.stringify(pkg, null, 2) + '\n')

const pack = (dir) => join(out, execFileSync('npm', ['pack', '--silent', '--pack-destination', out], { cwd: dir, encoding: 'utf8' }).trim().split('\n').pop())
const result = { main: pack(stage), platform: pack(platformDir), cli: pack(join(root, 'packages/lifewatch-cli')) }
rmSync(stage, { recursive: true })
console.log(JSON.stringify(result))
