// `@opentelemetry/api`, loaded at its first use instead of at import: it is some 60 modules,
// 10 to 25 ms of a fresh process's `import('lifewatch')`, and a program that watches exits
// without tracing never needs it. Loaded through `require`, synchronously: the API keeps the
// providers an application registers on a global shared by every copy and module format of
// one major version, so this copy sees them.
import { createRequire } from 'node:module'

import type * as Api from '@opentelemetry/api'

let api: typeof Api | undefined

export function otelApi(): typeof Api {
  return (api ??= createRequire(import.meta.url)('@opentelemetry/api') as typeof Api)
}
