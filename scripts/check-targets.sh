#!/usr/bin/env bash
# Type-checks the workspace (the core crate and the napi binding, lib and bins) for every target
# the npm package promises (packages/tcpserver/package.json → napi.targets), warnings as errors,
# so that code which only builds on Linux glibc is caught here and not on a user's machine.
# `cargo check` links nothing, but it runs build scripts: ring compiles C. For Linux and macOS
# targets that C goes through zig (cargo-zigbuild). cargo-zigbuild has no MSVC target, so for
# Windows ring's C is compiled by zig for x86_64-windows-gnu (COFF objects, archived with
# llvm-lib) only so that its build script completes; the Windows binary itself is built by
# MSVC in CI (.github/workflows/ci.yml).
#
# `bash scripts/check-targets.sh [TRIPLE...]` (default: all napi targets). Installs what it needs
# (scripts/build-dist-tools.sh). Part of `npm run test:dist` and of CI's lint job.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(node -p "require('./packages/tcpserver/package.json').napi.targets.join('\n')")
fi
bash scripts/build-dist-tools.sh "${targets[@]}"

zig_cmd() {
  if command -v zig >/dev/null 2>&1; then command -v zig
  else echo "$(command -v python3) -m ziglang"; fi
}

failed=()
for t in "${targets[@]}"; do
  echo "check-targets: cargo check --target $t" >&2
  cmd=(cargo-zigbuild check)
  rustflags="'-D','warnings'"
  case "$t" in
    *-musl) rustflags+=",'-C','target-feature=-crt-static'" ;; # as napi build does: a cdylib needs it
    *-windows-msvc)
      cmd=(cargo check)
      wrapper="$PWD/target/check-targets/zig-cc-windows"
      mkdir -p "$(dirname "$wrapper")"
      # cc-rs passes --target=<rust triple>, which zig does not parse: drop it.
      cat >"$wrapper" <<WRAP
#!/usr/bin/env bash
args=()
for a in "\$@"; do case "\$a" in --target=*) ;; *) args+=("\$a") ;; esac; done
exec $(zig_cmd) cc -target x86_64-windows-gnu "\${args[@]}"
WRAP
      chmod +x "$wrapper"
      var=${t//-/_}
      export "CC_$var=$wrapper" "AR_$var=llvm-lib"
      ;;
  esac
  if ! "${cmd[@]}" --workspace --locked --quiet --target "$t" --config "target.$t.rustflags=[$rustflags]"; then
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "check-targets: FAILED for ${failed[*]}" >&2
  exit 1
fi
echo "check-targets: ${#targets[@]} targets compile: ${targets[*]}"
