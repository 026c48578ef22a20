//! fcntl and flock locks, held in this server's memory. A lock belongs to
//! (session, owner): `owner` is the kernel's lock owner on that mount (a
//! process's POSIX locks, or one open file description's flock). Locks of a
//! session end with it — on unmount, on lease expiry (a crashed client), on
//! token revocation — so a dead client never keeps a file locked.
//!
//! Waiters take tickets and are served in ticket order: a waiter may take
//! its lock only if no held lock and no earlier waiter conflicts with it, so
//! a steady stream of readers cannot starve a writer. No deadlock detection
//! (EDEADLK): two clients waiting on each other wait until one gives up.

use std::collections::HashMap;
use std::sync::Mutex;

use svol_meta::Ino;
use svol_proto as p;
use tokio::sync::Notify;
use tonic::{Request, Status};

use crate::service::State;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Owner {
    pub session: String,
    pub owner: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Read,
    Write,
}

#[derive(Debug, Clone)]
pub(crate) struct Range {
    pub owner: Owner,
    pub kind: Kind,
    pub start: u64,
    pub end: u64,
    pub pid: u32,
}

impl Range {
    fn overlaps(&self, start: u64, end: u64) -> bool {
        self.start <= end && start <= self.end
    }

    fn conflicts(&self, owner: &Owner, kind: Kind, start: u64, end: u64) -> bool {
        self.owner != *owner
            && self.overlaps(start, end)
            && (self.kind == Kind::Write || kind == Kind::Write)
    }
}

struct Waiter {
    ticket: u64,
    want: Range,
}

#[derive(Default)]
struct FileLocks {
    held: Vec<Range>,
    waiting: Vec<Waiter>,
}

/// Locks held on one file at most; beyond, ENOLCK.
const MAX_RANGES: usize = 10_000;
/// Calls waiting for a lock on one file at most; beyond, ENOLCK (each
/// waiter is a held-open call and a queue entry scanned on every change).
const MAX_WAITERS: usize = 4_096;

#[derive(Default)]
pub(crate) struct LockTable {
    files: Mutex<HashMap<Ino, FileLocks>>,
    next_ticket: std::sync::atomic::AtomicU64,
    changed: Notify,
}

pub(crate) enum Outcome {
    Granted,
    Conflict(Range),
    TooMany,
}

impl FileLocks {
    /// Removes `owner`'s locks on [start, end], keeping the parts outside.
    fn cut(&mut self, owner: &Owner, start: u64, end: u64) {
        let mut kept = Vec::with_capacity(self.held.len() + 1);
        for r in self.held.drain(..) {
            if r.owner != *owner || !r.overlaps(start, end) {
                kept.push(r);
                continue;
            }
            if r.start < start {
                kept.push(Range {
                    end: start - 1,
                    ..r.clone()
                });
            }
            if r.end > end {
                kept.push(Range {
                    start: end + 1,
                    ..r.clone()
                });
            }
        }
        self.held = kept;
    }

    fn conflict(&self, want: &Range) -> Option<&Range> {
        self.held
            .iter()
            .find(|r| r.conflicts(&want.owner, want.kind, want.start, want.end))
    }

    /// May the waiter with `ticket` go ahead of everyone still waiting?
    fn first_in_line(&self, ticket: u64, want: &Range) -> bool {
        !self.waiting.iter().any(|w| {
            w.ticket < ticket
                && w.want
                    .conflicts(&want.owner, want.kind, want.start, want.end)
        })
    }

    fn take(&mut self, want: Range) -> Outcome {
        self.cut(&want.owner, want.start, want.end);
        if self.held.len() >= MAX_RANGES {
            return Outcome::TooMany;
        }
        self.held.push(want);
        Outcome::Granted
    }
}

/// Takes a waiter out of the queue however its call ends (granted, or the
/// client went away and the call was dropped).
struct Ticket<'a> {
    table: &'a LockTable,
    ino: Ino,
    ticket: u64,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        let mut files = self.table.lock();
        if let Some(f) = files.get_mut(&self.ino) {
            f.waiting.retain(|w| w.ticket != self.ticket);
        }
        drop(files);
        self.table.changed.notify_waiters();
    }
}

impl LockTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Ino, FileLocks>> {
        self.files.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// F_GETLK: the first lock that would block `want`.
    pub(crate) fn test(&self, ino: Ino, want: &Range) -> Option<Range> {
        self.lock()
            .get(&ino)
            .and_then(|f| f.conflict(want).cloned())
    }

