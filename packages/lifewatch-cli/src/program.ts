// The command definitions: the one source of `--help`, the shell completions and the man
// page (completion.ts, man.ts), so the three never disagree.
import { readFileSync } from 'node:fs'

import { Command, Option } from 'commander'

import { count, cpu, duration, fd, pid, signal, size } from './units.js'

export const VERSION: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version

/** What an action gets: its operands and its parsed options. */
export type Action = (operands: string[], options: Record<string, unknown>) => Promise<number>

/** Longer text after a command's options: in `--help` and in the man page. */
export const details = new WeakMap<Command, string>()
/** What a flag's value is completed from: words, file names or signal names. */
export const completions = new WeakMap<Option, string[] | 'file' | 'signals'>()

const many = <T>(parse: (text: string) => T) => (text: string, previous: T[] | undefined) => [...(previous ?? []), parse(text)]

const DURATIONS = `Durations: 90 (seconds), 1.5s, 500ms, 2m, 1h, 7d, 0 or infinity; any length, the long ones
by chained timers (a timer never fires early).`

const RUN = `Starts the command in a fresh cgroup (<parent>/<name>) with the limits given and supervises it:
its stdin, stdout and stderr pass through untouched; lifewatch's reports (events, warnings,
the shutdown's span tree and an end summary) go to stderr, or to --events FILE or
--events-fd N, as human lines or, with --json, as NDJSON lines (schema/events.schema.json in
the package: every line has schema, type and time in CLOCK_MONOTONIC ns).

SIGINT, SIGTERM and SIGHUP are forwarded to the command; a second Ctrl-C stops it (the stop
signal, then SIGKILL after --kill-timeout), and one more while it is stopping sends SIGKILL.
lifewatch is a child subreaper: processes the command leaves behind are reaped and
reported. When the command ends (or is stopped), the traced shutdown runs: kill if still
running, delete its cgroup, close the watchers. The end summary gives the cgroup's figures
when the command ended: CPU time, memory and pids peaks.

Limits are honoured or the run fails: where no cgroup can be created (not root, no delegated
subtree), a run with --memory, --swap, --pids or --cpu fails with 125 unless --best-effort;
a run without limits goes on without a cgroup (no OOM watching) and stops what the command
leaves running itself.

Exit status: the command's, or 128 + n when signal n ended it; 124 when --deadline stopped
it; 125 when lifewatch itself failed (bad flags included); 126 when the command cannot be
run; 127 when it does not exist.

With OTEL_EXPORTER_OTLP_ENDPOINT set, the shutdown trace and lifewatch's metrics are exported
over OTLP/HTTP (the standard OTEL_* variables apply); the export never holds up the exit by
more than 600 ms after the command ended, and a failed export is reported on stderr.

${DURATIONS}`

const WATCH = `Prints an event for each watched process as it exits (any process, child or not) and, for
each watched cgroup, its OOM kills, pressure, populated/frozen changes and removal, on
stdout (human lines, or NDJSON with --json). Says on stderr when its watches are in place.
Host-wide, without a PID in advance: --host prints every process exit on the host (the
kernel's process events connector), --tree a process and every descendant it forks until the
last is gone, --oom-kills every OOM kill with its victim and cgroup (the kernel log); --forks
and --execs add those to --host and --tree. --host and --oom-kills run until a signal.

Exit status: 0 once every process (and tree) has exited and every cgroup has been removed; 130 on
SIGINT (Ctrl-C), 143 on SIGTERM; 125 when a target could
not be watched or a flag is bad.`

const TOP = `A live view of cgroups, as systemd-cgtop and docker stats: memory current, peak and limit,
CPU %, pids, memory PSI some/full avg10 and OOM kills of each cgroup under --root (lifewatch's
own by default, every cgroup with --all), refreshed every --interval; OOM kills and populated
changes show the moment they happen. On a terminal a table that fits it (q or Ctrl-C quits);
otherwise a table per refresh, or NDJSON snapshots and events with --json.

Exit status: 0 (q or Ctrl-C on the terminal, or --once); 130 on SIGINT, 143 on SIGTERM; 125 when
lifewatch failed (bad flags included).

${DURATIONS}`

const DEMO = `Runs, one after the other, on processes it starts itself:
  1. a memory hog (tail /dev/zero) in a new 32M cgroup: OOM-killed, the kill reported before
     the exit it caused, then the shutdown with the OOM kill as a span event
  2. a well-behaved task in a cgroup that cleans up on SIGTERM: shut down gracefully
  3. a task that ignores SIGTERM: the shutdown escalates to SIGKILL (lifewatch.kill.forced)
  4. a non-child (a shell's background job) watched to its exit through its pidfd
and prints each event, each shutdown's span tree and lifewatch's fd counters by kind.
Creating cgroups needs root (or a delegated cgroup subtree); without it 1 is skipped and 2
runs without a cgroup, with a line that says so.`

export interface Actions {
  run: Action
  watch: Action
  top: Action
  demo: Action
  completion: Action
  man: Action
}

function command(parent: Command, name: string, summary: string, more?: string): Command {
  const c = parent.command(name).description(summary).helpOption('-h, --help', 'this text')
  if (more) {
    details.set(c, more)
    c.addHelpText('after', `\n${more}`)
  }
  return c
}

interface OptionSpec {
  parse?: (text: string, previous: never) => unknown
  /** The default, and how help shows it. */
  default?: [unknown, string?]
  values?: string[] | 'file' | 'signals'
}

