#!/usr/bin/env bash
# Section 4 of BENCHMARKS.md: state transitions, Lambda invocations and
# DynamoDB units per tenant, from one customer's life through the local stack.
#   bench/sections/4-cost.sh OUT.md
set -euo pipefail
# One package set for every section, so they share one build (a different
# set can unify features differently and rebuild).
BENCH_PACKAGES="${BENCH_PACKAGES:--p tenancy-bench -p stripe-webhook -p tenantctl}"
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
target="${TARGET_DIR:-${CARGO_TARGET_DIR:-target}}"
CARGO_TARGET_DIR="$target" cargo build --release --locked $BENCH_PACKAGES
"$target/release/bench-cost" --out "$1" >/dev/null
