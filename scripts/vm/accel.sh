#!/usr/bin/env bash
# Print the qemu accelerator to use: "kvm" or "tcg".
# /dev/kvm existing is not enough: under some nested hypervisors it opens and
# initialises, yet the guest hangs right after the BIOS. So boot the kernel
# once under KVM (no initrd: it should reach "Linux version" and panic within
# a few seconds) and cache the verdict per host kernel + qemu version.
# Usage: accel.sh <vmlinuz>. LIFEWATCH_VM_ACCEL=kvm|tcg skips the probe.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ -n ${LIFEWATCH_VM_ACCEL:-} ]]; then echo "$LIFEWATCH_VM_ACCEL"; exit 0; fi
[[ -r /dev/kvm && -w /dev/kvm ]] || { echo tcg; exit 0; }

kernel=${1:?usage: accel.sh <vmlinuz>}
qver=$(qemu-system-x86_64 --version | head -n1 | tr -c 'A-Za-z0-9.\n' '_')
verdict_file="$LIFEWATCH_VM_CACHE/accel/$(uname -r)-$qver"
if [[ -f $verdict_file ]]; then cat "$verdict_file"; exit 0; fi

log "probing KVM (once per host kernel and qemu version)"
out=$(timeout --kill-after=2 20 qemu-system-x86_64 -accel kvm -m 256 -smp 1 \
        -nographic -no-reboot -kernel "$kernel" -append "console=ttyS0 panic=-1" \
        </dev/null 2>&1 || true)
if grep -q 'Linux version' <<<"$out"; then verdict=kvm; else verdict=tcg; log "KVM unusable here, using TCG"; fi
mkdir -p "$(dirname "$verdict_file")"
echo "$verdict" >"$verdict_file"
echo "$verdict"
