# Shared helpers for the VM kit; sourced, not executed.
# shellcheck disable=SC2034  # variables used by the sourcing scripts
# Caches live outside the repo so nothing fetched can ever be committed.
LIFEWATCH_VM_CACHE="${LIFEWATCH_CACHE:-$HOME/.cache/lifewatch}/vm"
VM_KIT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

log() { printf 'vm: %s\n' "$*" >&2; }
die() { printf 'vm: error: %s\n' "$*" >&2; exit 2; }
# Exit 3 = "cannot run here": callers turn the one-line reason into a skip.
skip() { printf '%s\n' "$*" >&2; exit 3; }
