//! fcntl and flock locks in the database, so they hold across mounts and
//! servers and survive a server restart. A lock belongs to (session,
//! owner) and ends with its session. Waiters take tickets (rows of
//! `lock_waiters`) and are served in ticket order: a waiter may take its
//! lock only if no held lock and no earlier waiter conflicts with it, so a
//! stream of readers cannot starve a writer. Every write-lock grant takes
//! the next fencing token of the inode; the holder's writes present it.

use rusqlite::{params, Connection};

use super::{changes, rows};
use crate::types::*;
use crate::{MetaError, Result};

/// Locks held on one file at most; beyond, ENOLCK.
pub(crate) const MAX_RANGES: usize = 10_000;
/// Waiters on one file at most; beyond, ENOLCK.
pub(crate) const MAX_WAITERS: usize = 4_096;

// Offsets are stored as SQLite integers: "to the end of the file" is the
// kernel's OFFSET_MAX (i64::MAX), which a `u64::MAX` from the wire becomes;
// a lock reported back with an end past OFFSET_MAX is an EIO to the kernel.
fn to_db(v: u64) -> i64 {
    v.min(i64::MAX as u64) as i64
}

fn from_db(v: i64) -> u64 {
    v.max(0) as u64
}

fn kind_of(k: i64) -> LockKind {
    if k == 1 {
        LockKind::Write
    } else {
        LockKind::Read
    }
}

fn kind_db(k: LockKind) -> i64 {
    match k {
        LockKind::Read => 0,
        LockKind::Write => 1,
    }
}

struct Held {
    id: i64,
    range: LockRange,
    fence: u64,
}

