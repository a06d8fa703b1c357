#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer via `cargo +nightly fuzz`) of the PROXY protocol parser,
# its v2 TLV walker and the address parsers: crates/tcpserver/fuzz. Part of the slow tier
# (`npm run test:slow`), not of `npm test`.
#
# Each target runs a fixed number of inputs (FUZZ_RUNS, default 200000) from the committed
# seeds in crates/tcpserver/fuzz/corpus/<target>/; what libFuzzer adds goes to a scratch
# corpus (crates/tcpserver/fuzz/work/, git-ignored). A crash fails the run and leaves its
# input in crates/tcpserver/fuzz/artifacts/<target>/ (replay: cargo +nightly fuzz run
# <target> <file>). Without a nightly toolchain or cargo-fuzz the run is skipped, loudly.
#
# Usage: bash scripts/fuzz.sh [target...]   (default: every target)
set -euo pipefail
cd "$(dirname "$0")/../crates/tcpserver/fuzz"

runs="${FUZZ_RUNS:-200000}"
if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz: SKIPPED: no nightly toolchain (rustup toolchain install nightly)" >&2
  exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz: SKIPPED: cargo-fuzz is not installed (cargo install cargo-fuzz)" >&2
  exit 0
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi
# One job at a time and a bounded input size: the machine is shared, and headers are small
# (a v2 header is at most 65,551 bytes; 4 KiB reaches every branch).
for target in "${targets[@]}"; do
  mkdir -p "work/$target"
  echo "fuzz: $target, $runs runs" >&2
  log="work/$target.log"
  if ! cargo +nightly fuzz run "$target" "work/$target" "corpus/$target" -- \
    -runs="$runs" -max_len=4096 -timeout=10 -rss_limit_mb=1024 -print_final_stats=1 >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "fuzz: $target FAILED (log: crates/tcpserver/fuzz/$log)" >&2
    exit 1
  fi
  # The last status line (coverage, features, corpus, exec/s) and the final stats.
  grep -E '^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE)' "$log" | tail -n 1 >&2 || true
  grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' "$log" >&2 || true
done
echo "fuzz: ${#targets[@]} targets, $runs runs each, no crash" >&2
