//! What this mount may still do under its lease. The server renews the
//! lease on each heartbeat and says so (`LeaseAck`); the mount counts on it
//! from the moment it *sent* that heartbeat, so its view never outlives the
//! server's. When the lease may have run out (the mount was frozen, or cut
//! off from the server) writes wait for a renewal instead of going out.
//!
//! If the lease did run out, the server ended the session: its open files
//! and locks are gone and another mount may hold those locks now. The mount
//! then gets a new session (a new *epoch* here); file handles opened under
//! the old one fail with EIO, its locks with ENOLCK, and what they had
//! buffered is dropped — never written over the new holder's data.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use svol_sdk::{ClientError, FsErrno, Result};
use tokio::sync::Notify;

pub(crate) struct LeaseState {
    base: Instant,
    /// Milliseconds after `base` until which the lease surely holds.
    valid_until: AtomicU64,
    lease_ms: AtomicU64,
    /// Bumped each time the session is lost and replaced.
    epoch: AtomicU64,
    /// Heartbeats in flight: number and when each was sent.
    sent: Mutex<VecDeque<(u64, Instant)>>,
    changed: Notify,
    /// Fencing token of the write lock this session holds on each file.
    fences: Mutex<HashMap<u64, u64>>,
}

fn guard<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn fenced(what: &str) -> ClientError {
    ClientError::Fs(
        FsErrno::Fenced,
        format!("{what}: the mount's lease ran out, so its open files and locks were released"),
    )
}

impl LeaseState {
    /// A lease of `lease_ms` counted from `since` (when Hello was sent).
    pub(crate) fn new(since: Instant, lease_ms: u64) -> Self {
        Self {
            base: since,
            valid_until: AtomicU64::new(lease_ms),
            lease_ms: AtomicU64::new(lease_ms),
            epoch: AtomicU64::new(1),
            sent: Mutex::default(),
            changed: Notify::new(),
            fences: Mutex::default(),
        }
    }

    fn ms(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.base).as_millis() as u64
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Heartbeat `n` is going out now.
    pub(crate) fn sending(&self, n: u64) {
        let mut sent = guard(&self.sent);
        sent.push_back((n, Instant::now()));
        while sent.len() > 64 {
            sent.pop_front();
        }
    }

    /// The server renewed the lease on heartbeat `n`.
    pub(crate) fn acked(&self, n: u64, lease_ms: u64) {
        let at = {
            let mut sent = guard(&self.sent);
            let at = sent.iter().find(|(m, _)| *m == n).map(|(_, t)| *t);
            sent.retain(|(m, _)| *m > n);
            at
        };
        if let Some(at) = at {
            self.lease_ms.store(lease_ms, Ordering::Release);
            self.valid_until
                .fetch_max(self.ms(at) + lease_ms, Ordering::AcqRel);
            self.changed.notify_waiters();
        }
    }

    /// The first Welcome: the lease is `lease_ms`, from when Hello went out.
    pub(crate) fn welcomed(&self, since: Instant, lease_ms: u64) {
        self.lease_ms.store(lease_ms, Ordering::Release);
        self.valid_until
            .store(self.ms(since) + lease_ms, Ordering::Release);
        self.changed.notify_waiters();
    }

    /// The server refused to renew: nothing may be written until a new
    /// session is in place.
    pub(crate) fn refused(&self) {
        self.valid_until.store(0, Ordering::Release);
        self.changed.notify_waiters();
    }

    /// The session was replaced by a new one (`since`: when its Hello was
    /// sent): everything held under the old one is gone.
    pub(crate) fn replaced(&self, since: Instant) {
        guard(&self.fences).clear();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.valid_until.store(
            self.ms(since) + self.lease_ms.load(Ordering::Acquire),
            Ordering::Release,
        );
        self.changed.notify_waiters();
    }

    /// Does the lease surely hold now? Listings are trusted only then
    /// (a mount that may have lost it may also have missed a recall).
    pub(crate) fn holds(&self) -> bool {
        self.valid()
    }

    fn valid(&self) -> bool {
        self.ms(Instant::now()) < self.valid_until.load(Ordering::Acquire)
    }

    /// Waits until the mount may write: the lease surely holds, and (for a
    /// file handle opened under session epoch `epoch`) the session is
    /// still the one the handle belongs to. Gives up with EIO after a
    /// lease's length without a renewal.
    pub(crate) async fn ready(&self, epoch: Option<u64>, what: &str) -> Result<()> {
        let give_up = Instant::now() + Duration::from_millis(self.lease_ms.load(Ordering::Acquire));
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if epoch.is_some_and(|e| e != self.epoch()) {
                return Err(fenced(what));
            }
            if self.valid() {
                return Ok(());
            }
            let left = give_up.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ClientError::Fs(
                    FsErrno::Io,
                    format!("{what}: no lease: the svol server has not answered heartbeats"),
                ));
            }
            let _ = tokio::time::timeout(left, changed).await;
        }
    }

    /// A handle of epoch `epoch` is of the current session.
    pub(crate) fn current(&self, epoch: u64, what: &str) -> Result<()> {
        if epoch == self.epoch() {
            Ok(())
        } else {
            Err(fenced(what))
        }
    }

    pub(crate) fn fence(&self, ino: u64) -> u64 {
        guard(&self.fences).get(&ino).copied().unwrap_or(0)
    }

    /// A write lock on `ino` was granted with token `fence`.
    pub(crate) fn granted(&self, ino: u64, fence: u64) {
        if fence != 0 {
            let mut f = guard(&self.fences);
            let e = f.entry(ino).or_default();
            *e = (*e).max(fence);
        }
    }

    /// After an unlock: the newest token the session still holds (0: none).
    pub(crate) fn still_held(&self, ino: u64, fence: u64) {
        let mut f = guard(&self.fences);
        if fence == 0 {
            f.remove(&ino);
        } else {
            f.insert(ino, fence);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_lapsed_lease_holds_writes_until_renewed_and_a_lost_one_fences_old_handles() {
        let l = std::sync::Arc::new(LeaseState::new(Instant::now(), 200));
        l.ready(Some(1), "w").await.expect("fresh lease");
        tokio::time::sleep(Duration::from_millis(250)).await;
        // Lapsed: a write waits; a renewal lets it go.
        let l2 = l.clone();
        let w = tokio::spawn(async move { l2.ready(Some(1), "w").await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!w.is_finished());
        l.sending(7);
        l.acked(7, 200);
        assert!(w.await.expect("task").is_ok());
        // An ack for a heartbeat nobody sent changes nothing.
        l.refused();
        l.acked(99, 10_000);
        assert!(!l.valid());
        // Replaced: old handles are fenced, new ones may write.
        l.granted(5, 3);
        l.replaced(Instant::now());
        assert_eq!(l.fence(5), 0, "locks of the old session are gone");
        assert!(matches!(
            l.ready(Some(1), "w").await,
            Err(ClientError::Fs(FsErrno::Fenced, _))
        ));
        l.ready(Some(2), "w").await.expect("new epoch");
    }
}
