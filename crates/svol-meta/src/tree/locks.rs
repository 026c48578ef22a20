//! fcntl and flock locks: conflicts, the fair queue of waiters, ranges cut
//! by partial unlocks, and fencing tokens. A lock belongs to (session,
//! owner) and ends with its session. A waiter may take its lock only if no
//! held lock and no earlier waiter conflicts with it, so a stream of
//! readers cannot starve a writer. Every write-lock grant takes the next
//! fencing token of the inode; the holder's writes present it.

use super::changes::check_lease;
use super::refs::attr;
use super::{HeldLock, Tx};
use crate::types::*;
use crate::{MetaError, Result};

/// Locks held on one file at most; beyond, ENOLCK.
pub(crate) const MAX_RANGES: usize = 10_000;
/// Waiters on one file at most; beyond, ENOLCK.
pub(crate) const MAX_WAITERS: usize = 4_096;

/// "To the end of the file" as the kernel says it (OFFSET_MAX); a lock
/// reported back with an end past it is an EIO to the kernel.
const OFFSET_MAX: u64 = i64::MAX as u64;

/// F_GETLK: the first lock that would block `want`.
pub(crate) fn test(t: &impl Tx, vol: Ino, ino: Ino, want: &LockRange) -> Result<Option<LockRange>> {
    attr(t, vol, ino)?;
    Ok(t.locks_on(ino)?
        .into_iter()
        .map(|h| h.range)
        .find(|r| r.conflicts(want)))
}

/// Takes a lock if nothing held conflicts (and, for a waiter with
/// `ticket`, or a blocking first try with `wait`, no earlier waiter
/// either). A try-lock that nothing held blocks is granted even if others
/// wait, as the kernel does for local files.
pub(crate) fn lock(
    t: &impl Tx,
    vol: Ino,
    ino: Ino,
    want: &LockRange,
    ticket: Option<u64>,
    wait: bool,
    cx: &Cx<'_>,
) -> Result<LockOutcome> {
    check_lease(t, cx)?;
    let a = attr(t, vol, ino)?;
    let want = &LockRange {
        start: want.start.min(OFFSET_MAX),
        end: want.end.min(OFFSET_MAX),
        ..want.clone()
    };
    let locks = t.locks_on(ino)?;
    if let Some(h) = locks.iter().find(|h| h.range.conflicts(want)) {
        return Ok(LockOutcome::Conflict(h.range.clone()));
    }
    if wait || ticket.is_some() {
        let earlier = t.waiters_before(ino, ticket)?;
        if let Some(w) = earlier.into_iter().find(|w| w.conflicts(want)) {
            return Ok(LockOutcome::Conflict(w));
        }
    }
    if locks.len() >= MAX_RANGES {
        return Ok(LockOutcome::TooMany);
    }
    cut(
        t,
        ino,
        &locks,
        &want.session,
        want.owner,
        want.start,
        want.end,
    )?;
    let fence = match want.kind {
        LockKind::Write => t.next_fence(ino)?,
        LockKind::Read => 0,
    };
    t.insert_lock(ino, want, fence)?;
    if let Some(ticket) = ticket {
        t.delete_waiter(ticket)?;
    }
    Ok(LockOutcome::Granted {
        fence,
        feed: t.feed_head()?,
        version: a.version,
    })
}

/// Removes `owner`'s locks on [start, end], keeping the parts outside
/// (which keep their fencing tokens: they are still the same grant).
/// Returns whether anything was removed.
fn cut(
    t: &impl Tx,
    ino: Ino,
    locks: &[HeldLock],
    session: &str,
    owner: u64,
    start: u64,
    end: u64,
) -> Result<bool> {
    let mut any = false;
    for h in locks {
        let r = &h.range;
        if r.session != session || r.owner != owner || !r.overlaps(start, end) {
            continue;
        }
        any = true;
        t.delete_lock(h.id)?;
        if r.start < start {
            let before = LockRange {
                end: start - 1,
                ..r.clone()
            };
            t.insert_lock(ino, &before, h.fence)?;
        }
        if r.end > end {
            let after = LockRange {
                start: end + 1,
                ..r.clone()
            };
            t.insert_lock(ino, &after, h.fence)?;
        }
    }
    Ok(any)
}

/// Unlocks [start, end] of `owner`'s locks. Returns the newest fencing
/// token the session still holds on the file (0: none) and whether any
/// lock went (then waiters must be woken).
pub(crate) fn unlock(
    t: &impl Tx,
    ino: Ino,
    session: &str,
    owner: u64,
    start: u64,
    end: u64,
) -> Result<(u64, bool)> {
    let locks = t.locks_on(ino)?;
    let any = cut(t, ino, &locks, session, owner, start, end)?;
    let fence = t
        .locks_on(ino)?
        .iter()
        .filter(|h| h.range.session == session)
        .map(|h| h.fence)
        .max()
        .unwrap_or(0);
    Ok((fence, any))
}

/// Joins the queue of waiters on `ino`.
pub(crate) fn enqueue(
    t: &impl Tx,
    vol: Ino,
    ino: Ino,
    want: &LockRange,
    cx: &Cx<'_>,
) -> Result<u64> {
    check_lease(t, cx)?;
    attr(t, vol, ino)?;
    if t.count_waiters(ino)? >= MAX_WAITERS {
        return Err(MetaError::NoLocks(format!(
            "more than {MAX_WAITERS} waiters on one file"
        )));
    }
    t.insert_waiter(ino, want)
}
