// The cgroup manager on the real kernel of this host (hybrid: v1 memory, pids, cpu, freezer;
// unified without controllers) or any other layout; needs root. Test cgroups are named
// lifewatch-test-<pid>-<name> and deleted at the end of each test.
import test from 'ava'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { Cgroup, cgroupLayout, LifewatchError, Monitor, Task, fdStats } from '../src/index.js'
import { addedFds, fdTable, root, threaded } from './helpers.js'

const isRoot = process.getuid?.() === 0
if (!isRoot) console.log('cgroup.spec: SKIPPED: the tests that create cgroups: not running as root (the unprivileged path is tested by the ERR_PERMISSION test)')
const rooted = isRoot ? test.serial : test.serial.skip
const name = (what: string) => `lifewatch-test-${process.pid}-${what}`

function read(dir: string, file: string): string {
  return readFileSync(join(dir, file), 'utf8').trim()
}

/** Starts `n` sleepers as children of this process (so Node reaps them) and adds them. */
async function sleepers(cg: Cgroup, n: number): Promise<ChildProcess[]> {
  const kids = Array.from({ length: n }, () => spawn('sleep', ['1000'], { stdio: 'ignore' }))
  await Promise.all(kids.map((k) => once(k, 'spawn')))
  for (const k of kids) cg.add(k.pid!)
  return kids
}

rooted('create writes the limits in every hierarchy; delete removes every directory', async (t) => {
  const cg = Cgroup.create(name('limits'), { memory: '64M', swap: 0, pids: 32, cpu: 0.5, cpuWeight: 100 })
  t.is(cg.path, `/${name('limits')}`)
  const dirs = cg.dirs
  t.log(dirs)
  for (const d of Object.values(dirs)) t.true(existsSync(d), d)
  if (dirs.memory) {
    t.is(read(dirs.memory, 'memory.limit_in_bytes'), String(64 << 20))
    if (existsSync(join(dirs.memory, 'memory.memsw.limit_in_bytes'))) t.is(read(dirs.memory, 'memory.memsw.limit_in_bytes'), String(64 << 20))
  } else {
    t.is(read(dirs.unified!, 'memory.max'), String(64 << 20))
  }
  t.is(read(dirs.pids ?? dirs.unified!, 'pids.max'), '32')
  if (dirs.cpu) {
    t.is(read(dirs.cpu, 'cpu.cfs_quota_us'), '50000')
    t.is(read(dirs.cpu, 'cpu.shares'), '2597')
  } else {
    t.is(read(dirs.unified!, 'cpu.max'), '50000 100000')
  }
  t.like(cg.stats(), { memoryMax: 64 << 20, pidsMax: 32, procs: 0 })
  await cg.delete()
  for (const d of Object.values(dirs)) t.false(existsSync(d), d)
  const e = t.throws(() => Cgroup.open(name('limits'))) as LifewatchError
  t.is(e.code, 'ERR_NO_SUCH_CGROUP')
})

test('bad limits and paths are ERR_INVALID_ARGUMENT and create nothing', (t) => {
  const bad: Array<[string, object]> = [
    ['newline', { memory: '64M\n1' }],
    ['negative', { memory: -1 }],
    ['negative string', { memory: '-64M' }],
    ['unknown unit', { memory: '64Q' }],
    ['overflow', { memory: '1e400' }],
    ['huge', { memory: 1e400 }],
    ['NaN', { memory: NaN }],
    ['fraction of a byte', { memory: 1.5 }],
    ['pids control char', { pids: '5\t' }],
    ['pids unit', { pids: '10k' }],
    ['cpu zero', { cpu: 0 }],
    ['cpu bad period', { cpu: '50000 10' }],
    ['weight', { cpuWeight: 0 }],
    ['type', { memory: true }],
    ['unknown limit', { memroy: '64M' }],
  ]
  for (const [what, limits] of bad) {
    const e = t.throws(() => Cgroup.create(name('bad'), limits as never), undefined, what) as LifewatchError
    t.is(e?.code, 'ERR_INVALID_ARGUMENT', `${what}: ${e?.message}`)
  }
  for (const p of ['../escape', 'a/../../b', 'x\ny', '/tmp', '/', '']) {
    const e = t.throws(() => Cgroup.create(p)) as LifewatchError
    t.is(e.code, 'ERR_INVALID_ARGUMENT', JSON.stringify(p))
  }
  t.false(existsSync(`/sys/fs/cgroup/unified/${name('bad')}`))
  t.false(existsSync(`/sys/fs/cgroup/memory/${name('bad')}`))
})

