//! ESTALE for an open through a name the kernel kept for a file that is
//! gone (another mount unlinked it: the push that drops the name reaches
//! this kernel after that call returned, and a removal made ahead reaches
//! the server later still; see ahead.rs). ESTALE makes the kernel look the
//! name up again and retry the open once, so an open after another mount's
//! close reads what it wrote. If the retry finds its file gone too (the
//! other mount replaced it again meanwhile), a second ESTALE would reach
//! the application, which expects ENOENT of a file removed under it: the
//! same process's next miss within [`RETRY`] gets ENOENT.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long after an ESTALE the same process's open counts as its retry.
const RETRY: Duration = Duration::from_millis(500);
/// Processes remembered at most (beyond, the oldest are forgotten).
const MAX_PIDS: usize = 4096;

#[derive(Default)]
pub(crate) struct StaleOpens {
    last: Mutex<HashMap<u32, Instant>>,
}

impl StaleOpens {
    /// An open by `pid` found its file gone: may it answer ESTALE (true),
    /// or is this the kernel's retry, to be answered ENOENT?
    pub(crate) fn first(&self, pid: u32) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if last.len() >= MAX_PIDS {
            last.retain(|_, at| now.duration_since(*at) < RETRY);
        }
        match last.insert(pid, now) {
            Some(at) if now.duration_since(at) < RETRY => {
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
        assert!(s.first(7), "the first miss: ESTALE, the kernel retries");
        assert!(s.first(8), "another process has its own");
        assert!(!s.first(7), "the retry also missed: ENOENT");
        assert!(s.first(7), "a later open starts over");
    }
}
