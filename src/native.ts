// The one place the addon is loaded. On anything but Linux, importing lifewatch throws a
// clear error instead of a loader failure about a missing platform package; on Linux, an addon
// that does not load (its platform package missing, a glibc older than the addon needs) is named too.
import { createRequire } from 'node:module'

import { LifewatchError } from './errors.js'
import type * as Binding from '../binding.cjs'

if (process.platform !== 'linux') {
  throw new LifewatchError(
    'ERR_UNSUPPORTED_PLATFORM',
    `lifewatch supports Linux only (this is ${process.platform}): it is built on pidfd, epoll, inotify and cgroupfs`,
  )
}

const require = createRequire(import.meta.url)

function load(): typeof Binding {
  try {
    return require('../binding.cjs') as typeof Binding
  } catch (e) {
    throw new LifewatchError('ERR_UNSUPPORTED_PLATFORM', notLoaded(), { cause: e })
  }
}

/**
 * The oldest glibc the prebuilt gnu addons run on: they are linked against it (napi-rs's cross
 * toolchain, as scripts/pack.mjs and CI build them). docs/api.md states it; package.spec checks
 * the packed addon needs no newer symbol version.
 */
const GLIBC_FLOOR = '2.17'

/** A glibc version (`2.17`) as a number that orders as the versions do. */
const glibcOrder = (v: string) => {
  const [major = 0, minor = 0] = v.split('.').map(Number)
  return major * 1000 + minor
}

/** The architectures of napi's target triples, as its platform packages name them. */
const ARCH: Record<string, string> = { x86_64: 'x64', aarch64: 'arm64' }

/**
 * Why the addon did not load, for this machine: napi's loader says only that it found no
 * binding, and the first cause it gives names a WebAssembly package lifewatch does not build.
 */
function notLoaded(): string {
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined
  const glibc = report?.header?.glibcVersionRuntime
  const machine = `${process.arch} with ${glibc ? `glibc ${glibc}` : 'musl'}`
  const platform = `linux-${process.arch}-${glibc ? 'gnu' : 'musl'}`
  const pkg = require('../package.json') as { name: string; napi: { targets: string[] } }
  const built = pkg.napi.targets.map((t) => {
    const [arch = t] = t.split('-')
    return `linux-${ARCH[arch] ?? arch}-${t.split('-').pop()}`
  })
  if (!built.includes(platform)) {
    return `lifewatch has no prebuilt addon for this machine (${machine}), only for ${built.join(', ')}: build it from source with Rust`
  }
  if (glibc && glibcOrder(glibc) < glibcOrder(GLIBC_FLOOR)) {
    return `lifewatch's addon for this machine (${machine}) needs glibc ${GLIBC_FLOOR} or newer: this glibc is ${glibc}`
  }
  const name = `${pkg.name}-${platform}`
  try {
    require.resolve(`${name}/package.json`)
  } catch {
    return `lifewatch's addon for this machine (${machine}) is missing: install ${name}, which npm installs as an optional dependency of lifewatch unless optional dependencies were omitted or node_modules was installed on another platform`
  }
  return `lifewatch's addon for this machine (${machine}) is installed (${name}) but did not load: see the cause`
}

export const binding: typeof Binding = load()
// The addon creates every error it raises as a LifewatchError (code, errno, syscall, path).
binding.setErrorClass(LifewatchError)

export type NativeEvent = Binding.NativeEvent
export type NativeMonitor = Binding.NativeMonitor
export type NativeProcess = Binding.NativeProcess
export type NativeCgroup = Binding.NativeCgroup
export type NativeCancel = Binding.NativeCancel
export type FdKindStats = Binding.FdKindStats
