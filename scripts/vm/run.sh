#!/usr/bin/env bash
# Boot a throwaway cgroup-v2 VM, run one command in it, exit with its status.
#
#   run.sh [options] -- <program> [args...]
#     --mem MB             guest RAM (default 512)
#     --smp N              guest CPUs (default 2)
#     --timeout S          kill qemu after S seconds (default 300) -> exit 124
#     --bin HOST[:GUEST]   ship an ELF (program or .so) plus its ldd closure (repeatable)
#     --file HOST[:GUEST]  ship a file or a whole directory tree (repeatable)
#     --env K=V            set a variable for the command (repeatable)
#     --cwd DIR            guest working directory (default /)
#     --manifest FILE      more options, one per line ("--bin /usr/bin/node"); # comments
#     --log FILE           also save the console log (CRs stripped) to FILE
#     --compress auto|gzip|none  initramfs compression (auto: gzip up to 16 MB, else none)
#     --keep               keep the work dir (initramfs, staging tree) and print its path
#
# <program> containing '/' is a host file shipped at its absolute path (with
# its libraries); a bare name is a busybox applet if busybox has one (sh, cat,
# ...), else it is looked up on the host PATH and shipped.
# Exit: the guest command's status, 124 on timeout, 125 if the guest printed
# no exit marker (crash, panic, bad kernel), 3 if the kit can't run here.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. "$VM_KIT_DIR/initramfs.sh"

MEM=512 SMP=2 TIMEOUT=300 LOG='' KEEP=0 COMPRESS=auto CWD=/
BINS=() FILES=() ENVS=()

parse_opt() {  # $1 = option, $2 = value; returns how many args it used
  case $1 in
    --mem) MEM=$2 ;; --smp) SMP=$2 ;; --timeout) TIMEOUT=$2 ;;
    --bin) BINS+=("$2") ;; --file) FILES+=("$2") ;; --env) ENVS+=("$2") ;;
    --cwd) CWD=$2 ;; --log) LOG=$2 ;; --compress) COMPRESS=$2 ;;
    --manifest) read_manifest "$2" ;;
    --keep) KEEP=1; return 1 ;;
    *) die "unknown option: $1 (see the header of $0)" ;;
  esac
  return 2
}