fn held(c: &Connection, ino: Ino) -> Result<Vec<Held>> {
    let mut st = c.prepare_cached(
        "SELECT id, session, owner, kind, start, end_, pid, fence FROM locks WHERE ino = ?1",
    )?;
    let v = st
        .query_map(params![ino as i64], |r| {
            Ok(Held {
                id: r.get(0)?,
                range: LockRange {
                    session: r.get(1)?,
                    owner: r.get::<_, i64>(2)? as u64,
                    kind: kind_of(r.get(3)?),
                    start: from_db(r.get(4)?),
                    end: from_db(r.get(5)?),
                    pid: r.get::<_, i64>(6)? as u32,
                },
                fence: r.get::<_, i64>(7)? as u64,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(v)
}

/// F_GETLK: the first lock that would block `want`.
pub(crate) fn test(
    c: &Connection,
    vol: Ino,
    ino: Ino,
    want: &LockRange,
) -> Result<Option<LockRange>> {
    rows::attr(c, vol, ino)?;
    Ok(held(c, ino)?
        .into_iter()
        .map(|h| h.range)
        .find(|r| r.conflicts(want)))
}

/// Is an earlier waiter than `ticket` in the way of `want`?
fn queued_before(
    c: &Connection,
    ino: Ino,
    ticket: Option<u64>,
    want: &LockRange,
) -> Result<Option<LockRange>> {
    let before = ticket.map(|t| t as i64).unwrap_or(i64::MAX);
    let mut st = c.prepare_cached(
        "SELECT session, owner, kind, start, end_ FROM lock_waiters WHERE ino = ?1 AND ticket < ?2",
    )?;
    let waiting: Vec<LockRange> = st
        .query_map(params![ino as i64, before], |r| {
            Ok(LockRange {
                session: r.get(0)?,
                owner: r.get::<_, i64>(1)? as u64,
                kind: kind_of(r.get(2)?),
                start: from_db(r.get(3)?),
                end: from_db(r.get(4)?),
                pid: 0,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(waiting.into_iter().find(|w| w.conflicts(want)))
}

/// Takes a lock if nothing held conflicts (and, for a waiter with
/// `ticket`, or a blocking first try with `wait`, no earlier waiter
/// either). A try-lock that nothing held blocks is granted even if others
/// wait, as the kernel does for local files.
pub(crate) fn lock(
    c: &Connection,
    vol: Ino,
    ino: Ino,
    want: &LockRange,
    ticket: Option<u64>,
    wait: bool,
    cx: &Cx<'_>,
) -> Result<LockOutcome> {
    changes::check_lease(c, cx)?;
    let a = rows::attr(c, vol, ino)?;
    let locks = held(c, ino)?;
    if let Some(h) = locks.iter().find(|h| h.range.conflicts(want)) {
        return Ok(LockOutcome::Conflict(h.range.clone()));
    }
    if wait || ticket.is_some() {
        if let Some(w) = queued_before(c, ino, ticket, want)? {
            return Ok(LockOutcome::Conflict(w));
        }
    }
    cut(
        c,
        ino,
        &locks,
        &want.session,
        want.owner,
        want.start,
        want.end,
    )?;
    if locks.len() >= MAX_RANGES {
        return Ok(LockOutcome::TooMany);
    }
    let fence: i64 = match want.kind {
        LockKind::Write => c
            .prepare_cached(
                "INSERT INTO lock_fences(ino, fence) VALUES (?1, 1) \
                 ON CONFLICT(ino) DO UPDATE SET fence = fence + 1 RETURNING fence",
            )?
            .query_row(params![ino as i64], |r| r.get(0))?,
        LockKind::Read => 0,
    };
    c.prepare_cached(
        "INSERT INTO locks(ino, session, owner, kind, start, end_, pid, fence) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        ino as i64,
        want.session,
        want.owner as i64,
        kind_db(want.kind),
        to_db(want.start),
        to_db(want.end),
        want.pid as i64,
        fence
    ])?;
    if let Some(t) = ticket {
        c.prepare_cached("DELETE FROM lock_waiters WHERE ticket = ?1")?
            .execute(params![t as i64])?;
    }
    Ok(LockOutcome::Granted {
        fence: fence as u64,
        feed: changes::head(c)?,
        version: a.version,
    })
}

/// Removes `owner`'s locks on [start, end], keeping the parts outside
/// (which keep their fencing tokens: they are still the same grant).
#[allow(clippy::too_many_arguments)]
fn cut(
    c: &Connection,
    ino: Ino,
    locks: &[Held],
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
        c.prepare_cached("DELETE FROM locks WHERE id = ?1")?
            .execute(params![h.id])?;
        let mut keep = Vec::new();
        if r.start < start {
            keep.push((r.start, start - 1));
        }
        if r.end > end {
            keep.push((end + 1, r.end));
        }
        for (s, e) in keep {
            c.prepare_cached(
                "INSERT INTO locks(ino, session, owner, kind, start, end_, pid, fence) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                ino as i64,
                session,
                owner as i64,
                kind_db(r.kind),
                to_db(s),
                to_db(e),
                r.pid as i64,
                h.fence as i64
            ])?;
        }
    }
    Ok(any)
}

/// Unlocks [start, end] of `owner`'s locks; returns the newest fencing
/// token the session still holds on the file (0: none).
pub(crate) fn unlock(
    c: &Connection,
    vol: Ino,
    ino: Ino,
    session: &str,
    owner: u64,
    start: u64,
    end: u64,
) -> Result<(u64, bool)> {
    let _ = vol;
    let locks = held(c, ino)?;
    let any = cut(c, ino, &locks, session, owner, start, end)?;
    let fence: i64 = c
        .prepare_cached(
            "SELECT coalesce(max(fence), 0) FROM locks WHERE ino = ?1 AND session = ?2",
        )?
        .query_row(params![ino as i64, session], |r| r.get(0))?;
    Ok((fence as u64, any))
}

pub(crate) fn enqueue(
    c: &Connection,
    vol: Ino,
    ino: Ino,
    want: &LockRange,
    cx: &Cx<'_>,
) -> Result<u64> {
    changes::check_lease(c, cx)?;
    rows::attr(c, vol, ino)?;
    let n: i64 = c
        .prepare_cached("SELECT count(*) FROM lock_waiters WHERE ino = ?1")?
        .query_row(params![ino as i64], |r| r.get(0))?;
    if n as usize >= MAX_WAITERS {
        return Err(MetaError::NoLocks(format!(
            "more than {MAX_WAITERS} waiters on one file"
        )));
    }
    c.prepare_cached(
        "INSERT INTO lock_waiters(ino, session, owner, kind, start, end_) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        ino as i64,
        want.session,
        want.owner as i64,
        kind_db(want.kind),
        to_db(want.start),
        to_db(want.end)
    ])?;
    Ok(c.last_insert_rowid() as u64)
}

/// Takes a waiter out of the queue; returns the file it waited on.
pub(crate) fn dequeue(c: &Connection, ticket: u64) -> Result<Option<Ino>> {
    use rusqlite::OptionalExtension;
    let ino: Option<i64> = c
        .prepare_cached("DELETE FROM lock_waiters WHERE ticket = ?1 RETURNING ino")?
        .query_row(params![ticket as i64], |r| r.get(0))
        .optional()?;
    Ok(ino.map(|i| i as u64))
}

/// Drops every lock and wait of a session; returns the files concerned.
pub(crate) fn drop_session(c: &Connection, session: &str) -> Result<Vec<Ino>> {
    let mut inos: Vec<i64> = c
        .prepare_cached("DELETE FROM locks WHERE session = ?1 RETURNING ino")?
        .query_map(params![session], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let waits: Vec<i64> = c
        .prepare_cached("DELETE FROM lock_waiters WHERE session = ?1 RETURNING ino")?
        .query_map(params![session], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    inos.extend(waits);
    inos.sort_unstable();
    inos.dedup();
    Ok(inos.into_iter().map(|i| i as u64).collect())
}
