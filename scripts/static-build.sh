#!/usr/bin/env bash
# Build statically linked release binaries of toxi-server and the toxi CLI and
# copy them into a dist directory, checking that neither needs a dynamic loader
# or shared library (so they run in a `FROM scratch` image).
#
# Usage: scripts/static-build.sh [DIST_DIR]
#
# Environment:
#   TOXI_DIST         output directory (default: <repo>/dist; the argument wins)
#   TOXI_TARGET       Rust target triple (default: the host triple of rustc).
#                     *-linux-gnu targets are linked with glibc's static runtime
#                     (-C target-feature=+crt-static); *-linux-musl targets are
#                     static by default (only if that target is installed).
#   TOXI_STRIP        1 (default) strips the copied binaries when `strip` exists
#   CARGO_TARGET_DIR  respected as usual by cargo
#
# Exit status: 0 on success, 1 on a failed build or a binary that is not static,
# 2 on bad usage or an unsupported target.
set -euo pipefail

die() { echo "static-build: ERROR: $*" >&2; exit 1; }

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

[ $# -le 1 ] || { echo "usage: $0 [DIST_DIR]" >&2; exit 2; }
dist=${1:-${TOXI_DIST:-$root/dist}}
command -v cargo >/dev/null || die "cargo not found"
command -v rustc >/dev/null || die "rustc not found"

target=${TOXI_TARGET:-$(rustc -vV | sed -n 's/^host: //p')}
case "$target" in
  *-linux-gnu*)
    # glibc static: getaddrinfo still works without NSS modules on disk because
    # glibc >= 2.34 has the "files" and "dns" sources built in; the image ships
    # /etc/nsswitch.conf and /etc/hosts for them.
    export RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C target-feature=+crt-static" ;;
  *-linux-musl*) ;;
  *) echo "static-build: unsupported target '$target' (need *-linux-gnu or *-linux-musl)" >&2; exit 2 ;;
esac

echo "static-build: cargo build --locked --release --target $target (RUSTFLAGS='${RUSTFLAGS:-}')"
cargo build --locked --release --target "$target" -p toxi -p toxi-cli --bin toxi-server --bin toxi

target_dir=$(cargo metadata --format-version 1 --no-deps --offline 2>/dev/null |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
[ -n "$target_dir" ] || target_dir=${CARGO_TARGET_DIR:-$root/target}
out="$target_dir/$target/release"

mkdir -p "$dist"
for bin in toxi-server toxi; do
  [ -x "$out/$bin" ] || die "$out/$bin was not built"
  cp -f "$out/$bin" "$dist/$bin.tmp"
  if [ "${TOXI_STRIP:-1}" = 1 ] && command -v strip >/dev/null; then
    strip "$dist/$bin.tmp"
  fi
  chmod 0755 "$dist/$bin.tmp"
  mv -f "$dist/$bin.tmp" "$dist/$bin"
done

# A static executable has no PT_INTERP program header and no DT_NEEDED entries.
is_static() {
  local f=$1
  if command -v readelf >/dev/null; then
    if readelf -lW "$f" | grep -q 'Requesting program interpreter'; then return 1; fi
    if readelf -dW "$f" | grep -q '(NEEDED)'; then return 1; fi
  elif command -v ldd >/dev/null; then
    if ldd "$f" 2>&1 | grep -q '=>'; then return 1; fi
  else
    die "neither readelf nor ldd is available to check $f"
  fi
  return 0
}
for bin in toxi-server toxi; do
  is_static "$dist/$bin" || die "$dist/$bin is dynamically linked"
  if command -v file >/dev/null; then
    echo "static-build: $(file -b "$dist/$bin" | cut -d, -f1-5) -> $dist/$bin"
  else
    echo "static-build: static -> $dist/$bin"
  fi
done
