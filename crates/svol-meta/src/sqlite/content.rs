//! File contents (chunk maps, opens), xattrs, sessions and block counts.

use rusqlite::{params, Connection, OptionalExtension};

use super::rows::*;
use crate::types::*;
use crate::{MetaError, Result};

/// Largest inline chunk accepted from a client.
pub(crate) const INLINE_LIMIT: usize = 64 << 10;

pub(crate) fn open(
    c: &Connection,
    vol: Ino,
    session: &str,
    ino: Ino,
) -> Result<(Attr, Vec<Chunk>)> {
    let a = attr(c, vol, ino)?;
    if !session.is_empty() {
        c.prepare_cached(
            "INSERT INTO opens(session, ino, count) VALUES (?1, ?2, 1) \
             ON CONFLICT(session, ino) DO UPDATE SET count = count + 1",
        )?
        .execute(params![session, ino as i64])?;
    }
    let ch = if a.kind == FileKind::Regular {
        chunks(c, ino)?
    } else {
        vec![]
    };
    Ok((a, ch))
}

pub(crate) fn release(c: &Connection, vol: Ino, session: &str, ino: Ino) -> Result<Outcome<()>> {
    let mut freed = Vec::new();
    let left: Option<i64> = c
        .prepare_cached(
            "UPDATE opens SET count = count - 1 WHERE session = ?1 AND ino = ?2 RETURNING count",
        )?
        .query_row(params![session, ino as i64], |r| r.get(0))
        .optional()?;
    if let Some(n) = left {
        if n <= 0 {
            c.prepare_cached("DELETE FROM opens WHERE session = ?1 AND ino = ?2")?
                .execute(params![session, ino as i64])?;
        }
    }
    // The inode may already be gone (its volume deleted); that is fine.
    if attr(c, vol, ino).is_ok() {
        destroy_if_unreachable(c, ino, &mut freed)?;
    }
    Ok(Outcome::new((), freed))
}

pub(crate) fn commit(
    c: &Connection,
    vol: Ino,
    ino: Ino,
    new: &[Chunk],
    write_end: u64,
    now: Timespec,
) -> Result<Outcome<Attr>> {
    let a = attr(c, vol, ino)?;
    if a.kind != FileKind::Regular {
        return Err(MetaError::InvalidArgument(
            "write to a non-regular file".into(),
        ));
    }
    if write_end > MAX_FILE_SIZE {
        return Err(MetaError::FileTooLarge(format!(
            "write up to byte {write_end} is past the largest file size"
        )));
    }
    let ws = volume_workspace(c, vol)?;
    let mut freed = Vec::new();
    let mut end = write_end;
    for ch in new {
        if ch.len as u64 > CHUNK_SIZE || ch.index > (i64::MAX as u64) / CHUNK_SIZE - 1 {
            return Err(MetaError::InvalidArgument(format!(
                "chunk {} out of range",
                ch.index
            )));
        }
        let (hash, data): (Option<&[u8]>, Option<&[u8]>) = match &ch.data {
            ChunkData::Block(h) => {
                incref(c, ws, h)?;
                (Some(&h[..]), None)
            }
            ChunkData::Inline(d) => {
                if d.len() > INLINE_LIMIT || d.len() != ch.len as usize {
                    return Err(MetaError::TooBig(format!(
                        "inline chunk of {} bytes",
                        d.len()
                    )));
                }
                (None, Some(&d[..]))
            }
        };
        let old: Option<Option<Vec<u8>>> = c
            .prepare_cached("SELECT hash FROM chunks WHERE ino = ?1 AND idx = ?2")?
            .query_row(params![ino as i64, ch.index as i64], |r| r.get(0))
            .optional()?;
        if let Some(Some(h)) = old {
            decref(c, ws, &to_hash(h)?, 1, &mut freed)?;
        }
        c.prepare_cached(
            "INSERT OR REPLACE INTO chunks(ino, idx, len, hash, data) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            ino as i64,
            ch.index as i64,
            ch.len as i64,
            hash,
            data
        ])?;
        end = end.max(ch.index * CHUNK_SIZE + ch.len as u64);
    }
    if new.is_empty() && end <= a.size {
        // Nothing to change: an fsync of a clean file. The transaction still
        // commits (durably, if asked), which is all such a call needs.
        return Ok(Outcome::new(a, freed));
    }
    // A commit never shrinks a file: truncation is an explicit setattr.
    let size = a.size.max(end);
    c.prepare_cached(
        "UPDATE inodes SET size = ?2, version = version + 1, mtime_s = ?3, mtime_ns = ?4, \
         ctime_s = ?3, ctime_ns = ?4 WHERE ino = ?1",
    )?
    .execute(params![ino as i64, size as i64, now.sec, now.nsec as i64])?;
    Ok(Outcome::new(attr(c, vol, ino)?, freed))
}