function option(c: Command, flags: string, description: string, spec: OptionSpec = {}): Option {
  const o = new Option(flags, description)
  if (spec.parse) o.argParser(spec.parse as (text: string, previous: never) => never)
  if (spec.default) o.default(...spec.default)
  if (spec.values) completions.set(o, spec.values)
  c.addOption(o)
  return o
}

/** The `lifewatch` program; each action's status is handed to `done`. */
export function program(actions: Actions, done: (status: number) => void): Command {
  const p = new Command('lifewatch')
    .description('Runs commands in cgroups and watches processes and cgroups, with OpenTelemetry traces')
    .version(VERSION, '-V, --version', 'the version')
    .helpOption('-h, --help', 'this text')
    .enablePositionalOptions()
    .helpCommand(false)
  const act = (a: Action) => async (...params: unknown[]) => {
    const cmd = params.at(-1) as Command
    done(await a(cmd.args, cmd.opts()))
  }

  const run = command(p, 'run', 'run a command in a cgroup with limits, supervise it, trace its shutdown', RUN)
    .argument('<command...>', 'the command and its arguments (after --)')
    .passThroughOptions()
  option(run, '--memory <size>', 'memory limit (64M, 1G, max)', { parse: (v) => size('--memory', v, false) })
  option(run, '--swap <size>', 'swap limit, 0 for none (v2 memory.swap.max; v1: memsw = memory + swap, needs --memory)', { parse: (v) => size('--swap', v, true) })
  option(run, '--pids <n>', 'limit on the number of processes (or max)', { parse: (v) => count('--pids', v) })
  option(run, '--cpu <limit>', 'CPUs (0.5) or a cpu.max quota and period ("50000 100000")', { parse: (v) => cpu('--cpu', v) })
  option(run, '--name <name>', "the cgroup's name (default run-<lifewatch's pid>)")
  option(run, '--parent <path>', 'the cgroup to create it under', { default: ['lifewatch'] })
  option(run, '--best-effort', 'where no cgroup can be created, run without the limits instead of failing')
  option(run, '--stop-signal <signal>', 'the signal that stops the command at shutdown, at the deadline and on a second Ctrl-C', { parse: (v) => signal('--stop-signal', v), values: 'signals', default: ['SIGTERM', 'TERM'] })
  option(run, '--kill-timeout <duration>', 'from the stop signal to SIGKILL (0: SIGKILL at once; infinity: never)', { parse: (v) => duration('--kill-timeout', v), default: [5000, '5s'] })
  option(run, '--deadline <duration>', 'stop the command after this long and exit 124, as timeout(1) (0 or infinity: none)', { parse: (v) => duration('--deadline', v), default: [Infinity, 'none'] })
  option(run, '--step-timeout <duration>', 'limit for each shutdown step (0 or infinity: none)', { parse: (v) => duration('--step-timeout', v), default: [10_000, '10s'] })
  option(run, '--events <file>', 'write the reports to this file (created or truncated) instead of stderr', { values: 'file' })
  option(run, '--events-fd <n>', 'write the reports to this open file descriptor instead of stderr', { parse: (v) => fd('--events-fd', v) })
  option(run, '--json', 'reports as NDJSON lines wherever they go')
  run.action(act(actions.run))

  const watch = command(p, 'watch', 'watch processes, process trees, cgroups or the whole host', WATCH)
  option(watch, '--pid <pid>', 'a process to watch (repeatable)', { parse: many((v) => pid('--pid', v)) })
  option(watch, '--cgroup <path>', 'a cgroup to watch (repeatable): lifewatch/job1 or a directory under a cgroup mount', { parse: many((v) => v) })
  option(watch, '--host', "every process exit on the host, with its parent, name and cgroup")
  option(watch, '--tree <pid>', 'a process and all its descendants, until the last exits (repeatable)', { parse: many((v) => pid('--tree', v)) })
  option(watch, '--oom-kills', 'every OOM kill on the host, with its victim and cgroup')
  option(watch, '--forks', 'with --host or --tree: each process created')
  option(watch, '--execs', 'with --host or --tree: each execve')
  option(watch, '--pressure <level>', 'with --cgroup, v1 memory.pressure_level: low|medium|critical[,local|hierarchy]', { values: ['low', 'medium', 'critical'] })
  option(watch, '--json', 'events as NDJSON lines')
  watch.action(act(actions.watch))

  const top = command(p, 'top', "a live view of cgroups' memory, CPU, pids, pressure and OOM kills", TOP)
  option(top, '--root <path>', 'the cgroup whose subtree is shown', { default: ['lifewatch'] })
  option(top, '--all', 'every cgroup (the whole hierarchy)')
  option(top, '--interval <duration>', 'between refreshes (0 or infinity: on events only)', { parse: (v) => duration('--interval', v), default: [2000, '2s'] })
  option(top, '--once', 'one snapshot (CPU % measured over 500 ms), then exit')
  option(top, '--json', 'NDJSON: a snapshot line per refresh, and each OOM/populated event')
  top.action(act(actions.top))

  const demo = command(p, 'demo', 'OOM kill, graceful shutdown and a non-child exit, with span trees', DEMO)
  option(demo, '--json', 'events and shutdown summaries as NDJSON')
  demo.action(act(actions.demo))

  const completion = command(p, 'completion', 'print a shell completion script (bash, zsh or fish)', 'bash: source <(lifewatch completion bash); zsh: lifewatch completion zsh > "${fpath[1]}/_lifewatch"; fish: lifewatch completion fish > ~/.config/fish/completions/lifewatch.fish')
  completion.argument('<shell>', 'bash, zsh or fish')
  completion.action(act(actions.completion))

  const man = command(p, 'man', 'print the man page (roff): lifewatch man | man -l -')
  man.action(act(actions.man))

  return p
}
