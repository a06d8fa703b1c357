#!/usr/bin/env bash
# Installs (apt, as root) the Debian tools that the build, tests and benchmarks drive, when
# missing. Elsewhere it only names what is missing; tests that need a tool then skip.
set -euo pipefail
need=()
for pair in cc:gcc curl:curl nstat:iproute2 ip:iproute2 unshare:util-linux taskset:util-linux wrk:wrk openssl:openssl nft:nftables sysctl:procps haproxy:haproxy; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
else
  echo "install-tools: missing (tests that need them will skip): ${need[*]}" >&2
fi
