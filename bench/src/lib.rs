//! Shared pieces of the benchmarks behind `make bench` (see bench/run.sh):
//! robust statistics and the Markdown each benchmark writes as its section
//! of BENCHMARKS.md. Each benchmark is its own binary in `src/bin/`.

pub mod coldstart;
pub mod report;
pub mod stats;
