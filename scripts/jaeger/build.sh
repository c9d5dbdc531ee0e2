#!/usr/bin/env bash
# Build the Jaeger v2 all-in-one binary from the Go module proxy and cache it.
#
# Why: no registry reachable here ships a Jaeger binary (and there is no
# Docker), so the OTLP end-to-end test builds `cmd/jaeger` itself. Building
# takes minutes, so the result is cached per version outside the repo and
# later runs only print the cached path.
#
# Usage: scripts/jaeger/build.sh            -> prints the binary path on stdout
# Env:   LIFEWATCH_CACHE  cache root (default $HOME/.cache/lifewatch)
#        JAEGER_VERSION   Go module version of github.com/jaegertracing/jaeger
# Exit:  0 ok; 3 = cannot build (one-line reason on stderr, callers print it
#        as a test skip reason).
set -euo pipefail

# v1.76.0 is the Go-module tag of the Jaeger v2.13.0 release (Jaeger tags
# each release twice; the v2.x tags are unusable as Go versions because the
# module path has no /v2 suffix). It is the newest version on the proxy here.
JAEGER_VERSION="${JAEGER_VERSION:-v1.76.0}"
MODULE=github.com/jaegertracing/jaeger

skip() { echo "jaeger: $*" >&2; exit 3; }

CACHE_ROOT="${LIFEWATCH_CACHE:-${HOME:-/root}/.cache/lifewatch}/jaeger"
VDIR="$CACHE_ROOT/$JAEGER_VERSION"
BIN="$VDIR/bin/jaeger"

# Fast path: already built (the binary is moved into place only on success).
if [[ -x "$BIN" ]]; then echo "$BIN"; exit 0; fi

GO="$(command -v go || true)"
[[ -z "$GO" && -x /usr/local/go/bin/go ]] && GO=/usr/local/go/bin/go
[[ -n "$GO" ]] || skip "Go toolchain not found (need go >= 1.24.6 to build Jaeger $JAEGER_VERSION)"

mkdir -p "$VDIR" || skip "cannot create cache dir $VDIR"

# Serialize concurrent builders (parallel test runs) on the same version.
exec 9>"$VDIR/.lock"
command -v flock >/dev/null && flock 9
if [[ -x "$BIN" ]]; then echo "$BIN"; exit 0; fi

# Keep every Go cache under our cache dir so `rm -rf $CACHE_ROOT` is a full
# reset; -modcacherw makes the module cache deletable without chmod.
export GOMODCACHE="$CACHE_ROOT/gomod" GOCACHE="$CACHE_ROOT/gobuild"
export GOFLAGS="-modcacherw" CGO_ENABLED=0
# Never let `go` try to download another toolchain: only the module proxy is
# reachable, and a too-old local Go should produce a clean skip instead.
export GOTOOLCHAIN=local

LOG="$VDIR/build.log"
: >"$LOG"
start=$(date +%s)

# Jaeger's go.mod has a replace directive (Shopify/sarama), and replace
# directives only apply in the main module, so `go install module@version`
# refuses it. Build inside a throwaway module that requires Jaeger and
# repeats the replace directive(s) verbatim from Jaeger's own go.mod.
WORK="$VDIR/mod"
rm -rf "$WORK"; mkdir -p "$WORK"
(
  cd "$WORK"
  "$GO" mod init lifewatch.invalid/jaeger-build
  srcdir="$("$GO" mod download -json "$MODULE@$JAEGER_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
  modfile="$srcdir/go.mod"
  [[ -f "$modfile" ]] || { echo "no go.mod for $MODULE@$JAEGER_VERSION"; exit 1; }
  # Reuse Jaeger's own go.sum: it pins every dependency hash, and the
  # checksum database behind the proxy here answers 404 for many of them
  # (so `go get` would otherwise fail with "verifying module ... 404").
  cp "$srcdir/go.sum" go.sum && chmod u+w go.sum
  # Copy single-line and block-form replace directives.
  awk '/^replace \(/{b=1} b{print} b&&/^\)/{b=0; next} !b&&/^replace /{print}' \
    "$modfile" >>go.mod
  "$GO" get "$MODULE/cmd/jaeger@$JAEGER_VERSION"
  # Stamp the version the same way Jaeger's Makefile does (best effort: the
  # binary works without it, it only shows in `jaeger version`).
  ver="github.com/jaegertracing/jaeger/internal/version"
  ldflags="-s -w -X $ver.latestVersion=$JAEGER_VERSION"
  "$GO" build -trimpath -ldflags "$ldflags" -o "$BIN.tmp" "$MODULE/cmd/jaeger"
  mv -f "$BIN.tmp" "$BIN"
) >>"$LOG" 2>&1 || skip "build of $MODULE/cmd/jaeger@$JAEGER_VERSION failed: $(tail -n1 "$LOG") (log: $LOG)"

# Record how long it took (first build on 2 cores: several minutes).
echo "built $JAEGER_VERSION in $(( $(date +%s) - start ))s" | tee -a "$LOG" >&2
echo "$BIN"
