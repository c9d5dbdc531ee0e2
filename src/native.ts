// The one place the addon is loaded. On anything but Linux, importing lifewatch throws a
// clear error instead of a loader failure about a missing platform package.
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

export const binding: typeof Binding = require('../binding.cjs')
// The addon creates every error it raises as a LifewatchError (code, errno, syscall, path).
binding.setErrorClass(LifewatchError)

export type NativeEvent = Binding.NativeEvent
export type NativeMonitor = Binding.NativeMonitor
export type NativeProcess = Binding.NativeProcess
export type NativeCgroup = Binding.NativeCgroup
export type NativeCancel = Binding.NativeCancel
export type FdKindStats = Binding.FdKindStats
