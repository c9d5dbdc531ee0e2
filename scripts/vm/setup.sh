#!/usr/bin/env bash
# Idempotent: install the host tools the VM kit needs and cache a Debian
# kernel (vmlinuz only). Prints the cached vmlinuz path on stdout.
# Exit 3 with a one-line reason on stderr when this host can't provide them.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PKGS=(qemu-system-x86 busybox-static cpio)
apt_updated=0

apt_update_once() {
  # Lists may be missing or stale on a fresh machine; refresh at most once.
  [[ $apt_updated == 1 ]] && return 0
  apt_updated=1
  apt-get update -qq >/dev/null 2>&1 || skip "vm: apt-get update failed"
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

install_missing() {
  local missing=() p
  for p in "${PKGS[@]}"; do installed "$p" || missing+=("$p"); done
  [[ ${#missing[@]} == 0 ]] && return 0
  command -v apt-get >/dev/null || skip "vm: apt-get not available to install ${missing[*]}"
  [[ $(id -u) == 0 ]] || skip "vm: need root to install ${missing[*]}"
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
    apt_update_once
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
      || skip "vm: apt-get install ${missing[*]} failed"
  fi
}

# Name of the versioned image package (e.g. linux-image-6.1.0-56-amd64); it
# changes with security updates, so resolve it instead of hard-coding it.
resolve_kernel_pkg() {
  apt-cache depends linux-image-amd64 2>/dev/null \
    | awk '$1 ~ /Depends:$/ && $2 ~ /^linux-image-/ {print $2; exit}'
}

cached_any() { ls -1t "$LIFEWATCH_VM_CACHE"/kernel/*/boot/vmlinuz-* 2>/dev/null | head -n1; }

fetch_kernel() {
  local pkg dir vmlinuz tmp
  pkg=$(resolve_kernel_pkg)
  if [[ -z $pkg ]]; then apt_update_once; pkg=$(resolve_kernel_pkg); fi
  if [[ -z $pkg ]]; then
    # Offline or no apt: an older cached kernel is still fine for tests.
    vmlinuz=$(cached_any)
    [[ -n $vmlinuz ]] || skip "vm: cannot resolve the kernel package behind linux-image-amd64"
    echo "$vmlinuz"; return
  fi
  dir="$LIFEWATCH_VM_CACHE/kernel/$pkg"
  vmlinuz=$(ls -1 "$dir"/boot/vmlinuz-* 2>/dev/null | head -n1 || true)
  if [[ -n $vmlinuz ]]; then echo "$vmlinuz"; return; fi

  log "downloading $pkg"
  mkdir -p "$LIFEWATCH_VM_CACHE/kernel"
  tmp=$(mktemp -d "$LIFEWATCH_VM_CACHE/kernel/.dl.XXXXXX")
  # apt-get download writes to the cwd; a subshell keeps ours unchanged.
  # Never install the package: that would rewrite the host's /boot.
  if ! (cd "$tmp" && apt-get download -qq "$pkg" >/dev/null 2>&1); then
    apt_update_once
    (cd "$tmp" && apt-get download -qq "$pkg" >/dev/null 2>&1) || {
      rm -rf "$tmp"; vmlinuz=$(cached_any)
      [[ -n $vmlinuz ]] || skip "vm: apt-get download $pkg failed"
      echo "$vmlinuz"; return; }
  fi
  # Unpack fully to a scratch dir, keep only boot/vmlinuz-* (no modules needed:
  # Debian builds MEMCG, CGROUP_PIDS and PSI into the image).
  dpkg-deb -x "$tmp"/*.deb "$tmp/x" || { rm -rf "$tmp"; skip "vm: dpkg-deb -x failed for $pkg"; }
  mkdir -p "$tmp/keep/boot"
  cp "$tmp"/x/boot/vmlinuz-* "$tmp/keep/boot/" 2>/dev/null \
    || { rm -rf "$tmp"; skip "vm: no boot/vmlinuz-* in $pkg"; }
  rm -rf "$dir"; mv "$tmp/keep" "$dir"; rm -rf "$tmp"
  ls -1 "$dir"/boot/vmlinuz-* | head -n1
}

install_missing
command -v qemu-system-x86_64 >/dev/null || skip "vm: qemu-system-x86_64 not found after install"
command -v cpio >/dev/null || skip "vm: cpio not found after install"
[[ -x /bin/busybox ]] || skip "vm: /bin/busybox (busybox-static) not found after install"
fetch_kernel
