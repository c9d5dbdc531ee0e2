// The ava suite's settings, here rather than in package.json so that the published manifest
// carries no test-runner configuration.
export default {
  files: ['__test__/**/*.spec.ts'],
  extensions: { ts: 'module' },
  nodeArguments: ['--import', 'tsx'],
  workerThreads: false,
  timeout: '2m',
  concurrency: 2,
}
