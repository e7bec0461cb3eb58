#!/usr/bin/env bash
# Section 5 of BENCHMARKS.md: a burst of signed checkouts through
# `tenantctl local serve` (a release build, in its own process).
#   bench/sections/5-burst.sh OUT.md
set -euo pipefail
# One package set for every section, so they share one build (a different
# set can unify features differently and rebuild).
BENCH_PACKAGES="${BENCH_PACKAGES:--p tenancy-bench -p stripe-webhook -p tenantctl}"
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
target="${TARGET_DIR:-${CARGO_TARGET_DIR:-target}}"
checkouts=1000 redeliveries=100
if [ "${BENCH_QUICK:-0}" = 1 ]; then checkouts=50 redeliveries=5; fi
CARGO_TARGET_DIR="$target" cargo build --release --locked $BENCH_PACKAGES
mkdir -p "$target/bench"
"$target/release/bench-burst" --tenantctl "$target/release/tenantctl" \
  --checkouts "$checkouts" --redeliveries "$redeliveries" --concurrency 1,4,16 --time-scale 0.01 \
  --server-log "$target/bench/burst-server.log" --out "$1" >/dev/null
