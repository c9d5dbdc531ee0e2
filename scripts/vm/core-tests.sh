#!/usr/bin/env bash
# Builds lifewatch-core integration tests on the host and runs them inside the cgroup-v2
# VM (one boot for all of them), serially, as root.
#
#   scripts/vm/core-tests.sh [--test NAME]... [-- TEST-ARGS...]
#
# Default: --test cgroup_manager. TEST-ARGS go to every test binary (a filter, --nocapture).
# With LIFEWATCH_RELIABILITY_REPORT set, the report lines the tests write in the guest are
# appended to that host file (`npm run reliability` sums them into its table).
# Exit: non-zero if any binary failed; 3 when the VM kit cannot run here (reason on stderr).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

tests=() targs=()
while (($#)); do
  case $1 in
    --test) tests+=("$2"); shift 2 ;;
    --) shift; targs=("$@"); break ;;
    *) echo "usage: $0 [--test NAME]... [-- TEST-ARGS...]" >&2; exit 2 ;;
  esac
done
((${#tests[@]})) || tests=(cgroup_manager)

cargs=()
for t in "${tests[@]}"; do cargs+=(--test "$t"); done
# The executables cargo built, from its JSON messages.
mapfile -t bins < <(cd "$root" && cargo test -p lifewatch-core --no-run --message-format=json "${cargs[@]}" 2>/dev/null |
  node -e '
    let buf = ""; process.stdin.on("data", (d) => (buf += d)).on("end", () => {
      for (const line of buf.split("\n")) {
        if (!line.startsWith("{")) continue
        const m = JSON.parse(line)
        if (m.reason === "compiler-artifact" && m.executable && m.target.kind.includes("test")) console.log(m.executable)
      }
    })')
((${#bins[@]})) || { echo "core-tests: cargo built no test binary (run cargo test --no-run to see why)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/lifewatch-core-tests.XXXXXX")
trap 'rm -rf "$work"' EXIT
{
  echo 'rc=0'
  for b in "${bins[@]}"; do
    printf 'echo "=== %s"\n' "$(basename "$b")"
    # --include-ignored: #[ignore] marks the tests that run only in this VM.
    printf '%q --test-threads=1 --include-ignored' "$b"
    for a in "${targs[@]}"; do printf ' %q' "$a"; done
    echo ' || rc=1'
  done
  # Back to the host through the console, one marked line each.
  echo '[ -f /tmp/report.jsonl ] && sed "s/^/LIFEWATCH_REPORT /" /tmp/report.jsonl'
  echo 'exit $rc'
} > "$work/run-tests.sh"

opts=()
for b in "${bins[@]}"; do opts+=(--bin "$b"); done
[[ -z ${LIFEWATCH_RELIABILITY_REPORT:-} ]] || opts+=(--env LIFEWATCH_RELIABILITY_REPORT=/tmp/report.jsonl)
# Not exec: the EXIT trap must still remove $work.
# Memory: the kernel unpacks the initramfs (every test binary, uncompressed, ~19 MB each with
# debug info) into RAM; at 512 MB a 249 MB image ran out and a binary came up truncated.
rc=0
"$here/run.sh" --mem "${LIFEWATCH_VM_MEM:-1536}" --timeout "${LIFEWATCH_VM_TIMEOUT:-600}" --log "$work/console.log" "${opts[@]}" \
  --file "$work/run-tests.sh:/tmp/run-tests.sh" -- sh /tmp/run-tests.sh || rc=$?
if [[ -n ${LIFEWATCH_RELIABILITY_REPORT:-} && -f $work/console.log ]]; then
  sed -n 's/^LIFEWATCH_REPORT //p' "$work/console.log" >> "$LIFEWATCH_RELIABILITY_REPORT"
fi
exit "$rc"