rooted('spawn places the child in the cgroup before it execs, in v1 memory and unified', async (t) => {
  await using cg = Cgroup.create(name('spawn'))
  const monitor = new Monitor()
  const out = join(tmpdir(), `${name('spawn')}.out`)
  const fd = openSync(out, 'w')
  // cat is the first program the child runs: it prints where it was at exec.
  const w = cg.spawn('cat', ['/proc/self/cgroup'], { monitor, stdio: ['ignore', fd, 'inherit'] })
  closeSync(fd)
  t.true(w.pid > 0)
  const exit = await w.wait()
  t.is(exit.exitCode, 0)
  const lines = readFileSync(out, 'utf8').trim().split('\n')
  rmSync(out)
  t.log(w.placement, lines)
  const where = (ctrl: string) => lines.find((l) => l.split(':')[1] === ctrl)?.split(':')[2]
  if (cg.dirs.unified) {
    t.is(lines.find((l) => l.startsWith('0::'))?.slice(3), cg.path)
    t.is(w.placement, 'clone_into_cgroup')
  }
  if (cg.dirs.memory) t.is(where('memory'), cg.path)
  if (cg.dirs.pids) t.is(where('pids'), cg.path)
  monitor.close()
})

rooted('spawn errors: missing command, bad cwd, monitor required', async (t) => {
  await using cg = Cgroup.create(name('spawnerr'))
  const monitor = new Monitor()
  const e1 = t.throws(() => cg.spawn('lifewatch-no-such-command', [], { monitor })) as LifewatchError
  t.like(e1, { code: 'ERR_NO_SUCH_COMMAND', errno: -2, syscall: 'execve' })
  const e2 = t.throws(() => cg.spawn('true', [], { monitor, cwd: '/nonexistent-lifewatch' })) as LifewatchError
  t.is(e2.syscall, 'chdir')
  t.is(t.throws(() => cg.spawn('true', [], {} as never))?.message.includes('monitor'), true)
  t.deepEqual(cg.procs(), [])
  monitor.close()
})

rooted('kill resolves only when the cgroup is empty (51 processes), measured', async (t) => {
  const cg = Cgroup.create(name('kill'))
  const monitor = new Monitor()
  const w = cg.spawn('sh', ['-c', 'exec sleep 1000'], { monitor, stdio: 'ignore' })
  const kids = await sleepers(cg, 50)
  t.is(cg.procs().length, 51)
  const exits = kids.map((k) => once(k, 'exit'))
  const t0 = process.hrtime.bigint()
  const report = await cg.kill()
  const ms = Number(process.hrtime.bigint() - t0) / 1e6
  t.log(`kill -> empty: ${ms.toFixed(2)} ms`, report)
  if (existsSync(join(cg.dirs.unified ?? '/nonexistent', 'cgroup.kill'))) t.is(report.method, 'cgroup.kill')
  // Really empty the moment it resolves.
  t.deepEqual(cg.procs(), [])
  const s = cg.stats()
  t.is(s.procs, 0)
  if (s.populated !== undefined) t.false(s.populated)
  t.like(await w.wait(), { signal: 'SIGKILL' })
  await Promise.all(exits)
  await cg.delete()
  monitor.close()
})

rooted('freeze and thaw, and a frozen cgroup can still be killed', async (t) => {
  await using cg = Cgroup.create(name('freeze'))
  await sleepers(cg, 3)
  await cg.freeze()
  t.true(cg.stats().frozen)
  await cg.thaw()
  t.false(cg.stats().frozen)
  await cg.freeze()
  await cg.kill({ timeout: 10_000 })
  t.deepEqual(cg.procs(), [])
})

rooted('waitEmpty: AbortSignal, timeout, then resolves on the last exit', async (t) => {
  await using cg = Cgroup.create(name('wait'))
  await cg.waitEmpty()
  const [kid] = await sleepers(cg, 1)
  const ac = new AbortController()
  const p = cg.waitEmpty({ signal: ac.signal })
  setTimeout(() => ac.abort(), 20)
  await t.throwsAsync(p, { name: 'AbortError' })
  await t.throwsAsync(cg.waitEmpty({ signal: AbortSignal.abort() }), { name: 'AbortError' })
  const e = (await t.throwsAsync(cg.waitEmpty({ timeout: 30 }))) as LifewatchError
  t.is(e.code, 'ERR_TIMEOUT')
  const waiting = cg.waitEmpty({ timeout: 10_000 })
  kid!.kill('SIGKILL')
  await waiting
  t.deepEqual(cg.procs(), [])
})

rooted('delete: busy until timeout, then kill: true empties and removes it', async (t) => {
  const cg = Cgroup.create(name('busy'))
  const kids = await sleepers(cg, 2)
  const e = (await t.throwsAsync(cg.delete({ timeout: 200 }))) as LifewatchError
  t.is(e.code, 'ERR_TIMEOUT')
  t.like(e, { syscall: 'rmdir', errno: -16 }, "the kernel's EBUSY stays on the error")
  const dirs = Object.values(cg.dirs)
  await cg.delete({ kill: true })
  for (const d of dirs) t.false(existsSync(d))
  await Promise.all(kids.map((k) => (k.exitCode === null && k.signalCode === null ? once(k, 'exit') : null)))
})

