// `lifewatch demo`: the foundation slice on processes it starts itself.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'

import { Monitor } from '../monitor.js'
import { fdStats, monotonicTime } from '../stats.js'
import { parse } from './args.js'
import { bold, dim, humanLine, jsonLine } from './format.js'

export const demoHelp = `Usage: lifewatch demo [--json]

Starts a few processes and watches them: a child that exits with a code, a non-child
(a grandchild whose parent is a shell) that exits with a code, a non-child that is
killed, and a child that ignores SIGTERM and is escalated to SIGKILL.`

/** A grandchild: its parent is a shell that waits for it, so it is not our child. */
async function nonChild(script: string): Promise<{ pid: number; shell: ChildProcess }> {
  const shell = spawn('sh', ['-c', `sh -c '${script}' & echo $!; wait`], { stdio: ['ignore', 'pipe', 'inherit'] })
  const lines = createInterface({ input: shell.stdout! })
  const [line] = (await once(lines, 'line')) as [string]
  // Only the PID was wanted: let go of the pipe so nothing the shell leaves keeps Node alive.
  lines.close()
  shell.stdout!.destroy()
  return { pid: Number(line), shell }
}

export async function demo(argv: string[]): Promise<number> {
  const { values } = parse(argv, { json: { type: 'boolean' } })
  if (values.help) {
    console.log(demoHelp)
    return 0
  }
  const say = (s: string) => values.json || console.log(s)
  const since = monotonicTime()
  await using monitor = new Monitor()
  say(bold(`lifewatch demo: watching with ${monitor.usesPidfd ? 'pidfd' : 'the polling fallback'}`))

  const child = spawn('sh', ['-c', 'sleep 0.2; exit 3'])
  monitor.watchPid(child.pid!)
  say(dim(`  child        pid ${child.pid}: exits with code 3 after 200 ms`))

  const exiter = await nonChild('sleep 0.4; exit 5')
  monitor.watchPid(exiter.pid)
  say(dim(`  non-child    pid ${exiter.pid} (parent: shell ${exiter.shell.pid}): exits with code 5 after 400 ms`))

  const victim = await nonChild('exec sleep 60')
  const victimWatch = monitor.watchPid(victim.pid)
  say(dim(`  non-child    pid ${victim.pid}: killed with SIGTERM through its pidfd after 600 ms`))

  const stubborn = spawn('sh', ['-c', 'trap "" TERM; while :; do sleep 1; done'])
  const stubbornWatch = monitor.watchPid(stubborn.pid!)
  say(dim(`  child        pid ${stubborn.pid}: ignores SIGTERM; kill() escalates to SIGKILL after 300 ms`))

  const kills = Promise.all([
    new Promise((r) => setTimeout(r, 600)).then(() => monitor.kill(victimWatch, { signal: 'SIGTERM', timeout: 1000 })),
    new Promise((r) => setTimeout(r, 800)).then(() => monitor.kill(stubbornWatch, { timeout: 300 })),
  ])

  let left = 4
  for await (const ev of monitor) {
    say(humanLine(ev, since))
    if (values.json) console.log(jsonLine(ev))
    if (ev.type === 'exit' && --left === 0) break
  }
  const [, forced] = await kills
  say(dim(`  escalated to SIGKILL: ${forced.forced}`))
  const fds = fdStats()
  say(dim(`  fds after close: ${Object.entries(fds).map(([k, v]) => `${k} ${v.inUse} in use / ${v.allocated} opened`).join(', ')}`))
  return 0
}
