#!/usr/bin/env bash
# Section 6 of BENCHMARKS.md: checkouts and subscription stories through the
# whole stack with the AWS adapters on moto behind the fault proxy, at 10 %
# and 30 % injected faults, counted on the emulator afterwards. Each rate
# resets moto's server first (MOTO_ENDPOINT, started by bench/run.sh).
#   bench/sections/6-reliability.sh OUT.md
#   RELIABILITY_CHECKOUTS=500 RELIABILITY_STORIES=250   a smaller run
set -euo pipefail
BENCH_PACKAGES="${BENCH_PACKAGES:--p tenancy-bench -p stripe-webhook -p tenantctl}"
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
target="${TARGET_DIR:-${CARGO_TARGET_DIR:-target}}"
# The issue's size; on 2 cores moto's server answers about 60 calls a second
# and a run of this size takes about an hour per fault rate.
checkouts="${RELIABILITY_CHECKOUTS:-2000}" stories="${RELIABILITY_STORIES:-1000}"
if [ "${BENCH_QUICK:-0}" = 1 ]; then checkouts=20 stories=10; fi
CARGO_TARGET_DIR="$target" cargo build --release --locked $BENCH_PACKAGES
RUST_LOG="${RUST_LOG:-error}" "$target/release/bench-reliability" --moto "$MOTO_ENDPOINT" \
  --checkouts "$checkouts" --stories "$stories" --rates 0.1,0.3 --out "$1"