    /// Takes (or, with `wait`, waits for) a lock.
    pub(crate) async fn acquire(&self, ino: Ino, want: Range, wait: bool) -> Outcome {
        {
            let mut files = self.lock();
            let f = files.entry(ino).or_default();
            match f.conflict(&want).cloned() {
                Some(c) if !wait => return Outcome::Conflict(c),
                // A try-lock that nothing held blocks is granted even if
                // others wait (as the kernel does for local files).
                None if !wait || f.first_in_line(u64::MAX, &want) => return f.take(want),
                _ => {}
            }
        }
        let ticket = self
            .next_ticket
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        {
            let mut files = self.lock();
            let f = files.entry(ino).or_default();
            if f.waiting.len() >= MAX_WAITERS {
                return Outcome::TooMany;
            }
            f.waiting.push(Waiter {
                ticket,
                want: want.clone(),
            });
        }
        let _t = Ticket {
            table: self,
            ino,
            ticket,
        };
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let mut files = self.lock();
                let f = files.entry(ino).or_default();
                if f.conflict(&want).is_none() && f.first_in_line(ticket, &want) {
                    f.waiting.retain(|w| w.ticket != ticket);
                    return f.take(want);
                }
            }
            changed.await;
        }
    }

    /// Unlocks [start, end] of `owner`'s locks on `ino`.
    pub(crate) fn release(&self, ino: Ino, owner: &Owner, start: u64, end: u64) {
        let mut files = self.lock();
        if let Some(f) = files.get_mut(&ino) {
            f.cut(owner, start, end);
            if f.held.is_empty() && f.waiting.is_empty() {
                files.remove(&ino);
            }
        }
        drop(files);
        self.changed.notify_waiters();
    }

    /// Everything a session held (it ended or expired).
    pub(crate) fn release_session(&self, session: &str) {
        let mut files = self.lock();
        for f in files.values_mut() {
            f.held.retain(|r| r.owner.session != session);
        }
        files.retain(|_, f| !f.held.is_empty() || !f.waiting.is_empty());
        drop(files);
        self.changed.notify_waiters();
    }
}

