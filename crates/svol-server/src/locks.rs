//! fcntl and flock locks: the lock manager in front of the locks the
//! metadata store keeps (see `svol_meta`'s lock operations). A lock belongs
//! to (session, owner) — `owner` is the kernel's lock owner on that mount
//! (a process's POSIX locks, or one open file description's flock) — and
//! ends with its session: on unmount, on lease expiry (a crashed or frozen
//! client), on token revocation. Locks live in the database, so they
//! outlast a restart of the server and are the same for every server.
//!
//! `LockManager` is the seam: a blocked request queues (a ticket in the
//! database, so the order is fair across servers) and sleeps until the feed
//! says the file's locks changed; no polling. Each write-lock grant carries a fencing token the
//! holder presents when it writes the file, checked in the write's own
//! transaction. No deadlock detection (EDEADLK): two clients waiting on
//! each other wait until one gives up.

use std::sync::Arc;
use std::time::Duration;

use svol_meta::{self as m, Cx, Ino, LockKind, LockOutcome, LockRange, MetaStore};
use svol_proto as p;
use tonic::{Request, Status};

use crate::clock::Clock;
use crate::feed::Feed;
use crate::service::State;

/// Takes, tests and releases locks in the metadata store, and waits for
/// blocked ones. It keeps no lock state of its own: any server's manager
/// over the same store sees the same locks and the same queue.
#[derive(Clone)]
pub(crate) struct LockManager {
    meta: MetaStore,
    feed: Arc<Feed>,
    clock: Arc<dyn Clock>,
}

/// Takes a waiter out of the queue however its call ends (the client went
/// away and the call was dropped, or an error).
struct Queued {
    locks: LockManager,
    vol: Ino,
    ino: Ino,
    ticket: Option<u64>,
}

impl Drop for Queued {
    fn drop(&mut self) {
        self.locks.feed.done_waiting(self.ino);
        if let Some(t) = self.ticket.take() {
            let (locks, vol, ino) = (self.locks.clone(), self.vol, self.ino);
            tokio::spawn(async move {
                match locks.run(|m| m.unqueue_lock(vol, t)) {
                    // Those queued behind may go first now (on other
                    // servers the feed entry wakes them).
                    Ok(()) => locks.feed.wake(ino),
                    Err(e) => tracing::warn!("leaving a lock queue: {e}"),
                }
            });
        }
    }
}

impl LockManager {
    pub(crate) fn new(meta: MetaStore, feed: Arc<Feed>, clock: Arc<dyn Clock>) -> Self {
        Self { meta, feed, clock }
    }

    fn run<T>(&self, f: impl FnOnce(&MetaStore) -> m::Result<T>) -> Result<T, Status> {
        crate::service::run_meta(&self.meta, f)
    }

    /// F_GETLK: the first lock that would block `want`.
    pub(crate) fn test(
        &self,
        vol: Ino,
        ino: Ino,
        want: &LockRange,
    ) -> Result<Option<LockRange>, Status> {
        self.run(|m| m.test_lock(vol, ino, want))
    }

    /// Unlocks a range; the value is the newest fencing token the session
    /// still holds on the file.
    pub(crate) fn release(
        &self,
        vol: Ino,
        ino: Ino,
        session: &str,
        owner: u64,
        start: u64,
        end: u64,
    ) -> Result<m::Outcome<u64>, Status> {
        self.run(|m| m.unlock(vol, ino, session, owner, start, end))
    }

    /// Takes `want`, or (with `wait`) queues for it and sleeps until the
    /// feed says the file's locks changed, then tries again in ticket
    /// order. The session's lease is checked in each try's transaction.
    pub(crate) async fn acquire(
        &self,
        vol: Ino,
        ino: Ino,
        want: &LockRange,
        wait: bool,
    ) -> Result<LockOutcome, Status> {
        let cx = |clock: &dyn Clock| Cx::by(clock.now(), &want.session);
        let first = self.run(|m| m.lock(vol, ino, want, None, wait, &cx(&*self.clock)))?;
        if !wait || !matches!(first, LockOutcome::Conflict(_)) {
            return Ok(first);
        }
        let wake = self.feed.waiter(ino);
        let ticket = self.run(|m| m.queue_lock(vol, ino, want, &cx(&*self.clock)))?;
        let mut q = Queued {
            locks: self.clone(),
            vol,
            ino,
            ticket: Some(ticket),
        };
        loop {
            let changed = wake.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            match self.run(|m| m.lock(vol, ino, want, Some(ticket), true, &cx(&*self.clock)))? {
                LockOutcome::Conflict(_) => changed.await,
                o => {
                    if matches!(o, LockOutcome::Granted { .. }) {
                        // The grant took the ticket out of the queue.
                        q.ticket = None;
                    }
                    return Ok(o);
                }
            }
        }
    }
}

fn no_locks(e: impl std::fmt::Display) -> Status {
    let mut s = Status::resource_exhausted(e.to_string());
    if let Ok(v) = "ENOLCK".parse() {
        s.metadata_mut().insert(p::ERRNO_HEADER, v);
    }
    s
}

fn conflict(c: LockRange) -> p::LockReply {
    p::LockReply {
        granted: false,
        kind: match c.kind {
            LockKind::Read => p::LockKind::Read as i32,
            LockKind::Write => p::LockKind::Write as i32,
        },
        start: c.start,
        end: c.end,
        pid: c.pid,
        ..Default::default()
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
        if r.start > r.end {
            return Err(Status::invalid_argument("lock range ends before it starts"));
        }
        let (vol, ino) = (c.vol, r.ino);
        let kind = match p::LockKind::try_from(r.kind) {
            Ok(p::LockKind::Read) => LockKind::Read,
            Ok(p::LockKind::Write) => LockKind::Write,
            Ok(p::LockKind::Unlock) => {
                let out = self
                    .locks
                    .release(vol, ino, &c.session, r.owner, r.start, r.end)?;
                let _ = self.publish(&c.session, &out.changes);
                return Ok(p::LockReply {
                    granted: true,
                    fence: out.value,
                    ..Default::default()
                });
            }
            Err(_) => return Err(Status::invalid_argument("unknown lock kind")),
        };
        let want = LockRange {
            session: c.session.clone(),
            owner: r.owner,
            kind,
            start: r.start,
            end: r.end,
            pid: r.pid,
        };
        if r.test {
            return Ok(match self.locks.test(vol, ino, &want)? {
                Some(c) => conflict(c),
                None => p::LockReply {
                    granted: true,
                    ..Default::default()
                },
            });
        }
        match self.locks.acquire(vol, ino, &want, r.wait).await? {
            LockOutcome::Granted {
                fence,
                feed,
                version,
            } => {
                // What the last holder wrote is committed (clients commit
                // before they unlock) and in the feed before `feed`: push
                // it to this session first, then tell the client how many
                // invalidations to apply before it lets the locker read.
                self.feed.caught_up(feed, Duration::from_secs(2)).await;
                Ok(p::LockReply {
                    granted: true,
                    version,
                    invalidation_seq: self.sessions.seq(&c.session),
                    fence,
                    ..Default::default()
                })
            }
            LockOutcome::Conflict(c) => Ok(conflict(c)),
            LockOutcome::TooMany => Err(no_locks("too many lock ranges on one file")),
        }
    }
}
