// `lifewatch top` on real cgroups: piped (tables, NDJSON snapshots, an OOM kill shown as it
// happens) and under a real pseudo-terminal (tmux): a table that fits the terminal, redrawn
// when it is resized, q quits.
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import test from 'ava'

import { lines, type Line } from './cli-lines.js'
import { CLI, cli } from './helpers.js'

const isRoot = process.getuid?.() === 0
const env = { NO_COLOR: '1' }
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** A `lifewatch run` holding a cgroup under `parent` until its stdin closes. */
function holder(parent: string, name: string, extra: string[] = [], script = 'read x; exit 0') {
  return spawn(process.execPath, [CLI, 'run', '--parent', parent, '--name', name, ...extra, '--', 'sh', '-c', script], { stdio: ['pipe', 'ignore', 'pipe'], env: { ...process.env, ...env } })
}

/** The exit status of a child, whether or not it has already exited. */
async function status(child: ReturnType<typeof spawn>): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode
  return ((await once(child, 'exit')) as [number | null])[0]
}

async function until(what: string, check: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(50)
  }
}

test('top --once: a table of the cgroups under the root; --json: a snapshot that validates', async (t) => {
  if (!isRoot) return t.pass('creating cgroups needs root')
  const parent = `lifewatch/top-once-${process.pid}`
  const h = holder(parent, 'job')
  t.teardown(() => h.stdin.end())
  await until('the cgroup', () => {
    try {
      return readFileSync(`/sys/fs/cgroup/memory/${parent}/job/cgroup.procs`, 'utf8').trim() !== ''
    } catch {
      return false
    }
  })
  const r = await cli(['top', '--once', '--root', parent], { env })
  t.is(r.code, 0, r.stderr)
  t.regex(r.stdout, /^CGROUP +TASKS +%CPU +MEMORY +PEAK +MAX +PSI-MEM +OOM$/m)
  t.regex(r.stdout, new RegExp(`^/${parent}/job +1 +[\\d.]+ +[\\d.]+[BKMG] `, 'm'))
  const j = await cli(['top', '--once', '--json', '--root', parent], { env })
  t.is(j.code, 0, j.stderr)
  const [snap] = lines(t, j.stdout)
  t.is(snap!.type, 'snapshot')
  const job = (snap!.cgroups as Array<Record<string, unknown>>).find((c) => c.cgroup === `/${parent}/job`)!
  t.is(job.pidsCurrent, 1)
  t.is(typeof job.cpuPercent, 'number')
  t.is(typeof job.cpuUserUsec, 'number')
  h.stdin.end()
  t.is(await status(h), 0)
})

test('top --json: snapshots on the interval, and an OOM kill the moment it happens', async (t) => {
  if (!isRoot) return t.pass('creating cgroups needs root')
  const parent = `lifewatch/top-oom-${process.pid}`
  const keep = holder(parent, 'keep')
  t.teardown(() => keep.stdin.end())
  await until('the parent', () => spawnSync('test', ['-d', `/sys/fs/cgroup/memory/${parent}/keep`]).status === 0)
  // The hog's cgroup exists (with a limit) before top lists it; the hog eats once released.
  const hog = holder(parent, 'hog', ['--memory', '32M', '--swap', '0'], 'read x; exec tail /dev/zero')
  await until('the hog cgroup', () => spawnSync('test', ['-d', `/sys/fs/cgroup/memory/${parent}/hog`]).status === 0)
  // A long interval: the OOM line cannot come from a refresh.
  const top = spawn(process.execPath, [CLI, 'top', '--json', '--interval', '1m', '--root', parent], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  top.stdout.on('data', (d) => (out += d))
  await until('a snapshot with the hog', () => out.includes('/hog"'))
  const t0 = Date.now()
  hog.stdin.end() // the hog starts eating
  await until('the oom line', () => out.includes('"type":"oom"'))
  t.true(Date.now() - t0 < 30_000)
  top.kill('SIGTERM')
  t.is(await status(top), 143)
  const got: Line[] = lines(t, out)
  t.is(got[0]!.type, 'snapshot')
  const oom = got.find((l) => l.type === 'oom')!
  t.is(oom.cgroup, `/${parent}/hog`)
  t.true((oom.kills as number) >= 1)
  // Root reads the kernel log: the line names its victim, the hog's tail.
  t.like((oom.victims as Array<Record<string, unknown>>)?.[0], { comm: 'tail', cgroup: `/${parent}/hog` })
  t.is(await status(hog), 137)
  keep.stdin.end()
  t.is(await status(keep), 0)
})

test('top under a real terminal (tmux): fits the width, redraws on resize, q quits with 0', async (t) => {
  if (spawnSync('tmux', ['-V']).status !== 0) return t.pass('tmux not installed')
  const dir = mkdtempSync(join(tmpdir(), 'lw-top-'))
  const session = `lw-top-${process.pid}`
  const tmux = (...args: string[]) => spawnSync('tmux', ['-L', session, ...args], { encoding: 'utf8' })
  t.teardown(() => {
    tmux('kill-server')
    rmSync(dir, { recursive: true, force: true })
  })
  const status = join(dir, 'status')
  const started = tmux('new-session', '-d', '-x', '120', '-y', '15', `${process.execPath} ${CLI} top --all --interval 0.5; echo $? > ${status}; sleep 30`)
  t.is(started.status, 0, started.stderr)
  const screen = () => tmux('capture-pane', '-p').stdout
  await until('the table', () => /CGROUP +TASKS/.test(screen()))
  const wide = screen().split('\n')
  t.regex(wide[0]!, /^lifewatch top: \d+ cgroups under \/, every 0.5s/)
  t.true(wide.every((l) => l.length <= 120))
  t.true(wide.filter(Boolean).length <= 15, 'fits the height')
  t.regex(screen(), /more \(a taller terminal shows them\)|^\/ /m)
  tmux('resize-window', '-x', '60', '-y', '10')
  await until('a redraw at 60 columns', () => {
    const l = screen().split('\n')
    return /CGROUP/.test(l[1] ?? '') && l.every((x) => x.length <= 60) && l.some((x) => x.includes('…'))
  })
  t.true(screen().split('\n').filter(Boolean).length <= 10)
  tmux('send-keys', 'q')
  await until('top to quit', () => {
    try {
      return readFileSync(status, 'utf8').trim() === '0'
    } catch {
      return false
    }
  })
  t.pass()
})
