import test from 'ava'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

import { fdStats, Monitor, registerFdMetrics, type FdKind } from '../src/index.js'
import { fixture, node, root } from './helpers.js'
import { otel } from './otel.js'

const KINDS: FdKind[] = ['epoll', 'pidfd', 'eventfd', 'inotify', 'psi', 'control', 'timerfd', 'netlink', 'kmsg']

type Run = { metrics: Array<{ name: string; points: Array<{ attributes: Record<string, unknown>; value: number | null }> }>; skipped: string[]; cgroups: string[] }
let running: Promise<Run> | undefined
/** The clean run of __test__/fixtures/clean.ts, once for the tests that read it. */
const clean = () =>
  (running ??= node(['--expose-gc', fixture('clean.ts')], { timeoutMs: 90_000 }).then((r) => {
    if (r.code !== 0) throw new Error(`clean.ts exited ${r.code ?? r.signal}: ${r.stderr}`)
    return JSON.parse(r.stdout) as Run
  }))

/** One fd instrument's values by kind. */
function byKind(run: Run, name: string): Record<string, number | null> {
  const m = run.metrics.find((x) => x.name === name)
  if (!m) throw new Error(`${name} was not collected`)
  return Object.fromEntries(m.points.map((p) => [p.attributes['lifewatch.fd.kind'], p.value]))
}

test.serial('a clean run (every owner closed as documented) leaves lifewatch.fd.leak_prevented at 0 for every fd kind', async (t) => {
  t.timeout(2 * 60_000)
  const run = await clean()
  for (const s of run.skipped) t.log(`left out: ${s}`)
  const zero = Object.fromEntries(KINDS.map((k) => [k, 0]))
  t.deepEqual(byKind(run, 'lifewatch.fd.leak_prevented'), zero, 'closed by a finalizer or an error path')
  t.deepEqual(byKind(run, 'lifewatch.fd.in_use'), zero, 'still open')
  // The run opened each kind it claims to exercise: a count of 0 must mean closed, not unused.
  const allocated = byKind(run, 'lifewatch.fd.allocated')
  t.log(`allocated: ${JSON.stringify(allocated)}`)
  const cgroups = !run.skipped.some((s) => s.startsWith('cgroups'))
  const psi = cgroups && !run.skipped.some((s) => s.startsWith('psi'))
  const kmsg = !run.skipped.some((s) => s.startsWith('kmsg'))
  const used = KINDS.filter((k) => (k === 'psi' ? psi : k === 'kmsg' ? kmsg : k === 'inotify' || k === 'control' ? cgroups : true))
  for (const k of used) t.true((allocated[k] ?? 0) > 0, `${k} fds were opened`)
  t.deepEqual(byKind(run, 'lifewatch.fd.released'), allocated)
})

/** The attributes each instrument carries, as docs/telemetry.md's metrics table lists them. */
function documentedAttributes(): Map<string, string[]> {
  const md = readFileSync(join(root, 'docs/telemetry.md'), 'utf8')
  const table = md.slice(md.indexOf('## Metrics'), md.indexOf('## Reading them back'))
  const out = new Map<string, string[]>()
  for (const row of table.split('\n').filter((l) => l.startsWith('| `'))) {
    const [name, , attributes] = row.split('|').slice(1).map((c) => c.trim())
    out.set(name!.replace(/`/g, ''), [...attributes!.matchAll(/`([^`]+)`/g)].map((m) => m[1]!))
  }
  return out
}

test.serial('metric attributes are the documented ones: no cgroup path or PID, so runs do not make new series', async (t) => {
  t.timeout(2 * 60_000)
  const run = await clean()
  const documented = documentedAttributes()
  t.true(documented.size >= 9, `docs/telemetry.md's table lists ${documented.size} instruments`)
  t.true(run.metrics.length > 0)
  for (const m of run.metrics) {
    const allowed = documented.get(m.name)
    t.truthy(allowed, `${m.name} is in docs/telemetry.md`)
    for (const p of m.points) {
      t.deepEqual(Object.keys(p.attributes).filter((k) => !allowed?.includes(k)), [], `${m.name}: undocumented attributes`)
      const values = Object.values(p.attributes).map(String)
      t.false(
        values.some((v) => run.cgroups.some((c) => v.includes(c.split('/').pop()!))),
        `${m.name}: a cgroup path among ${JSON.stringify(p.attributes)}`,
      )
    }
  }
  if (run.cgroups.length === 0) t.log('no cgroup was made (not root): the cgroup-path check had none to look for')
})

test.serial('registerFdMetrics puts the fd instruments on the given meter provider, once; bad input is ERR_INVALID_ARGUMENT', async (t) => {
  const o = otel()
  const other = otel()
  registerFdMetrics(o.meterProvider)
  registerFdMetrics(o.meterProvider)
  new Monitor().close()
  const expected = fdStats()
  const m = await o.metrics()
  for (const [name, field] of [
    ['lifewatch.fd.allocated', 'allocated'],
    ['lifewatch.fd.released', 'released'],
    ['lifewatch.fd.in_use', 'inUse'],
    ['lifewatch.fd.leak_prevented', 'leakPrevented'],
  ] as const) {
    const points = m.get(name)?.dataPoints ?? []
    t.deepEqual(points.map((p) => p.attributes['lifewatch.fd.kind']).sort(), [...KINDS].sort(), `${name}: one point per kind`)
    t.is(points.find((p) => p.attributes['lifewatch.fd.kind'] === 'epoll')?.value, expected.epoll[field], `${name}: the core's count`)
  }
  t.deepEqual([...(await other.metrics()).keys()].filter((n) => n.startsWith('lifewatch.fd.')), [], 'nothing on a provider not given')
  for (const bad of [5, 'x', null, {}, { getMeter: 1 }]) {
    t.throws(() => registerFdMetrics(bad as never), { code: 'ERR_INVALID_ARGUMENT' }, JSON.stringify(bad))
  }
  await o.meterProvider.shutdown()
  await other.meterProvider.shutdown()
})
