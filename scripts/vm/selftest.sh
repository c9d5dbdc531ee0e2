#!/usr/bin/env bash
# Proves the VM kit end to end: boot a guest, OOM-kill a hog in a cgroup-v2
# child with memory.max=32M, check the counters and the kill, then check that
# a guest exit code reaches the host. Exit 3 (skip) if the kit can't run here.
#   selftest.sh [--quick]   --quick: skip the second (exit-code) boot
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

"$VM_KIT_DIR/setup.sh" >/dev/null   # exit 3 propagates as a skip
command -v gcc >/dev/null || skip "vm selftest: gcc not found"

work=$(mktemp -d "${TMPDIR:-/tmp}/lifewatch-vm-selftest.XXXXXX")
trap 'rm -rf "$work"' EXIT
# Dynamic on purpose: exercises the ldd/loader shipping that node will need.
gcc -O2 -Wall -Werror -o "$work/oomhog" "$VM_KIT_DIR/selftest/oomhog.c"

fail() { echo "vm selftest: FAIL: $*" >&2; exit 1; }
# Value of key $1 from the guest's "LWTEST k=v k=v" lines (last one wins).
# Unanchored: the first guest line can share a line with SeaBIOS's
# "Booting from ROM.." (no newline), and printk can interleave.
val() {
  grep -ao 'LWTEST .*' "$work/console.log" | grep -o "[ ]${1//./\\.}=[^ ]*" | tail -n1 | cut -d= -f2
}

start=$EPOCHREALTIME
rc=0; "$VM_KIT_DIR/run.sh" --mem 512 --timeout 300 --log "$work/console.log" -- "$work/oomhog" || rc=$?
wall=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}')
[[ $rc == 3 ]] && exit 3
[[ $rc == 0 ]] || fail "guest program exited $rc"

# Re-check from the console log, so a lying exit code can't pass the test.
[[ $(val in_vm) == 1 ]] || fail "LIFEWATCH_VM not set in guest"
for f in cgroup.kill pids.max memory.pressure; do
  [[ $(val "file_$f") == 1 ]] || fail "$f missing in child cgroup"
done
oom_kill=$(val memory.events.oom_kill)
[[ -n $oom_kill && $oom_kill -ge 1 ]] || fail "memory.events oom_kill=$oom_kill, want >= 1"
[[ $(val signaled) == 1 && $(val signal) == 9 ]] || fail "hog not SIGKILLed ($(grep -a 'hog_status' "$work/console.log"))"
events=$(grep -ao 'LWTEST memory.events.[a-z_]*=[0-9]*' "$work/console.log" \
           | sed 's/LWTEST memory.events.//' | paste -sd' ')
echo "vm selftest: OOM ok: memory.events: ${events}; hog killed by signal 9; ${wall}s"

if [[ ${1-} != --quick ]]; then
  rc=0; "$VM_KIT_DIR/run.sh" --timeout 300 -- sh -c 'exit 42' >/dev/null || rc=$?
  [[ $rc == 42 ]] || fail "exit code not propagated: got $rc, want 42"
  echo "vm selftest: exit code propagation ok"
fi
echo "vm selftest: PASS"
