//! The change feed as rows: appended inside each change's transaction,
//! read by every server's tailer, trimmed to its newest entries.
//!
//! Readers follow the feed by position, so a position must never become
//! visible after a higher one. SQLite has one writer at a time; on
//! PostgreSQL an entry is appended under a transaction-scoped advisory lock
//! taken as the change's last step, which is released only once the
//! transaction is visible: positions become visible in order (and the
//! commits that append are serialised, as `NOTIFY` serialises them anyway).
//! A position of an aborted transaction is a hole, which is not a loss:
//! losses are only what `trim` dropped (`feed_trim.below`).

use super::{args, Arg, Conn, ConnExt, Dialect};
use crate::types::*;
use crate::{MetaError, Result};

/// The advisory lock key that orders feed appends on PostgreSQL ("svolfeed").
const FEED_LOCK: i64 = 0x7376_6f6c_6665_6564;

/// The notification channel a PostgreSQL append rings (a doorbell only:
/// the rows are the truth).
pub(crate) const FEED_CHANNEL: &str = feed_channel!();
macro_rules! feed_channel {
    () => {
        "svol_feed"
    };
}
use feed_channel;

/// Appends one entry to the change feed; returns its position.
pub(crate) fn append(c: &dyn Conn, e: &FeedEntry) -> Result<u64> {
    // On PostgreSQL the lock, the row and the doorbell are one statement:
    // one round trip, and the lock is taken as late as it can be.
    let sql = match c.dialect() {
        Dialect::Sqlite => {
            "INSERT INTO feed(volume, origin, inodes, entries, unlocked, deleted) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING seq"
        }
        Dialect::Postgres => concat!(
            "WITH ordered AS (SELECT pg_advisory_xact_lock(?7)), ",
            "rung AS (SELECT pg_notify('",
            feed_channel!(),
            "', '')) ",
            "INSERT INTO feed(volume, origin, inodes, entries, unlocked, deleted) ",
            "SELECT CAST(?1 AS BIGINT), CAST(?2 AS TEXT), CAST(?3 AS BYTEA), ",
            "CAST(?4 AS BYTEA), CAST(?5 AS BYTEA), CAST(?6 AS BIGINT) ",
            "FROM ordered, rung RETURNING seq"
        ),
    };
    let (inodes, entries, unlocked) = (
        encode_inos(&e.inodes),
        encode_entries(&e.entries),
        encode_inos(&e.unlocked),
    );
    let mut args = vec![
        Arg::Int(e.volume as i64),
        Arg::Text(&e.origin),
        Arg::Bytes(&inodes),
        Arg::Bytes(&entries),
        Arg::Bytes(&unlocked),
        Arg::Int(e.volume_deleted as i64),
    ];
    if c.dialect() == Dialect::Postgres {
        args.push(Arg::Int(FEED_LOCK));
    }
    let seq = c
        .int(sql, &args)?
        .ok_or_else(|| MetaError::Backend("feed insert returned no position".into()))?;
    Ok(seq as u64)
}

/// The newest position (kept, or trimmed) and the trim watermark (every
/// position up to it is gone), in one statement.
fn head_and_trimmed(c: &dyn Conn) -> Result<(u64, u64)> {
    let row = c.row(
        "SELECT CASE WHEN m > b THEN m ELSE b END, b FROM \
         (SELECT coalesce((SELECT max(seq) FROM feed), 0) AS m, \
          coalesce((SELECT below FROM feed_trim WHERE id = 1), 0) AS b) AS x",
        &[],
        |r| Ok((r.int(0)? as u64, r.int(1)? as u64)),
    )?;
    Ok(row.unwrap_or((0, 0)))
}

/// The newest position (kept, or trimmed).
pub(crate) fn head(c: &dyn Conn) -> Result<u64> {
    Ok(head_and_trimmed(c)?.0)
}

pub(crate) fn since(c: &dyn Conn, after: u64, limit: usize) -> Result<FeedPage> {
    let (head, trimmed) = head_and_trimmed(c)?;
    let entries = c.rows(
        "SELECT seq, volume, origin, inodes, entries, unlocked, deleted FROM feed \
         WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        args![after as i64, limit as i64],
        |r| {
            Ok(FeedEntry {
                seq: r.int(0)? as u64,
                volume: r.int(1)? as u64,
                origin: r.text(2)?,
                inodes: decode_inos(&r.bytes(3)?)?,
                entries: decode_entries(&r.bytes(4)?)?,
                unlocked: decode_inos(&r.bytes(5)?)?,
                volume_deleted: r.flag(6)?,
            })
        },
    )?;
    // Entries after `after` were lost if trimming took some of them. (Rows
    // of a deleted volume leave holes; nothing was lost there.)
    let gap = after < trimmed;
    Ok(FeedPage { entries, gap, head })
}

pub(crate) fn trim(c: &dyn Conn, keep: u64) -> Result<()> {
    let head = head(c)?;
    if head > keep {
        let below = (head - keep) as i64;
        c.exec("DELETE FROM feed WHERE seq <= ?1", args![below])?;
        c.exec(
            "UPDATE feed_trim SET below = ?1 WHERE id = 1 AND below < ?1",
            args![below],
        )?;
    }
    Ok(())
}

fn encode_inos(v: &[Ino]) -> Vec<u8> {
    v.iter().flat_map(|i| i.to_le_bytes()).collect()
}

fn decode_inos(b: &[u8]) -> Result<Vec<Ino>> {
    if b.len() % 8 != 0 {
        return Err(MetaError::Backend("corrupt feed entry".into()));
    }
    Ok(b.chunks_exact(8)
        .map(|c| {
            let mut a = [0u8; 8];
            a.copy_from_slice(c);
            u64::from_le_bytes(a)
        })
        .collect())
}

/// (parent u64, name length u16, name) per entry; names are at most 255.
fn encode_entries(v: &[(Ino, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (p, n) in v {
        out.extend_from_slice(&p.to_le_bytes());
        out.extend_from_slice(&(n.len() as u16).to_le_bytes());
        out.extend_from_slice(n);
    }
    out
}

fn decode_entries(mut b: &[u8]) -> Result<Vec<(Ino, Vec<u8>)>> {
    let bad = || MetaError::Backend("corrupt feed entry".into());
    let mut out = Vec::new();
    while !b.is_empty() {
        if b.len() < 10 {
            return Err(bad());
        }
        let mut p = [0u8; 8];
        p.copy_from_slice(&b[..8]);
        let n = u16::from_le_bytes([b[8], b[9]]) as usize;
        let name = b.get(10..10 + n).ok_or_else(bad)?.to_vec();
        out.push((u64::from_le_bytes(p), name));
        b = &b[10 + n..];
    }
    Ok(out)
}
