// Guest side of scenario 2's cgroup-v2 half: bench/lib/vm.ts ships it (transpiled) into the
// VM, where cgroup2 with the memory controller is mounted at /sys/fs/cgroup.
//   node bench/vm/oom-v2.js '{"runs":20,"warmup":1,"timeoutMs":30000}'
import { layoutMissing, measureOom } from '../lib/oom-measure.js'
import { printResult } from '../lib/vm-result.js'

const { runs, warmup, timeoutMs } = JSON.parse(process.argv[2] ?? '{}') as { runs: number; warmup: number; timeoutMs: number }
const missing = layoutMissing('v2')
if (missing) throw new Error(`the guest cannot run the v2 OOM path: ${missing}`)
printResult(await measureOom('v2', runs, warmup, timeoutMs))
process.exit(0)
