#!/bin/busybox sh
# PID 1 inside the VM: set up a cgroup-v2 host-like environment, run the one
# command from /lifewatch/cmd.sh, print the exit marker, power off.
# No `set -e`: PID 1 must never exit early (that panics the guest).
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/tmp
bb=/bin/busybox
$bb mount -t proc proc /proc
# Applet links (sh, mount, cat, poweroff, ...); needs /proc/self/exe.
$bb --install -s
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# Kernel-opened console may be missing (no /dev/console in the cpio).
exec </dev/null >/dev/console 2>&1
mount -t cgroup2 cgroup2 /sys/fs/cgroup || echo "lifewatch-vm: cgroup2 mount failed"
# Files shipped under /tmp (e.g. from a host mktemp dir) would be hidden by
# the tmpfs: move them aside and copy them onto it.
mv /tmp /.tmp-seed && mkdir -m 1777 /tmp
mount -t tmpfs -o mode=1777 tmpfs /tmp
cp -a /.tmp-seed/. /tmp/ && rm -rf /.tmp-seed
mount -t tmpfs tmpfs /run
[ -e /proc/self/fd ] && ln -s /proc/self/fd /dev/fd 2>/dev/null

# Enable each wanted controller on its own so one refusal doesn't block the rest.
avail=" $(cat /sys/fs/cgroup/cgroup.controllers 2>/dev/null) "
for c in memory pids cpu io; do
  case $avail in
    *" $c "*) echo "+$c" >/sys/fs/cgroup/cgroup.subtree_control \
                || echo "lifewatch-vm: could not enable controller $c" ;;
  esac
done

# Sets "$@" (the command) and exports --env variables; written by run.sh.
# shellcheck source=/dev/null
. /lifewatch/cmd.sh
cd "${LIFEWATCH_VM_CWD:-/}" || cd /
LIFEWATCH_VM=1 LIFEWATCH_CGROUP_ROOT=/sys/fs/cgroup "$@"
rc=$?
# Leading newline: the command's last line may lack one.
printf '\nLIFEWATCH_VM_EXIT=%s\n' "$rc"
sync
poweroff -f
# Only reached if poweroff failed; the kernel panics and qemu (-no-reboot) exits.
sleep 5
