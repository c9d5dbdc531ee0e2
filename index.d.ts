// The package's types: the TypeScript layer's declarations, emitted to dist/. They name Node's
// own types (`node:events`, `NodeJS.Signals`, `AsyncDisposable`), so they load @types/node
// themselves rather than rely on the consumer's compiler including it: TypeScript 7 includes
// no @types package unless `types` names it.
/// <reference types="node" />
export * from './dist/index.js'
