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
//! The cost would be that a daemon keeps the memory of its last burst for
//! good — glibc keeps freed memory per arena, and a mount's many threads
//! use many arenas: a mount sat at 1 GB after a 1 GiB read, half of it
//! freed buffers. So a daemon also hands its freed memory back once it has
//! been idle for a couple of seconds (`trim_when_idle`): the reuse pays
//! during a burst, and nothing is kept after it.

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

/// How often the trimmer looks, and how much CPU time in that interval
/// still counts as idle (a mount answering the odd `stat` is idle; one
/// moving a file is not).
const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(2);
const IDLE_CPU: std::time::Duration = std::time::Duration::from_millis(20);

/// Starts a thread that hands freed heap memory back to the kernel
/// (`malloc_trim`) after a busy spell, once the process has used less than
/// `IDLE_CPU` of CPU over `TRIM_EVERY`. Trimming only when idle keeps what
/// `keep_big_buffers` buys while a transfer runs.
pub(crate) fn trim_when_idle() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let spawned = std::thread::Builder::new()
            .name("svol-heap-trim".into())
            .spawn(|| {
                let mut last = cpu_time();
                let mut trimmed = true;
                loop {
                    std::thread::sleep(TRIM_EVERY);
                    let now = cpu_time();
                    let used = now.saturating_sub(last);
                    last = now;
                    if used > IDLE_CPU {
                        trimmed = false;
                    } else if !trimmed {
                        // SAFETY: malloc_trim only releases free memory of
                        // glibc's own arenas; safe from any thread.
                        unsafe {
                            libc::malloc_trim(0);
                        }
                        trimmed = true;
                        last = cpu_time();
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("freed memory will not be handed back when idle: {e}");
        }
    }
}

/// CPU time this process has used so far (user and system, all threads).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn cpu_time() -> std::time::Duration {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; RUSAGE_SELF covers every thread of the process.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return std::time::Duration::ZERO;
    }
    let tv = |t: libc::timeval| {
        std::time::Duration::from_secs(t.tv_sec.max(0) as u64)
            + std::time::Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}
