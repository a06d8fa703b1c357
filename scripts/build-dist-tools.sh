#!/usr/bin/env bash
# Installs, when missing, what the cross builds and their checks need (scripts/check-targets.sh,
# scripts/build-dist.mjs, scripts/test-dist.mjs):
#   - the Rust targets given as arguments (rustup target add),
#   - zig and cargo-zigbuild, from PyPI (`ziglang`, `cargo-zigbuild`): zig is the C compiler and
#     linker for Linux (glibc 2.17 and musl) and macOS (Mach-O) targets,
#   - llvm-lib (Debian `llvm`; the Windows check archives ring's C objects with it),
#   - qemu-user-static (runs the arm64 Node and binary), file and binutils (format and symbol
#     version checks), with apt as root.
# Elsewhere it names what is missing and fails.
set -euo pipefail

if [ $# -gt 0 ]; then
  installed=$(rustup target list --installed)
  want=()
  for t in "$@"; do grep -qx "$t" <<<"$installed" || want+=("$t"); done
  [ ${#want[@]} -eq 0 ] || rustup target add "${want[@]}" >&2
fi

py=$(command -v python3 || command -v python || true)
if ! command -v cargo-zigbuild >/dev/null 2>&1 || ! { command -v zig >/dev/null 2>&1 || "$py" -m ziglang version >/dev/null 2>&1; }; then
  [ -n "$py" ] || { echo "build-dist-tools: python3 (for pip) is missing" >&2; exit 1; }
  echo "build-dist-tools: pip install ziglang cargo-zigbuild" >&2
  "$py" -m pip install --quiet --disable-pip-version-check ziglang cargo-zigbuild >&2
  hash -r
fi

need=()
for pair in llvm-lib:llvm qemu-aarch64-static:qemu-user-static file:file objdump:binutils readelf:binutils; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
else
  echo "build-dist-tools: missing ${need[*]} (install them, or run as root on Debian)" >&2
  exit 1
fi
