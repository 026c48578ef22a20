//! Recalls: a mount may keep a directory's whole listing and answer "no
//! such name" from it, if the server watches that listing for it (see
//! `ReadDirRequest.watch`). A change to the names of a watched directory
//! made by anyone else then waits, before it returns, until that mount
//! says it dropped the listing (`Recalled`); the watch ends with the
//! recall. So a name created on one mount is never answered "absent" on
//! another after the creator's call returned — the promise the kernel's
//! own caches cannot keep, which is why a mount gives the kernel no
//! negative entries.
//!
//! A mount answers `Recalled` from its stream task, before the kernel is
//! told anything, so a recall never waits on the kernel (whose locks a
//! request of that mount, itself waiting on this server, may hold). A
//! mount that does not answer — frozen, or cut off — is waited for at most
//! a lease: by then its lease has run out unless renewed after it got the
//! recall, and it trusts no listing without a lease. A mount whose stream
//! is gone is not waited for: it dropped its listings when the stream
//! broke.
//!
//! Only a server alone on its store watches: the sessions of other servers
//! learn changes from the feed, which nothing here waits for.

use std::time::Duration;

use tokio::sync::watch;

/// One session's recall a change waits for.
pub(crate) struct Recall {
    session: String,
    done: watch::Receiver<u64>,
    seq: u64,
}

impl Recall {
    /// The recall carried by invalidation `seq` of a session (shown as
    /// `session` in logs), done once `done` reaches `seq`.
    pub(crate) fn new(session: String, done: watch::Receiver<u64>, seq: u64) -> Self {
        Self { session, done, seq }
    }
}

/// Waits until every recall is done, or `limit` has passed.
pub(crate) async fn wait(recalls: Vec<Recall>, limit: Duration) {
    if recalls.is_empty() {
        return;
    }
    let deadline = tokio::time::Instant::now() + limit;
    for mut r in recalls {
        let seq = r.seq;
        // A sender dropped (the session reattached or ended) is done too.
        let done = tokio::time::timeout_at(deadline, r.done.wait_for(|v| *v >= seq)).await;
        if done.is_err() {
            tracing::warn!(session = %r.session, "a mount did not give back a directory listing within its lease; going on without it");
        }
    }
}
