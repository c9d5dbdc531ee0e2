// Scenario 7: host-wide scale. A generator (perl, not a child of lifewatch's) forks children
// that exit at once, paced at a target rate, for a few seconds; one host watch sees every exit
// through the process events connector. Measured: the exits seen of those the generator made,
// `lost` events (the kernel's sequence numbers checked), and the CPU this Node process (its
// JS thread and the reactor's) spent while they came, as a share of one core.
import { spawn } from 'node:child_process'
import { once } from 'node:events'

import { Monitor } from '../../src/index.js'
import { threads } from '../lib/proc.js'
import type { ScenarioConfig, ScenarioOutput } from '../lib/types.js'

const RATE = 5_000
const CPU_GOAL = 10

// Every 10 ms, forks what the rate asks for since its start; each child exits at once. Prints
// its PID, waits for a line, then at the end prints how many children it made.
const GENERATOR = `
use POSIX (); use Time::HiRes qw(time sleep);
$| = 1; print "$$\\n"; <STDIN>;
my ($rate, $secs) = @ARGV; my $t0 = time; my $made = 0;
while ((my $el = time - $t0) < $secs) {
  while ($made < $el * $rate) { my $p = fork // die "fork: $!"; POSIX::_exit(0) if !$p; $made++ }
  1 while waitpid(-1, POSIX::WNOHANG()) > 0;
  sleep 0.01;
}
1 while wait != -1;
print "$made\\n";
`

export async function run(cfg: ScenarioConfig): Promise<ScenarioOutput> {
  const seconds = cfg.quick ? 1 : 10
  const monitor = new Monitor()
  try {
    monitor.watchHost()
    let generator = 0
    let seen = 0
    let lostEvents = 0
    let lostCount = 0
    let lastAt = 0n
    // The monitor's iterator consumes every event (a monitor nobody reads keeps them queued).
    const reading = (async () => {
      for await (const ev of monitor) {
        if (ev.type === 'lost') {
          lostEvents++
          lostCount += ev.count ?? 0
        } else if (ev.type === 'exit' && ev.ppid === generator) {
          seen++
          lastAt = process.hrtime.bigint()
        }
      }
    })()
    const gen = spawn('perl', ['-e', GENERATOR, String(RATE), String(seconds)], { stdio: ['pipe', 'pipe', 'inherit'] })
    let out = ''
    gen.stdout!.on('data', (d) => (out += d))
    while (!out.includes('\n')) await once(gen.stdout!, 'data')
    generator = Number(out.split('\n')[0])
    const threads0 = new Map(threads().map((th) => [th.tid, th.cpuMs]))
    const cpu0 = process.cpuUsage()
    const t0 = process.hrtime.bigint()
    gen.stdin!.end('go\n')
    await once(gen, 'exit')
    const genMs = Number(process.hrtime.bigint() - t0) / 1e6
    const made = Number(out.trim().split('\n')[1])
    // The last exits may still be on their way: wait until they are in, or 2 s of nothing.
    const settle = Date.now()
    while (seen + lostCount < made && Date.now() - settle < 2_000) await new Promise((r) => setTimeout(r, 20))
    const end = lastAt > t0 ? lastAt : process.hrtime.bigint()
    const cpu = process.cpuUsage(cpu0)
    // Where the CPU went: by thread name (the JS thread is the process's own name).
    const byThread: Record<string, number> = {}
    for (const th of threads()) {
      const name = th.tid === process.pid ? 'js' : th.name
      byThread[name] = (byThread[name] ?? 0) + th.cpuMs - (threads0.get(th.tid) ?? 0)
    }
    const wallMs = Number(end - t0) / 1e6
    const cpuMs = (cpu.user + cpu.system) / 1000
    const share = (cpuMs / wallMs) * 100
    // The pace the generator reached, as this machine let it.
    const rate = made / (genMs / 1000)
    const missing = made - seen
    const noneLost = missing === 0 && lostEvents === 0
    monitor.close()
    await reading
    return {
      tables: [
        {
          title: `Host-wide exits: ${made} exits in ${(wallMs / 1000).toFixed(1)} s through the connector`,
          columns: ['exits made', 'exits seen', 'lost events', 'exits/s', 'CPU ms', 'CPU % of one core'],
          rows: [[made, seen, lostEvents, Math.round(rate), Math.round(cpuMs), share.toFixed(1)]],
        },
      ],
      goals: [
        {
          goal: `${RATE} process exits/s through the process events connector at < ${CPU_GOAL}% of one core, none lost`,
          measured: `${Math.round(rate)} exits/s, ${share.toFixed(1)}% of one core, ${seen} of ${made} seen, ${lostEvents} loss reports`,
          // A machine too busy to fork at the rate measures nothing about the goal's rate.
          met: rate >= RATE * 0.9 ? share < CPU_GOAL && noneLost : null,
        },
      ],
      notes: [
        `A perl generator forked children that _exit at once, paced at ${RATE}/s for ${seconds} s; one host watch counted the exits whose ppid was the generator. CPU from process.cpuUsage() (every thread of this process) from the start of the generation to the last exit seen; by thread (10 ms ticks): ${Object.entries(byThread).filter(([, ms]) => ms > 0).map(([n, ms]) => `${n} ${Math.round(ms)} ms`).join(', ')}. The machine's other work runs meanwhile: the rate the generator reaches is part of the result.`,
      ],
      data: { made, seen, genMs, lostEvents, lostCount, wallMs, cpuMs, userMs: cpu.user / 1000, systemMs: cpu.system / 1000, share, rate, seconds, cpuMsByThread: byThread },
    }
  } finally {
    monitor.close()
  }
}
