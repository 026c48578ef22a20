//! ESTALE for an open through a name the kernel kept for a file that is
//! gone (another mount unlinked it: the push that drops the name reaches
//! this kernel after that call returned, and a removal made ahead reaches
//! the server later still; see ahead.rs). ESTALE makes the kernel look the
//! name up again and retry the open once, so an open after another mount's
//! close reads what it wrote. If the retry finds its file gone too (the
//! other mount replaced it again meanwhile), a second ESTALE would reach
//! the application, which expects ENOENT of a file removed under it: the
//! same process's next miss of the same inode within [`RETRY`] gets ENOENT.
//! A miss of another inode is another open (a process that renames a file
//! away and creates it anew, as `dbm` and lock-file libraries do, may meet
//! two names another mount replaced within a few milliseconds): it gets
//! its own ESTALE and retry. Whoever answers ESTALE also drops the listings
//! that named the file, so the retry's lookup asks the server.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long after an ESTALE the same process's open counts as its retry.
const RETRY: Duration = Duration::from_millis(500);
/// Processes remembered at most (beyond, the oldest are forgotten).
const MAX_PIDS: usize = 4096;

#[derive(Default)]
pub(crate) struct StaleOpens {
    /// Process → the inode its last ESTALE was for, and when.
    last: Mutex<HashMap<u32, (u64, Instant)>>,
}

impl StaleOpens {
    /// An open by `pid` found file `ino` gone: may it answer ESTALE
    /// (true), or is this the kernel's retry, to be answered ENOENT?
    pub(crate) fn first(&self, pid: u32, ino: u64) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if last.len() >= MAX_PIDS {
            last.retain(|_, (_, at)| now.duration_since(*at) < RETRY);
        }
        match last.insert(pid, (ino, now)) {
            Some((was, at)) if was == ino && now.duration_since(at) < RETRY => {
                last.remove(&pid);
                false
            }
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_gets_one_estale_then_enoent_for_its_retry() {
        let s = StaleOpens::default();
        assert!(
            s.first(7, 100),
            "the first miss: ESTALE, the kernel retries"
        );
        assert!(s.first(8, 100), "another process has its own");
        assert!(!s.first(7, 100), "the retry also missed: ENOENT");
        assert!(s.first(7, 100), "a later open starts over");
        assert!(s.first(7, 200), "a miss of another file is another open");
        assert!(!s.first(7, 200));
    }
}
