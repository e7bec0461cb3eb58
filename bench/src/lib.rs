//! Shared pieces of the benchmarks behind `make bench` (see bench/run.sh):
//! robust statistics and the Markdown each benchmark writes as its section
//! of BENCHMARKS.md, and each benchmark's measured work, testable here. Each
//! benchmark is its own binary in `src/bin/`.

pub mod burst;
pub mod coldstart;
pub mod cost;
pub mod reliability;
pub mod report;
pub mod scale;
pub mod stats;
pub mod verify;