rooted('500 create/delete cycles leave the fd count where it was', async (t) => {
  const cycle = async (i: number) => {
    const cg = Cgroup.create(name(`cycle${i % 4}`), { memory: '64M', pids: 16 })
    cg.stats()
    await cg.delete({ kill: true })
  }
  // Warm up first: earlier tests' child-process pipes and the first threads settle.
  for (let i = 0; i < 5; i++) await cycle(i)
  await new Promise((r) => setTimeout(r, 50))
  const before = fdTable()
  const counted = fdStats()
  const t0 = Date.now()
  for (let i = 0; i < 500; i++) await cycle(i)
  const added = addedFds(before)
  const counted2 = fdStats()
  t.log(
    `500 cycles in ${Date.now() - t0} ms; fds left open: ${added.length};`,
    `lifewatch fds opened ${counted2.control.allocated - counted.control.allocated} control,`,
    `${counted2.inotify.allocated - counted.inotify.allocated} inotify; in use after: control ${counted2.control.inUse}, inotify ${counted2.inotify.inUse}, eventfd ${counted2.eventfd.inUse - counted.eventfd.inUse} more`,
  )
  t.deepEqual(added, [], 'no fd left open')
  // The counters are process-wide: an earlier test's object finalised during the loop can
  // only lower them, while a leak of even one fd per cycle would show as +500.
  for (const k of ['control', 'inotify', 'pidfd', 'eventfd'] as const) {
    t.true(counted2[k].inUse <= counted[k].inUse, `${k}: in use ${counted[k].inUse} -> ${counted2[k].inUse}`)
  }
})

const noUnpriv = spawnSync('setpriv', ['--version']).error ? 'setpriv(1) not found' : !existsSync(join(root, 'dist/index.js')) ? 'dist/ not built' : undefined
if (isRoot && noUnpriv) console.log(`cgroup.spec: SKIPPED: unprivileged create: ${noUnpriv}`)
const unprivileged = noUnpriv ? test.serial.skip : rooted
unprivileged('unprivileged (uid 65534) create is ERR_PERMISSION and leaves nothing', (t) => {
  const script = `import(${JSON.stringify(join(root, 'dist/index.js'))}).then((m) => {
    try { m.Cgroup.create(${JSON.stringify(name('unpriv'))}, { memory: '64M' }); console.log('created') }
    catch (e) { console.log(e.code) }
  })`
  const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', script], { encoding: 'utf8' })
  t.is(r.stdout.trim(), 'ERR_PERMISSION', r.stderr)
  t.throws(() => Cgroup.open(name('unpriv')), { code: 'ERR_NO_SUCH_CGROUP' } as never)
})

rooted('stdio inherit reaches the child although Node opens its stdio close-on-exec', async (t) => {
  // Node marks fds 0-2 O_CLOEXEC: a child that merely "inherits" them lost them at exec.
  const script = `
    import { Cgroup, Monitor } from '${root}src/index.ts'
    const monitor = new Monitor()
    const cg = Cgroup.create('${name('stdio')}', {})
    const ev = await cg.spawn('sh', ['-c', 'echo inherited-stdout; echo inherited-stderr >&2'], { monitor, stdio: 'inherit' }).wait()
    await cg.delete()
    monitor.close()
    process.exitCode = ev.exitCode
  `
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: root, encoding: 'utf8' })
  t.is(r.status, 0, r.stderr)
  t.regex(r.stdout, /inherited-stdout/)
  t.regex(r.stderr, /inherited-stderr/)
})

rooted('create refuses a cgroup that exists (ERR_CGROUP_EXISTS, its limits untouched); adopt takes it over', async (t) => {
  const cg = Cgroup.create(name('exists'), { memory: '64M' })
  const memoryDir = cg.dirs.memory ?? cg.dirs.unified!
  const limitFile = cg.dirs.memory ? 'memory.limit_in_bytes' : 'memory.max'
  const e = t.throws(() => Cgroup.create(name('exists'), { memory: '32M' }), { instanceOf: LifewatchError })
  t.is(e!.code, 'ERR_CGROUP_EXISTS')
  t.regex(e!.message, /exists already/)
  t.is(read(memoryDir, limitFile), String(64 << 20), 'the refused create wrote nothing')
  // Two creators racing for one path: exactly one wins.
  const racing = await Promise.allSettled(Array.from({ length: 8 }, async () => Cgroup.create(name('race'))))
  const won = racing.filter((r) => r.status === 'fulfilled')
  t.is(won.length, 1)
  t.true(racing.every((r) => r.status === 'fulfilled' || (r.reason as LifewatchError).code === 'ERR_CGROUP_EXISTS'))
  await (won[0] as PromiseFulfilledResult<Cgroup>).value.delete()
  const adopted = Cgroup.create(name('exists'), { memory: '32M' }, { adopt: true })
  t.is(read(memoryDir, limitFile), String(32 << 20))
  t.throws(() => Cgroup.create(name('exists'), {}, { adopt: 'yes' as never }), { code: 'ERR_INVALID_ARGUMENT' })
  await adopted.delete()
  await cg.delete()
  t.false(existsSync(memoryDir))
})