read_manifest() {
  local line opt val
  [[ -f $1 ]] || die "--manifest: no such file: $1"
  while IFS= read -r line || [[ -n $line ]]; do
    line=${line%%#*}; line=$(sed 's/^[[:space:]]*//; s/[[:space:]]*$//' <<<"$line")
    [[ -z $line ]] && continue
    opt=${line%%[[:space:]]*}; val=$(sed 's/^[^[:space:]]*[[:space:]]*//' <<<"$line")
    parse_opt "$opt" "$val" || true
  done <"$1"
}

while [[ $# -gt 0 && $1 != -- ]]; do
  [[ $1 == --* ]] || die "expected options then -- <program> [args...]"
  n=0; parse_opt "$1" "${2-}" || n=$?
  shift "$n"
done
[[ ${1-} == -- ]] || die "missing -- <program> [args...]"
shift
[[ $# -ge 1 ]] || die "missing program after --"
[[ $MEM =~ ^[0-9]+$ && $SMP =~ ^[0-9]+$ && $TIMEOUT =~ ^[0-9]+$ ]] || die "--mem/--smp/--timeout take integers"
[[ $COMPRESS =~ ^(auto|gzip|none)$ ]] || die "--compress takes auto, gzip or none"

# Kernel: explicit override, else setup.sh (installs tools, caches vmlinuz; exit 3 = skip).
if [[ -n ${LIFEWATCH_VM_KERNEL:-} ]]; then
  KERNEL=$LIFEWATCH_VM_KERNEL
else
  KERNEL=$("$VM_KIT_DIR/setup.sh") || exit $?
fi
[[ -f $KERNEL ]] || skip "vm: kernel not found: $KERNEL"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/lifewatch-vm.XXXXXX")
# shellcheck disable=SC2317  # called from the trap
cleanup() { if [[ $KEEP == 1 ]]; then log "kept work dir $WORK"; else rm -rf "$WORK"; fi; }
trap cleanup EXIT
STAGE=$WORK/root

# --- initramfs ---------------------------------------------------------------
stage_busybox
cp "$VM_KIT_DIR/guest-init.sh" "$STAGE/init"; chmod 755 "$STAGE/init"

prog=$1; shift
if [[ $prog != */* ]]; then
  if is_applet "$prog"; then
    :  # busybox applet, runs from the guest PATH
  else
    host=$(command -v -- "$prog") || die "program not found on host: $prog"
    prog=$host; BINS+=("$prog")
  fi
else
  [[ -f $prog ]] || die "no such program: $prog"
  prog=$(realpath -s -- "$prog"); BINS+=("$prog")
fi
for b in "${BINS[@]}"; do stage_bin "$b"; done
for f in "${FILES[@]}"; do stage_file "$f"; done

# The command line as POSIX single-quoted words (busybox sh sources this).
q() { local s=${1//\'/\'\\\'\'}; printf "'%s'" "$s"; }
{
  printf 'set --'; printf ' %s' "$(q "$prog")"
  for a in "$@"; do printf ' %s' "$(q "$a")"; done; printf '\n'
  for e in "${ENVS[@]}"; do
    [[ $e == *=* ]] || die "--env expects K=V, got: $e"
    printf 'export %s=%s\n' "${e%%=*}" "$(q "${e#*=}")"
  done
  printf 'LIFEWATCH_VM_CWD=%s\n' "$(q "$CWD")"
} >"$STAGE/lifewatch/cmd.sh"

INITRD=$WORK/initramfs.cpio
pack_initramfs "$INITRD" "$COMPRESS"
log "initramfs $(du -h "$INITRD" | cut -f1), kernel $(basename "$KERNEL")"

# --- boot ---------------------------------------------------------------------
# KVM when it really works here (accel.sh probes once and caches), else TCG.
ACCEL=$("$VM_KIT_DIR/accel.sh" "$KERNEL")

CONSOLE=$WORK/console.log
start=$EPOCHREALTIME
set +e
# stdin </dev/null: -nographic would otherwise put a terminal into raw mode.
# -nic none: no NIC, so no iPXE option ROM probe (seconds under TCG, and noise).
# sed -u (unbuffered, streams): drop CRs of the serial line discipline and the
# ANSI screen resets SeaBIOS prints (ESC c, ESC[2J, ...).
timeout --kill-after=5 "$TIMEOUT" qemu-system-x86_64 -accel "$ACCEL" \
    -m "$MEM" -smp "$SMP" -nographic -no-reboot -nic none \
    -kernel "$KERNEL" -initrd "$INITRD" \
    -append "console=ttyS0 psi=1 panic=-1 quiet" </dev/null 2>&1 \
  | sed -u -e 's/\r//g' -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\x1bc//g' \
  | tee "$CONSOLE"
qemu_rc=${PIPESTATUS[0]}
set -e
# The guest's last line ("reboot: Power down") has no newline; end it.
[[ -s $CONSOLE && -n $(tail -c1 "$CONSOLE") ]] && echo
wall=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}')
[[ -n $LOG ]] && cp "$CONSOLE" "$LOG"

# Last marker wins; grep -o because kernel printk lines can interleave with it.
marker=$(grep -ao 'LIFEWATCH_VM_EXIT=[0-9]*' "$CONSOLE" | tail -n1 | cut -d= -f2 || true)
if [[ -n $marker ]]; then rc=$marker
elif [[ $qemu_rc == 124 || $qemu_rc == 137 ]]; then rc=124; log "timed out after ${TIMEOUT}s"
else rc=125; log "no exit marker from the guest (qemu exit $qemu_rc)"; fi
# A truncated initramfs (RAM too small to unpack it) leaves files silently missing or cut.
if grep -q 'Initramfs unpacking failed' "$CONSOLE"; then
  log "the guest could not unpack its $(du -h "$INITRD" | cut -f1) initramfs in ${MEM} MB: raise --mem"
  [[ $rc != 0 ]] || rc=125
fi
log "exit $rc, wall ${wall}s (accel $ACCEL)"
exit "$rc"