impl State {
    pub(crate) async fn do_lock(
        &self,
        req: Request<p::LockRequest>,
    ) -> Result<p::LockReply, Status> {
        let c = self.caller(&req, &req.get_ref().volume).await?;
        if c.session.is_empty() {
            return Err(Status::invalid_argument("locks need a mount session"));
        }
        let r = req.into_inner();
        let (vol, ino) = (c.vol, r.ino);
        // The inode must belong to the caller's volume.
        let a = self.meta(move |m| m.getattr(vol, ino)).await?;
        if r.start > r.end {
            return Err(Status::invalid_argument("lock range ends before it starts"));
        }
        let owner = Owner {
            session: c.session.clone(),
            owner: r.owner,
        };
        let kind = match p::LockKind::try_from(r.kind) {
            Ok(p::LockKind::Read) => Kind::Read,
            Ok(p::LockKind::Write) => Kind::Write,
            Ok(p::LockKind::Unlock) => {
                self.locks.release(ino, &owner, r.start, r.end);
                return Ok(p::LockReply {
                    granted: true,
                    ..Default::default()
                });
            }
            Err(_) => return Err(Status::invalid_argument("unknown lock kind")),
        };
        let want = Range {
            owner,
            kind,
            start: r.start,
            end: r.end,
            pid: r.pid,
        };
        let conflict = |c: Range| p::LockReply {
            granted: false,
            kind: match c.kind {
                Kind::Read => p::LockKind::Read as i32,
                Kind::Write => p::LockKind::Write as i32,
            },
            start: c.start,
            end: c.end,
            pid: c.pid,
            ..Default::default()
        };
        if r.test {
            return Ok(match self.locks.test(ino, &want) {
                Some(c) => conflict(c),
                None => p::LockReply {
                    granted: true,
                    ..Default::default()
                },
            });
        }
        match self.locks.acquire(ino, want, r.wait).await {
            Outcome::Granted => {
                // What the last holder wrote is committed by now (clients
                // commit before they unlock): report the current version.
                let version = self
                    .meta(move |m| m.getattr(vol, ino))
                    .await
                    .map(|a| a.version)
                    .unwrap_or(a.version);
                Ok(p::LockReply {
                    granted: true,
                    version,
                    invalidation_seq: self.sessions.seq(&c.session),
                    ..Default::default()
                })
            }
            Outcome::Conflict(c) => Ok(conflict(c)),
            Outcome::TooMany => {
                let mut s = Status::resource_exhausted("too many lock ranges on one file");
                if let Ok(v) = "ENOLCK".parse() {
                    s.metadata_mut().insert(p::ERRNO_HEADER, v);
                }
                Err(s)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn r(session: &str, owner: u64, kind: Kind, start: u64, end: u64) -> Range {
        Range {
            owner: Owner {
                session: session.into(),
                owner,
            },
            kind,
            start,
            end,
            pid: owner as u32,
        }
    }

    fn granted(o: Outcome) -> bool {
        matches!(o, Outcome::Granted)
    }

    #[tokio::test]
    async fn readers_share_writers_exclude_and_ranges_split() {
        let t = LockTable::default();
        assert!(granted(
            t.acquire(1, r("s1", 1, Kind::Read, 0, 99), false).await
        ));
        assert!(granted(
            t.acquire(1, r("s2", 1, Kind::Read, 50, 150), false).await
        ));
        assert!(!granted(
            t.acquire(1, r("s2", 2, Kind::Write, 60, 60), false).await
        ));
        // a different file is independent
        assert!(granted(
            t.acquire(2, r("s2", 2, Kind::Write, 0, u64::MAX), false)
                .await
        ));
        // upgrade of one's own lock where nobody else overlaps
        t.release(1, &r("s2", 1, Kind::Read, 0, 0).owner, 0, u64::MAX);
        assert!(granted(
            t.acquire(1, r("s1", 1, Kind::Write, 0, 99), false).await
        ));
        // unlocking the middle leaves both ends locked
        t.release(1, &r("s1", 1, Kind::Read, 0, 0).owner, 10, 19);
        assert!(granted(
            t.acquire(1, r("s3", 1, Kind::Write, 10, 19), false).await
        ));
        assert!(t.test(1, &r("s3", 1, Kind::Write, 5, 5)).is_some());
        assert!(t.test(1, &r("s3", 1, Kind::Write, 20, 20)).is_some());
        assert!(t.test(1, &r("s3", 1, Kind::Write, 100, 200)).is_none());
        // a session's end frees everything it held
        t.release_session("s1");
        assert!(t.test(1, &r("s4", 1, Kind::Write, 0, 9)).is_none());
    }

    #[tokio::test]
    async fn waiters_are_served_in_arrival_order() {
        let t = Arc::new(LockTable::default());
        assert!(granted(
            t.acquire(7, r("a", 1, Kind::Write, 0, u64::MAX), false)
                .await
        ));
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (i, kind) in [(2u64, Kind::Write), (3, Kind::Read), (4, Kind::Read)] {
            let (t, order) = (t.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let o = t.acquire(7, r("w", i, kind, 0, u64::MAX), true).await;
                assert!(granted(o));
                order.lock().unwrap_or_else(|p| p.into_inner()).push(i);
                if kind == Kind::Write {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    t.release(7, &r("w", i, kind, 0, 0).owner, 0, u64::MAX);
                }
            }));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // a try-lock is refused while the first writer still holds the file
        assert!(!granted(
            t.acquire(7, r("x", 9, Kind::Read, 0, 0), false).await
        ));
        t.release_session("a");
        for task in tasks {
            task.await.unwrap_or_else(|e| panic!("{e}"));
        }
        let got = order.lock().unwrap_or_else(|p| p.into_inner()).clone();
        assert_eq!(got[0], 2, "the writer that came first goes first: {got:?}");
    }

    #[tokio::test]
    async fn the_wait_queue_of_a_file_is_bounded() {
        let t = Arc::new(LockTable::default());
        assert!(granted(
            t.acquire(5, r("a", 1, Kind::Write, 0, u64::MAX), false)
                .await
        ));
        let mut tasks = Vec::new();
        for i in 0..MAX_WAITERS as u64 {
            let t = t.clone();
            tasks.push(tokio::spawn(async move {
                t.acquire(5, r("w", 10 + i, Kind::Write, 0, 0), true).await
            }));
        }
        while t.lock().get(&5).map(|f| f.waiting.len()) != Some(MAX_WAITERS) {
            tokio::task::yield_now().await;
        }
        let over = t.acquire(5, r("late", 1, Kind::Write, 0, 0), true).await;
        assert!(
            matches!(over, Outcome::TooMany),
            "one waiter too many is ENOLCK"
        );
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            let _ = task.await;
        }
        assert!(t.lock().get(&5).is_none_or(|f| f.waiting.is_empty()));
    }

    #[tokio::test]
    async fn an_abandoned_wait_leaves_the_queue() {
        let t = Arc::new(LockTable::default());
        assert!(granted(
            t.acquire(1, r("a", 1, Kind::Write, 0, 9), false).await
        ));
        let t2 = t.clone();
        let w =
            tokio::spawn(async move { t2.acquire(1, r("b", 1, Kind::Write, 0, 9), true).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        w.abort();
        let _ = w.await;
        t.release_session("a");
        // nobody is waiting any more: a later blocking request goes through
        let o = tokio::time::timeout(
            Duration::from_secs(2),
            t.acquire(1, r("c", 1, Kind::Write, 0, 9), true),
        )
        .await;
        assert!(matches!(o, Ok(Outcome::Granted)));
    }
}
