//! The process allocator and how soon it gives freed memory back.
//!
//! mimalloc keeps freed pages for a while (`purge_delay`, 1 s in the version linked) and commits
//! its arenas eagerly on Linux. Work that runs a slice of customers at a time (the refresh's
//! features, the serving index) frees one slice's memory just before the next slice allocates
//! as much again; with the defaults the freed pages are still resident then, and the process
//! holds two slices (or all of them) instead of one. At 10M simulated orders the serving index
//! built in four slices peaked at 4.46 GB with the defaults and 1.39 GB returning memory at
//! once (BENCHMARKS.md, issue 15 part 3). So c360 returns memory at once unless the
//! environment says otherwise (`MIMALLOC_PURGE_DELAY`, `MIMALLOC_ARENA_EAGER_COMMIT`: the
//! allocator's own settings win).

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_e` in mimalloc v3's `mimalloc.h` (the bindings name only the older options; a
/// test checks these against the library's defaults).
const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// The settings c360 runs with: (option, its environment variable, value).
const SETTINGS: [(libmimalloc_sys::mi_option_t, &str, i64); 2] = [
    // Purge freed memory at once (milliseconds).
    (PURGE_DELAY, "MIMALLOC_PURGE_DELAY", 0),
    // Commit arena memory as it is used, not the whole arena up front.
    (ARENA_EAGER_COMMIT, "MIMALLOC_ARENA_EAGER_COMMIT", 0),
];

/// Applies [`SETTINGS`] that the environment does not set. Call first thing in `main`.
pub fn configure() {
    for (option, env, value) in SETTINGS {
        if std::env::var_os(env).is_none() {
            // SAFETY: `mi_option_set` stores a value in mimalloc's option table (a relaxed
            // atomic store); any option number below `_mi_option_last` is valid.
            unsafe { libmimalloc_sys::mi_option_set(option, value as _) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(option: libmimalloc_sys::mi_option_t) -> i64 {
        // SAFETY: reads mimalloc's option table; the numbers are below `_mi_option_last`.
        unsafe { libmimalloc_sys::mi_option_get(option) as i64 }
    }

    #[test]
    fn the_option_numbers_are_the_librarys_and_configure_sets_them() {
        // The library's own defaults under these numbers (purge_delay 1000 ms; arena eager
        // commit 2, "on overcommit systems"): a renumbered enum fails here.
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(get(PURGE_DELAY), 1000);
        }
        if std::env::var_os("MIMALLOC_ARENA_EAGER_COMMIT").is_none() {
            assert_eq!(get(ARENA_EAGER_COMMIT), 2);
        }
        configure();
        for (option, env, value) in SETTINGS {
            if std::env::var_os(env).is_none() {
                assert_eq!(get(option), value, "{env}");
            }
        }
    }
}
