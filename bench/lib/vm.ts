// Runs a bench entry in the cgroup-v2 VM (scripts/vm/run.sh) with this host's Node. Ships
// only what the entry loads: src/ and bench/ transpiled by esbuild (tsx's own dependency)
// into a tree laid out like the repo, package.json (ESM), the addon and its loader, the
// natives and @opentelemetry/api; not target/ nor node_modules.
import { spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, realpathSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { floorBin, helperBin, root } from './natives.js'
import { isResultLine, parseResult } from './vm-result.js'

export type VmOutcome = { ok: true; result: unknown; accel: string | undefined; wallS: number } | { ok: false; skipped: boolean; reason: string; wallS: number }

/** Every .ts file under `dir` (repo-relative), recursively. */
function sources(dir: string): string[] {
  return readdirSync(join(root, dir), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
    .map((f) => join(root, dir, f))
}

async function transpile(stage: string): Promise<void> {
  const esbuild = await import('esbuild')
  await esbuild.build({
    entryPoints: [...sources('src'), ...sources('bench/lib'), ...sources('bench/vm')],
    outdir: stage,
    outbase: root,
    format: 'esm',
    platform: 'node',
    target: `node${process.versions.node.split('.')[0]}`,
    logLevel: 'error',
  })
}

/** Kernel lines on the console start with a `[ seconds.micros]` stamp. */
const kernelLine = /^\[\s*\d+\.\d+\]/

/**
 * Boots the VM and runs `node <entry as .js> ...args` in it from the repo root. Resolves with
 * the result the entry printed (vm-result.ts), a skip (run.sh exit 3: the kit cannot run
 * here) or a failure, each with the reason and the wall time.
 */
export async function runInVm(entry: string, args: string[], opts: { memMb: number; timeoutS: number }): Promise<VmOutcome> {
  const t0 = performance.now()
  const wallS = () => (performance.now() - t0) / 1000
  const stage = mkdtempSync(join(tmpdir(), 'lifewatch-bench-vm-'))
  try {
    await transpile(stage)
    const addon = `lifewatch.linux-${process.arch}-gnu.node`
    const vmArgs = ['--mem', String(opts.memMb), '--timeout', String(opts.timeoutS), '--cwd', root,
      '--file', `${stage}/src:${root}src`, '--file', `${stage}/bench:${root}bench`,
      '--file', `${root}package.json`, '--file', `${root}binding.cjs`, '--bin', `${root}${addon}`,
      '--file', `${root}node_modules/@opentelemetry/api`, '--bin', floorBin, '--bin', helperBin,
      '--', realpathSync(process.execPath), `${root}${entry.replace(/\.ts$/, '.js')}`, ...args]
    const p = spawn(join(root, 'scripts/vm/run.sh'), vmArgs, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    let partial = ''
    p.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d
      const lines = (partial + d).split('\n')
      partial = lines.pop()!
      // The guest's own progress; not the BIOS, kernel or result lines.
      for (const l of lines) if (l.trim() && !kernelLine.test(l) && !isResultLine(l)) process.stderr.write(`  vm| ${l}\n`)
    })
    // run.sh's own lines (already prefixed `vm:`): the initramfs size, the wall time, why not.
    p.stderr.setEncoding('utf8').on('data', (d: string) => {
      err += d
      process.stderr.write(d)
    })
    const code = await new Promise<number | null>((resolve) => p.on('close', resolve))
    const lastErr = err.trim().split('\n').pop() ?? ''
    if (code === 3) return { ok: false, skipped: true, reason: lastErr || 'the VM kit cannot run on this host', wallS: wallS() }
    if (code !== 0) return { ok: false, skipped: false, reason: `scripts/vm/run.sh exited ${code} (${lastErr})`, wallS: wallS() }
    const result = parseResult(out)
    if (result === undefined) return { ok: false, skipped: false, reason: 'the guest printed no result', wallS: wallS() }
    // run.sh's last line: `vm: exit 0, wall 51.5s (accel tcg)`.
    return { ok: true, result, accel: /\(accel (\w+)\)/.exec(err)?.[1], wallS: wallS() }
  } finally {
    rmSync(stage, { recursive: true, force: true })
  }
}
