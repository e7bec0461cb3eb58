#!/usr/bin/env bash
# Cargo's RUSTC_WORKSPACE_WRAPPER in `make test`: each workspace crate is
# compiled by clippy-driver (rustc with Clippy's lints, as `cargo clippy`
# runs it), warnings as errors. One build then both lints the workspace and
# compiles it for the tests, where `cargo clippy` and `cargo test` would each
# compile every dependency (a check, then a build: about 5 of a cold clone's
# minutes on 2 cores). Dependencies are compiled by plain rustc.
set -euo pipefail
driver="${CLIPPY_DRIVER:-$(rustc --print sysroot)/bin/clippy-driver}"
exec "$driver" "$@" -D warnings
