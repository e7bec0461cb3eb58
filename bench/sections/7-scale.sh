#!/usr/bin/env bash
# Section 7 of BENCHMARKS.md: 100, 1,000 and 10,000 tenants provisioned on a
# pool of load balancers through the local stack, each size in its own process.
#   bench/sections/7-scale.sh OUT.md
set -euo pipefail
# One package set for every section, so they share one build (a different
# set can unify features differently and rebuild).
BENCH_PACKAGES="${BENCH_PACKAGES:--p tenancy-bench -p stripe-webhook -p tenantctl}"
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
target="${TARGET_DIR:-${CARGO_TARGET_DIR:-target}}"
sizes=100,1000,10000
if [ "${BENCH_QUICK:-0}" = 1 ]; then sizes=20,100; fi
CARGO_TARGET_DIR="$target" cargo build --release --locked $BENCH_PACKAGES
"$target/release/bench-scale" --sizes "$sizes" --time-scale 0.01 --out "$1" >/dev/null
