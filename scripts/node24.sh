#!/usr/bin/env bash
# Runs the ava suite under Node.js 24; `npm test` runs it after the Node 20 suite (scripts/test-js.sh).
#
# Node 24 comes from the npm package `node-<platform>-<arch>@24` (the official binaries, published
# to npm by the Node.js project), installed once into node_modules/.cache/node24 and reused; set
# NODE24_DIR to keep it elsewhere. The native addon is N-API (ABI-stable): the .node built for
# Node 20 loads in 24 unchanged. ava runs on Node 24 itself, and so do its worker processes (it
# forks with process.execPath) and any `node` a spec spawns (Node 24 comes first on PATH).
#
# Like scripts/test-js.sh: as root, inside a private network namespace (only `lo`). Arguments go
# to ava (`bash scripts/node24.sh __test__/cli.spec.ts`).
set -euo pipefail
cd "$(dirname "$0")/.."

pkg="node-$(node -p 'process.platform + "-" + process.arch')"
dir="${NODE24_DIR:-node_modules/.cache/node24}"
bin="$dir/node_modules/$pkg/bin"
if ! [ -x "$bin/node" ] || ! "$bin/node" -e 'process.exit(process.versions.node.startsWith("24.") ? 0 : 1)'; then
  echo "node24: installing $pkg@24 into $dir" >&2
  mkdir -p "$dir"
  npm install --prefix "$dir" --no-save --no-package-lock --no-audit --no-fund --no-update-notifier \
    "$pkg@24" >&2
fi
bin="$(cd "$bin" && pwd)"
echo "node24: $("$bin/node" --version) ($bin/node)" >&2

# The 1,000-client echo needs ~2,000 descriptors; raise the soft limit as far as allowed.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
export PATH="$bin:$PATH"
ava=(node node_modules/ava/entrypoints/cli.mjs)
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null && unshare -n true 2>/dev/null; then
  exec unshare -n -- sh -c 'ip link set lo up && TCPSERVER_TEST_NETNS=1 exec "$@"' sh "${ava[@]}" "$@"
fi
exec "${ava[@]}" "$@"
