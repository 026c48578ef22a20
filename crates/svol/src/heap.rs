//! How glibc's allocator treats the 4 MiB buffers a server and a mount
//! pass around on a big file (blocks read and written, messages encoded
//! and decoded).
//!
//! By default glibc serves such a buffer with its own `mmap`, or hands the
//! memory of a freed one back to the kernel once 128 KiB sit free at the
//! top of a heap; either way the next buffer is fresh memory, and the
//! kernel faults in and zeroes every 4 KiB page of it on first touch. On a
//! 2-core machine that was a sixth of the server's time on a big transfer.
//! Keeping buffers below 16 MiB in the heap, and up to 128 MiB of freed
//! memory in the process, reuses them instead: on a 2 GiB write and its
//! cold read the server took 135,764 page faults instead of 581,652 and
//! 6.1 CPU seconds instead of 7.1, and the cold read went from 512–603 to
//! 585–652 MB/s over four runs (the machine's noise is about as large).
//! The cost is that a daemon may keep that much freed memory after a
//! burst.

/// Sets the thresholds above for a long-running process, unless the user
/// set glibc's own variables for them.
pub(crate) fn keep_big_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const KEEP: [(libc::c_int, &str, libc::c_int); 2] = [
            (libc::M_MMAP_THRESHOLD, "MALLOC_MMAP_THRESHOLD_", 16 << 20),
            (libc::M_TRIM_THRESHOLD, "MALLOC_TRIM_THRESHOLD_", 128 << 20),
        ];
        for (param, env, value) in KEEP {
            if std::env::var_os(env).is_none() {
                // SAFETY: mallopt only changes allocator tunables; called
                // at start-up, before other threads allocate.
                unsafe {
                    libc::mallopt(param, value);
                }
            }
        }
    }
}
