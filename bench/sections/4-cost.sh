#!/usr/bin/env bash
# Section 4 of BENCHMARKS.md: state transitions, Lambda invocations and
# DynamoDB units per tenant, from one customer's life through the local stack.
#   bench/sections/4-cost.sh OUT.md
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
target="${TARGET_DIR:-${CARGO_TARGET_DIR:-target}}"
cargo build --release --locked -p tenancy-bench --bin bench-cost
"$target/release/bench-cost" --out "$1" >/dev/null
