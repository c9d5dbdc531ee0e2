# Initramfs staging and packing; sourced by run.sh (needs lib.sh first).
# Host files are placed at their own absolute path in the guest unless a
# GUEST path is given, so $ORIGIN rpaths and absolute paths keep working.

declare -A _staged=()

# Guest path for "HOST[:GUEST]" (split at the first ':'); default: HOST made absolute.
guest_path_of() {
  local spec=$1 host guest
  host=${spec%%:*}
  if [[ $spec == *:* ]]; then guest=${spec#*:}; else guest=$(realpath -s -- "$host"); fi
  [[ $guest == /* ]] || guest=/$guest
  printf '%s\n' "$guest"
}

# Copy one file, dereferenced, replacing whatever is there: a plain `cp` onto
# a symlink (e.g. bin/sh -> busybox) would write through it and clobber busybox.
_put_file() {
  local src=$1 dst=$2
  [[ -n ${_staged[$dst]:-} ]] && return 0
  mkdir -p "$STAGE$(dirname "$dst")"
  cp -L --remove-destination -- "$src" "$STAGE$dst"
  _staged[$dst]=1
}

# Busybox only; guest-init.sh creates its applet links at boot with
# `busybox --install -s` (a few ms there, seconds of ln forks here). That
# never overwrites, so a shipped file at an applet's path wins.
stage_busybox() {
  mkdir -p "$STAGE"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,run,etc,lifewatch}
  cp /bin/busybox "$STAGE/bin/busybox"
  ln -s busybox "$STAGE/bin/sh"
  # Lets the kernel open a console for init before devtmpfs is mounted
  # (needs root; init re-opens /dev/console itself anyway).
  if [[ $(id -u) == 0 ]]; then mknod -m 600 "$STAGE/dev/console" c 5 1 2>/dev/null || true; fi
}

# True if busybox provides NAME as an applet (then it runs from the guest PATH).
is_applet() { /bin/busybox --list | grep -qxF -- "$1"; }

# Shared libraries of an ELF file, one absolute path per line, from ldd:
#   "libc.so.6 => /lib/.../libc.so.6 (0x..)"   library
#   "/lib64/ld-linux-x86-64.so.2 (0x..)"        loader, at the exact path the
#                                               binary names (PT_INTERP)
#   "linux-vdso.so.1 (0x..)"                    kernel-provided, skipped
# ldd exits 1 for static binaries ("not a dynamic executable"): not an error.
_elf_libs() {
  local out
  out=$(LC_ALL=C ldd -- "$1" 2>&1) || true
  if grep -q '=> not found' <<<"$out"; then
    die "ldd: missing libraries for $1: $(grep '=> not found' <<<"$out" | awk '{print $1}' | tr '\n' ' ')"
  fi
  awk '$2 == "=>" && $3 ~ /^\// {print $3; next} $1 ~ /^\// {print $1}' <<<"$out"
}

_is_elf() { [[ $(head -c4 -- "$1" 2>/dev/null | od -An -c | tr -d ' ') == '177ELF' ]]; }

# "HOST[:GUEST]": an executable or shared object plus its library closure.
# ldd cannot see dlopen()ed libraries (NSS, plugins): ship those with --bin too.
stage_bin() {
  local spec=$1 host guest lib
  host=${spec%%:*}
  [[ -f $host ]] || die "--bin: no such file: $host"
  guest=$(guest_path_of "$spec")
  _put_file "$host" "$guest"
  chmod +x "$STAGE$guest" 2>/dev/null || true
  _is_elf "$host" || return 0
  while IFS= read -r lib; do
    [[ -n $lib ]] && _put_file "$lib" "$lib"
  done < <(_elf_libs "$host")
}

# "HOST[:GUEST]": a file or a whole directory tree, copied as is (cp -a keeps
# symlinks inside a tree; absolute ones pointing outside it will dangle).
stage_file() {
  local spec=$1 host guest
  host=${spec%%:*}
  guest=$(guest_path_of "$spec")
  if [[ -d $host ]]; then
    mkdir -p "$STAGE$guest"
    cp -a -- "$host/." "$STAGE$guest/"
  elif [[ -e $host ]]; then
    mkdir -p "$STAGE$(dirname "$guest")"
    cp -a --remove-destination -- "$host" "$STAGE$guest"
  else
    die "--file: no such file or directory: $host"
  fi
}

# newc is the only cpio format the kernel unpacks; ownership forced to root.
# auto: gzip small trees; ship big ones (node: ~100 MB) uncompressed, since
# inflating in the guest under TCG costs more than qemu reading the file
# (measured: node tree 17 s uncompressed vs 25 s gzip -1, end to end).
pack_initramfs() {
  local out=$1 compress=${2:-auto}
  if [[ $compress == auto ]]; then
    if (( $(du -sm "$STAGE" | cut -f1) > 16 )); then compress=none; else compress=gzip; fi
  fi
  if [[ $compress == none ]]; then
    (cd "$STAGE" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc -R 0:0 --quiet) >"$out"
  else
    (cd "$STAGE" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc -R 0:0 --quiet) | gzip -1 >"$out"
  fi
}