rooted('add refuses a thread ID: the kernel would move its whole process', async (t) => {
  const cg = Cgroup.create(name('tid'))
  const { child, tid } = await threaded()
  const e = t.throws(() => cg.add(tid), { instanceOf: LifewatchError })
  t.is(e!.code, 'ERR_INVALID_ARGUMENT')
  t.is(e!.message, `pid ${tid} is a thread of process ${child.pid}, not a process`)
  t.deepEqual(cg.procs(), [], 'nothing was moved')
  child.kill('SIGKILL')
  await once(child, 'exit')
  await cg.delete()
})

rooted('a cgroup named by its directory must exist there, not only in another hierarchy', async (t) => {
  const { memory, cpu } = cgroupLayout().v1
  if (!memory || !cpu) return t.pass('needs the v1 memory and cpu hierarchies (hybrid or v1 host)')
  const dir = join(memory.mount, name('elsewhere'))
  mkdirSync(dir)
  const monitor = new Monitor()
  try {
    const w = monitor.watchCgroup(dir)
    t.true(w.active)
    for (const call of [() => monitor.watchCgroup(join(cpu.mount, name('elsewhere'))), () => Cgroup.open(join(cpu.mount, name('elsewhere')))]) {
      const e = t.throws(call, { instanceOf: LifewatchError })
      t.is(e!.code, 'ERR_NO_SUCH_CGROUP')
      t.regex(e!.message, /does not exist/)
    }
    const none = t.throws(() => monitor.watchCgroup(dir, { oom: false, events: false }), { instanceOf: LifewatchError })
    t.is(none!.code, 'ERR_INVALID_ARGUMENT', 'a watch for nothing is the caller\'s mistake')
  } finally {
    monitor.close()
    rmdirSync(dir)
  }
})

rooted('a command that cannot start fails the same way with or without a cgroup', async (t) => {
  const monitor = new Monitor()
  const cg = Cgroup.create(name('same'))
  try {
    for (const [cmd, cwd] of [
      ['/nonexistent/cmd', undefined],
      ['/etc/passwd/x', undefined],
      ['/etc/passwd', undefined],
      ['true', '/nonexistent-dir'],
      ['true', '/etc/passwd'],
    ] as const) {
      const plain = (await Task.spawn(cmd, [], { monitor, cwd, stdio: 'ignore' }).catch((e) => e)) as LifewatchError
      const inCgroup = (await Task.spawn(cmd, [], { monitor, cwd, stdio: 'ignore', cgroup: cg }).catch((e) => e)) as LifewatchError
      const what = `${cmd} in ${cwd ?? 'this directory'}`
      t.true(plain instanceof LifewatchError, `${what}: ${plain}`)
      t.deepEqual(
        { code: plain.code, errno: plain.errno, syscall: plain.syscall, message: plain.message },
        { code: inCgroup.code, errno: inCgroup.errno, syscall: inCgroup.syscall, message: inCgroup.message },
        what,
      )
    }
    const missing = (await Task.spawn('/nonexistent/cmd', [], { monitor }).catch((e) => e)) as LifewatchError
    t.like(missing, { code: 'ERR_NO_SUCH_COMMAND', errno: -2, syscall: 'execve' })
  } finally {
    await cg.delete()
    monitor.close()
  }
})

test('limit errors show the value as JavaScript wrote it', (t) => {
  for (const [limits, shown] of [
    [{ memory: -1 }, 'memory limit -1 is invalid: negative'],
    [{ memory: Infinity }, 'memory limit Infinity is invalid: use "max" for no limit'],
    [{ pids: -3 }, 'pids limit -3 is invalid: negative'],
    [{ cpu: Infinity }, 'cpu limit Infinity is invalid: use "max" for no limit'],
    [{ cpuWeight: 1e20 }, 'cpuWeight limit 100000000000000000000 is invalid: larger than 10000'],
  ] as const) {
    t.throws(() => Cgroup.create(name('shown'), limits), { code: 'ERR_INVALID_ARGUMENT', message: shown })
  }
})
