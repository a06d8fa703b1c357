#!/usr/bin/env bash
# Runs the ava suite. As root, inside a private network namespace (only `lo`, nothing can
# leave the machine, sysctls such as tcp_fastopen change only there); elsewhere, directly.
set -euo pipefail
cd "$(dirname "$0")/.."
# The 1,000-client echo needs ~2,000 descriptors; raise the soft limit as far as allowed.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null && unshare -n true 2>/dev/null; then
  exec unshare -n -- sh -c 'ip link set lo up && TCPSERVER_TEST_NETNS=1 exec npx ava "$@"' ava "$@"
fi
exec npx ava "$@"
