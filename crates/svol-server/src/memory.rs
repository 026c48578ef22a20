//! Memory the server is done with goes back to the system. Block bodies
//! pass through the server 4 MiB at a time on many threads; glibc keeps
//! what they freed in per-thread arenas, so after a 1 GiB write and read
//! the idle server still held ~550 MB it did not use. A trim every few
//! seconds hands it back (to ~50 MB) at the cost of faulting pages in
//! again on the next burst. Forcing every large buffer to its own mapping
//! (a fixed `M_MMAP_THRESHOLD`) was tried instead: it kept the server near
//! 25 MB but nearly doubled its CPU per byte on a cold read.

use std::time::Duration;

const EVERY: Duration = Duration::from_secs(10);

pub(crate) fn spawn_trimmer() {
    tokio::spawn(async {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let _ = tokio::task::spawn_blocking(trim).await;
        }
    });
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim only returns free heap memory to the kernel; it
    // takes the allocator's own locks and touches no live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