pub(crate) fn get_xattr(c: &Connection, vol: Ino, ino: Ino, name: &[u8]) -> Result<Vec<u8>> {
    attr(c, vol, ino)?;
    c.prepare_cached("SELECT value FROM xattrs WHERE ino = ?1 AND name = ?2")?
        .query_row(params![ino as i64, name], |r| r.get(0))
        .optional()?
        .ok_or(MetaError::NoData)
}

pub(crate) fn set_xattr(
    c: &Connection,
    vol: Ino,
    ino: Ino,
    name: &[u8],
    value: &[u8],
    mode: XattrMode,
    now: Timespec,
) -> Result<()> {
    attr(c, vol, ino)?;
    if name.is_empty() || name.len() > XATTR_NAME_MAX {
        return Err(if name.is_empty() {
            MetaError::InvalidArgument("empty xattr name".into())
        } else {
            MetaError::NameTooLong
        });
    }
    if value.len() > XATTR_VALUE_MAX {
        return Err(MetaError::TooBig(format!(
            "xattr value of {} bytes",
            value.len()
        )));
    }
    let exists = get_xattr(c, vol, ino, name).is_ok();
    match (mode, exists) {
        (XattrMode::Create, true) => {
            return Err(MetaError::AlreadyExists(
                String::from_utf8_lossy(name).into_owned(),
            ))
        }
        (XattrMode::Replace, false) => return Err(MetaError::NoData),
        _ => {}
    }
    c.prepare_cached("INSERT OR REPLACE INTO xattrs(ino, name, value) VALUES (?1, ?2, ?3)")?
        .execute(params![ino as i64, name, value])?;
    touch_ctime(c, ino, now)
}

pub(crate) fn list_xattr(c: &Connection, vol: Ino, ino: Ino) -> Result<Vec<Vec<u8>>> {
    attr(c, vol, ino)?;
    let mut st = c.prepare_cached("SELECT name FROM xattrs WHERE ino = ?1 ORDER BY name")?;
    let v = st
        .query_map(params![ino as i64], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(v)
}

pub(crate) fn remove_xattr(
    c: &Connection,
    vol: Ino,
    ino: Ino,
    name: &[u8],
    now: Timespec,
) -> Result<()> {
    attr(c, vol, ino)?;
    let n = c
        .prepare_cached("DELETE FROM xattrs WHERE ino = ?1 AND name = ?2")?
        .execute(params![ino as i64, name])?;
    if n == 0 {
        return Err(MetaError::NoData);
    }
    touch_ctime(c, ino, now)
}

/// Does workspace `ws` hold this block (uploaded by it, not being deleted)?
pub(crate) fn block_visible(c: &Connection, ws: WorkspaceId, hash: &BlockId) -> Result<bool> {
    Ok(c.prepare_cached(
        "SELECT 1 FROM blocks WHERE workspace = ?1 AND hash = ?2 AND pending_until <> ?3",
    )?
    .query_row(params![ws, &hash[..], DELETING], |_| Ok(()))
    .optional()?
    .is_some())
}
