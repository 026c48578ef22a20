//! The change feed as rows: appended inside each change's transaction,
//! read by every server's tailer, trimmed to its newest entries.

use rusqlite::{params, Connection, OptionalExtension};

use crate::types::*;
use crate::{MetaError, Result};

/// Appends one entry to the change feed; returns its position.
pub(crate) fn append(c: &Connection, e: &FeedEntry) -> Result<u64> {
    c.prepare_cached(
        "INSERT INTO feed(volume, origin, inodes, entries, unlocked, deleted) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        e.volume as i64,
        e.origin,
        encode_inos(&e.inodes),
        encode_entries(&e.entries),
        encode_inos(&e.unlocked),
        e.volume_deleted
    ])?;
    Ok(c.last_insert_rowid() as u64)
}

pub(crate) fn head(c: &Connection) -> Result<u64> {
    // AUTOINCREMENT keeps the highest position ever given, even when the
    // entries themselves were trimmed.
    let h: Option<i64> = c
        .prepare_cached("SELECT seq FROM sqlite_sequence WHERE name = 'feed'")?
        .query_row([], |r| r.get(0))
        .optional()?;
    Ok(h.unwrap_or(0) as u64)
}

pub(crate) fn since(c: &Connection, after: u64, limit: usize) -> Result<FeedPage> {
    let head = head(c)?;
    let mut st = c.prepare_cached(
        "SELECT seq, volume, origin, inodes, entries, unlocked, deleted FROM feed \
         WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )?;
    let rows = st.query_map(params![after as i64, limit as i64], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, Vec<u8>>(3)?,
            r.get::<_, Vec<u8>>(4)?,
            r.get::<_, Vec<u8>>(5)?,
            r.get::<_, bool>(6)?,
        ))
    })?;
    let mut entries = Vec::new();
    for row in rows {
        let (seq, volume, origin, inodes, ents, unlocked, deleted) = row?;
        entries.push(FeedEntry {
            seq: seq as u64,
            volume: volume as u64,
            origin,
            inodes: decode_inos(&inodes)?,
            entries: decode_entries(&ents)?,
            unlocked: decode_inos(&unlocked)?,
            volume_deleted: deleted,
        });
    }
    // Trimming takes the oldest rows: entries after `after` were lost if
    // the oldest kept one is further on. (Rows of a deleted volume leave
    // holes in the middle; nothing was lost there.)
    let oldest: Option<i64> = c
        .prepare_cached("SELECT min(seq) FROM feed")?
        .query_row([], |r| r.get(0))?;
    let gap = after < head && oldest.is_none_or(|o| o as u64 > after + 1);
    Ok(FeedPage { entries, gap, head })
}

pub(crate) fn trim(c: &Connection, keep: u64) -> Result<()> {
    let head = head(c)?;
    if head > keep {
        c.prepare_cached("DELETE FROM feed WHERE seq <= ?1")?
            .execute(params![(head - keep) as i64])?;
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
