//! How much written-but-uncommitted data a mount may hold in memory. Every
//! chunk buffer is charged a whole chunk when it is started and paid back
//! when its data is committed (or its file state dropped). A write that
//! finds the budget spent first commits its own file; if it has nothing to
//! commit, it asks the flusher to commit the other open files and waits:
//! back-pressure on the writer instead of a mount that grows until the
//! machine runs out of memory.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

pub(crate) struct DirtyBudget {
    limit: u64,
    used: AtomicU64,
    /// Signalled whenever bytes are paid back.
    freed: Notify,
    /// Signalled when a writer is waiting: the flusher commits idle files.
    pub(crate) pressure: Notify,
}

impl DirtyBudget {
    pub(crate) fn new(limit: u64) -> Self {
        Self {
            limit,
            used: AtomicU64::new(0),
            freed: Notify::new(),
            pressure: Notify::new(),
        }
    }

    /// Takes `n` bytes if they fit. A single request larger than the whole
    /// budget is let through when nothing else is charged, so a tiny
    /// budget slows writes down but never stops them.
    pub(crate) fn try_take(&self, n: u64) -> bool {
        let mut cur = self.used.load(Ordering::Acquire);
        loop {
            if cur > 0 && cur + n > self.limit {
                return false;
            }
            match self
                .used
                .compare_exchange(cur, cur + n, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(now) => cur = now,
            }
        }
    }

    pub(crate) fn give(&self, n: u64) {
        if n > 0 {
            self.used.fetch_sub(n, Ordering::AcqRel);
            self.freed.notify_waiters();
        }
    }

    /// Waits a little for bytes to be paid back (after asking for it).
    pub(crate) async fn wait(&self) {
        let freed = self.freed.notified();
        self.pressure.notify_one();
        let _ = tokio::time::timeout(Duration::from_millis(50), freed).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_until_full_and_gives_back() {
        let b = DirtyBudget::new(10);
        assert!(b.try_take(4));
        assert!(b.try_take(6));
        assert!(!b.try_take(1), "full");
        b.give(6);
        assert!(b.try_take(5));
        assert!(!b.try_take(2));
        b.give(9);
        // One request larger than the whole budget passes when it is idle.
        assert!(b.try_take(50));
        assert!(!b.try_take(1));
    }
}
