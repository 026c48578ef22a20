//! fcntl and flock locks: the lock manager in front of the locks the
//! metadata store keeps (see `svol_meta`'s lock operations). A lock belongs
//! to (session, owner) — `owner` is the kernel's lock owner on that mount
//! (a process's POSIX locks, or one open file description's flock) — and
//! ends with its session: on unmount, on lease expiry (a crashed or frozen
//! client), on token revocation. Locks live in the database, so they
//! outlast a restart of the server and are the same for every server.
//!
//! A blocked request queues (a ticket in the database, so the order is
//! fair across servers) and sleeps until the feed says the file's locks
//! changed; no polling. Each write-lock grant carries a fencing token the
//! holder presents when it writes the file, checked in the write's own
//! transaction. No deadlock detection (EDEADLK): two clients waiting on
//! each other wait until one gives up.

use std::time::Duration;

use svol_meta::{Ino, LockKind, LockOutcome, LockRange};
use svol_proto as p;
use tonic::{Request, Status};

use crate::service::State;

/// Takes a waiter out of the queue however its call ends (the client went
/// away and the call was dropped, or an error).
struct Queued {
    state: State,
    vol: Ino,
    ino: Ino,
    ticket: Option<u64>,
}

impl Drop for Queued {
    fn drop(&mut self) {
        self.state.feed.done_waiting(self.ino);
        if let Some(t) = self.ticket.take() {
            let (st, vol) = (self.state.clone(), self.vol);
            tokio::spawn(async move {
                match st.meta(|m| m.unqueue_lock(vol, t)).await {
                    Ok(()) => st.feed.ring(),
                    Err(e) => tracing::warn!("leaving a lock queue: {e}"),
                }
            });
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
                    .meta(|m| m.unlock(vol, ino, &c.session, r.owner, r.start, r.end))
                    .await?;
                self.publish(&c.session, &out.changes);
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
            return Ok(match self.meta(|m| m.test_lock(vol, ino, &want)).await? {
                Some(c) => conflict(c),
                None => p::LockReply {
                    granted: true,
                    ..Default::default()
                },
            });
        }
        let first = self
            .meta(|m| m.lock(vol, ino, &want, None, r.wait, &self.cx(&c)))
            .await?;
        let outcome = match first {
            LockOutcome::Conflict(_) if r.wait => self.wait_for(&c, ino, &want).await?,
            o => o,
        };
        match outcome {
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

    /// Queues for `want` and sleeps until the feed says the file's locks
    /// changed, then tries again in ticket order.
    async fn wait_for(
        &self,
        c: &crate::auth::Caller,
        ino: Ino,
        want: &LockRange,
    ) -> Result<LockOutcome, Status> {
        let vol = c.vol;
        let wake = self.feed.waiter(ino);
        let ticket = self
            .meta(|m| m.queue_lock(vol, ino, want, &self.cx(c)))
            .await?;
        let mut q = Queued {
            state: self.clone(),
            vol,
            ino,
            ticket: Some(ticket),
        };
        loop {
            let changed = wake.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            match self
                .meta(|m| m.lock(vol, ino, want, Some(ticket), true, &self.cx(c)))
                .await?
            {
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
