//! The allocator's share of a long-running local server's memory.
//!
//! glibc's malloc gives a thread that finds its arena busy an arena of its
//! own, up to eight per core, and each arena keeps the memory freed into it
//! for its own thread. `local serve` allocates from many threads (the
//! webhook's workers, the executions' runtime, the blocking threads that
//! hash passwords), and in a 1,000-checkout burst those arenas held about a
//! quarter of its peak memory (BENCHMARKS.md, section 8).

/// Holds glibc's malloc to one arena per core, as `MALLOC_ARENA_MAX` would.
/// Call it before the process starts its threads: a thread keeps the arena
/// it was given. Returns whether the allocator took the limit (always false
/// where malloc is not glibc's, which has no such arenas).
pub fn one_arena_per_core() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let arenas = libc::c_int::try_from(cores).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only sets one of malloc's parameters, under
        // malloc's own lock; it takes no pointer.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, arenas) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// A multi-threaded Tokio runtime whose threads start after
/// [`one_arena_per_core`]: what a long-running process's `main` builds.
pub fn runtime_with_one_arena_per_core() -> std::io::Result<tokio::runtime::Runtime> {
    one_arena_per_core();
    tokio::runtime::Builder::new_multi_thread().enable_all().build()
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibcs_malloc_takes_the_arena_limit() {
        assert!(super::one_arena_per_core());
    }
}
