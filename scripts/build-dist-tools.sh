#!/usr/bin/env bash
# Installs, when missing, what the cross builds and their checks need (scripts/check-targets.sh,
# scripts/build-dist.mjs, scripts/test-dist.mjs, and the CI workflow's Linux builds):
#   - the Rust targets given as arguments (rustup target add),
#   - zig and cargo-zigbuild, from PyPI (`ziglang`, `cargo-zigbuild`, the versions below): zig is
#     the C compiler and linker for Linux (glibc 2.17 and musl) and macOS (Mach-O) targets,
#   - llvm-lib (Debian `llvm`) when a windows-msvc target is given: the Windows check archives
#     ring's C objects with it,
#   - with --run: qemu-user-static and Debian's arm64 cross libc and libstdc++ (the sysroot in
#     which qemu-aarch64-static runs the arm64 Node and binary), file and binutils (format and
#     symbol version checks).
# Debian packages come from apt, as root or through sudo; elsewhere it names what is missing and
# fails. `bash scripts/build-dist-tools.sh [--run] [TRIPLE...]`
set -euo pipefail
ZIGLANG=0.17.1
CARGO_ZIGBUILD=0.24.1

run=0
triples=()
for a in "$@"; do
  if [ "$a" = --run ]; then run=1; else triples+=("$a"); fi
done

if [ ${#triples[@]} -gt 0 ]; then
  installed=$(rustup target list --installed)
  want=()
  for t in "${triples[@]}"; do grep -qx "$t" <<<"$installed" || want+=("$t"); done
  [ ${#want[@]} -eq 0 ] || rustup target add "${want[@]}" >&2
fi

py=$(command -v python3 || command -v python || true)
if ! command -v cargo-zigbuild >/dev/null 2>&1 || ! { command -v zig >/dev/null 2>&1 || "$py" -m ziglang version >/dev/null 2>&1; }; then
  [ -n "$py" ] || { echo "build-dist-tools: python3 (for pip) is missing" >&2; exit 1; }
  echo "build-dist-tools: pip install ziglang==$ZIGLANG cargo-zigbuild==$CARGO_ZIGBUILD" >&2
  "$py" -m pip install --quiet --disable-pip-version-check "ziglang==$ZIGLANG" "cargo-zigbuild==$CARGO_ZIGBUILD" >&2
  hash -r
fi

need=()
case " ${triples[*]} " in *-windows-msvc*) command -v llvm-lib >/dev/null 2>&1 || need+=(llvm) ;; esac
if [ $run = 1 ]; then
  for pair in qemu-aarch64-static:qemu-user-static file:file objdump:binutils readelf:binutils; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
  done
  for pair in libc.so.6:libc6-arm64-cross libstdc++.so.6:libstdc++6-arm64-cross libgcc_s.so.1:libgcc-s1-arm64-cross; do
    [ -e "/usr/aarch64-linux-gnu/lib/${pair%%:*}" ] || need+=("${pair#*:}")
  done
fi
[ ${#need[@]} -eq 0 ] && exit 0
sudo=()
[ "$(id -u)" = 0 ] || sudo=(sudo -n)
if command -v apt-get >/dev/null 2>&1 && { [ ${#sudo[@]} -eq 0 ] || sudo -n true 2>/dev/null; }; then
  "${sudo[@]}" apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
else
  echo "build-dist-tools: missing ${need[*]} (install them, or run as root on Debian)" >&2
  exit 1
fi
