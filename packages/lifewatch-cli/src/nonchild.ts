// A process that is not our child, for the demo and the tests: a grandchild whose parent
// shell waits for it, so its real parent reaps it and no zombie is left behind on machines
// whose PID 1 does not reap orphans.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'

export async function nonChild(script: string): Promise<{ pid: number; parent: ChildProcess }> {
  const parent = spawn('sh', ['-c', `sh -c '${script}' & echo $!; wait`], { stdio: ['ignore', 'pipe', 'inherit'] })
  const lines = createInterface({ input: parent.stdout! })
  const [line] = (await once(lines, 'line')) as [string]
  // Only the PID was wanted: let go of the pipe so nothing the shell leaves keeps Node alive.
  lines.close()
  parent.stdout!.destroy()
  return { pid: Number(line), parent }
}
