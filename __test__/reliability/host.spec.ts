// Host-wide streams under load: 1,000 (10,000 with LIFEWATCH_CYCLES) open/close cycles of each
// new watch end with fds and the core's counters at baseline; a burst of exits through the
// process events connector arrives whole, or its loss is reported (never silent).
import test from 'ava'
import { spawn } from 'node:child_process'

import { fdStats, Monitor, type ExitEvent, type LifewatchEvent } from '../../src/index.js'
import { reaped } from '../helpers.js'
import { addedFds, fdTable, isRoot, report } from './helpers.js'

const CYCLES = Number(process.env.LIFEWATCH_CYCLES ?? 1000)
const BURST = Number(process.env.LIFEWATCH_BURST ?? 10_000)

const inUse = () => ({ netlink: fdStats().netlink.inUse, kmsg: fdStats().kmsg.inUse })

const sleeper = () => spawn('sleep', ['60'], { stdio: 'ignore' })

const noKmsg = isRoot ? undefined : 'needs CAP_SYSLOG (root) to open /dev/kmsg while kernel.dmesg_restrict may be 1'
if (noKmsg) console.log(`reliability/host.spec: SKIPPED: OOM-kill watch cycles: ${noKmsg}`)

const cycles: Array<[string, (m: Monitor, pid: number) => void, string?]> = [
  ['host watch', (m) => void m.unwatch(m.watchHost({ forks: true, execs: true }))],
  ['tree watch', (m, pid) => void m.unwatch(m.watchTree(pid))],
  ['OOM-kill watch', (m) => void m.unwatch(m.watchOomKills()), noKmsg],
  ['host, tree and OOM-kill watches on a monitor closed with them open', (_m, pid) => {
    const m = new Monitor()
    m.watchHost()
    m.watchTree(pid)
    if (!noKmsg) m.watchOomKills()
    m.close()
  }],
]

for (const [name, cycle, skip] of cycles) {
  ;(skip ? test.skip : test.serial)(`${CYCLES} cycles: ${name}, fds and counters at baseline`, async (t) => {
    t.timeout(Math.max(120_000, CYCLES * 20))
    const c = sleeper()
    // One cycle and a pause before the baseline: the first test of the file otherwise counts
    // fds the loading of the modules is still closing (one fewer than at its start, in a run).
    const warm = new Monitor()
    cycle(warm, c.pid!)
    warm.close()
    await new Promise((r) => setTimeout(r, 100))
    const fds = fdTable()
    const counted = inUse()
    const m = new Monitor()
    const t0 = Date.now()
    for (let i = 0; i < CYCLES; i++) cycle(m, c.pid!)
    const ms = Date.now() - t0
    t.is(m.stats.watches, 0)
    m.close()
    c.kill()
    await reaped(c)
    const left = addedFds(fds)
    const leaked = left.length
    t.deepEqual(left, [], 'every fd opened was closed')
    t.deepEqual(inUse(), counted, "the core's counters agree")
    t.log(`${name}: ${CYCLES} cycles in ${ms} ms`)
    report({ section: 'leak cycles', case: `node: ${name}`, fdsLeaked: leaked, eventsLost: 0, cycles: CYCLES })
  })
}

test.serial(`a burst of ${BURST} exits: every one reported with its code, or the loss reported`, async (t) => {
  t.timeout(120_000)
  const monitor = new Monitor()
  const host = monitor.watchHost()
  const codes = new Map<number, number | undefined>()
  const lost: LifewatchEvent[] = []
  let parent = 0
  host.onEvent((ev) => {
    if (ev.type === 'lost') lost.push(ev)
    else if (ev.type === 'exit' && ev.ppid === parent && parent !== 0) codes.set(ev.pid, ev.exitCode)
  })
  // One parent forks BURST children that exit at once with code (their PID mod 256), then
  // reaps them: the exits come as fast as one CPU can fork.
  const script = 'use POSIX; $|=1; print "$$\\n"; <STDIN>; for (1..$ARGV[0]) { my $p = fork // die; POSIX::_exit($$ % 256) if !$p } 1 while wait != -1'
  const burst = spawn('perl', ['-e', script, String(BURST)], { stdio: ['pipe', 'pipe', 'inherit'] })
  parent = Number((await new Promise<Buffer>((r) => burst.stdout!.once('data', r))).toString())
  const t0 = Date.now()
  burst.stdin!.end('go\n')
  const end = await host.waitFor((ev) => ev.type === 'exit' && ev.pid === parent, { signal: AbortSignal.timeout(100_000) })
  const ms = Date.now() - t0
  await reaped(burst)
  monitor.close()
  t.is((end as ExitEvent).exitCode, 0)
  const wrong = [...codes].filter(([pid, code]) => code !== pid % 256)
  t.deepEqual(wrong, [], 'each exit with its own code')
  const missing = BURST - codes.size
  t.log(`${codes.size} of ${BURST} exits in ${ms} ms; ${lost.length} loss reports`)
  if (missing > 0) t.true(lost.length > 0, `${missing} exits missing and no loss reported`)
  else t.is(codes.size, BURST)
  report({ section: 'burst', case: `node: ${BURST} exits through the connector`, fdsLeaked: 0, eventsLost: lost.length > 0 ? 0 : missing })
})
