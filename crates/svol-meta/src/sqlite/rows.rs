//! Row helpers shared by the operations: reading attributes, link counts,
//! block reference counts, and destroying inodes nobody can reach.

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::types::*;
use crate::{MetaError, Result};

pub(crate) const ATTR_COLS: &str = "ino, kind, mode, uid, gid, nlink, size, atime_s, atime_ns, \
     mtime_s, mtime_ns, ctime_s, ctime_ns, rdev, version";

/// Reads an `Attr` from the first 15 columns of `r` starting at `at`.
pub(crate) fn row_attr(r: &Row<'_>, at: usize) -> rusqlite::Result<Attr> {
    let kind: i64 = r.get(at + 1)?;
    Ok(Attr {
        ino: r.get::<_, i64>(at)? as u64,
        kind: FileKind::from_i64(kind).unwrap_or(FileKind::Regular),
        mode: r.get::<_, i64>(at + 2)? as u32,
        uid: r.get::<_, i64>(at + 3)? as u32,
        gid: r.get::<_, i64>(at + 4)? as u32,
        nlink: r.get::<_, i64>(at + 5)? as u32,
        size: r.get::<_, i64>(at + 6)? as u64,
        atime: Timespec {
            sec: r.get(at + 7)?,
            nsec: r.get::<_, i64>(at + 8)? as u32,
        },
        mtime: Timespec {
            sec: r.get(at + 9)?,
            nsec: r.get::<_, i64>(at + 10)? as u32,
        },
        ctime: Timespec {
            sec: r.get(at + 11)?,
            nsec: r.get::<_, i64>(at + 12)? as u32,
        },
        rdev: r.get::<_, i64>(at + 13)? as u32,
        version: r.get::<_, i64>(at + 14)? as u64,
    })
}

pub(crate) fn attr(c: &Connection, vol: Ino, ino: Ino) -> Result<Attr> {
    c.prepare_cached(&format!(
        "SELECT {ATTR_COLS} FROM inodes WHERE ino = ?1 AND volume = ?2"
    ))?
    .query_row(params![ino as i64, vol as i64], |r| row_attr(r, 0))
    .optional()?
    .ok_or_else(|| MetaError::NotFound(format!("inode {ino}")))
}

pub(crate) fn dir(c: &Connection, vol: Ino, ino: Ino) -> Result<Attr> {
    let a = attr(c, vol, ino)?;
    if a.kind != FileKind::Directory {
        return Err(MetaError::NotDirectory);
    }
    Ok(a)
}

pub(crate) fn child(c: &Connection, parent: Ino, name: &[u8]) -> Result<Option<Ino>> {
    Ok(
        c.prepare_cached("SELECT ino FROM dentries WHERE parent = ?1 AND name = ?2")?
            .query_row(params![parent as i64, name], |r| r.get::<_, i64>(0))
            .optional()?
            .map(|i| i as u64),
    )
}

pub(crate) fn touch_dir(c: &Connection, dir: Ino, now: Timespec) -> Result<()> {
    c.prepare_cached(
        "UPDATE inodes SET mtime_s = ?2, mtime_ns = ?3, ctime_s = ?2, ctime_ns = ?3 WHERE ino = ?1",
    )?
    .execute(params![dir as i64, now.sec, now.nsec as i64])?;
    Ok(())
}

pub(crate) fn touch_ctime(c: &Connection, ino: Ino, now: Timespec) -> Result<()> {
    c.prepare_cached("UPDATE inodes SET ctime_s = ?2, ctime_ns = ?3 WHERE ino = ?1")?
        .execute(params![ino as i64, now.sec, now.nsec as i64])?;
    Ok(())
}

pub(crate) fn add_nlink(c: &Connection, ino: Ino, delta: i64) -> Result<()> {
    c.prepare_cached("UPDATE inodes SET nlink = max(nlink + ?2, 0) WHERE ino = ?1")?
        .execute(params![ino as i64, delta])?;
    Ok(())
}

pub(crate) fn insert_dentry(c: &Connection, parent: Ino, name: &[u8], ino: Ino) -> Result<()> {
    c.prepare_cached("INSERT INTO dentries(parent, name, ino) VALUES (?1, ?2, ?3)")?
        .execute(params![parent as i64, name, ino as i64])?;
    Ok(())
}

pub(crate) fn delete_dentry(c: &Connection, parent: Ino, name: &[u8]) -> Result<()> {
    c.prepare_cached("DELETE FROM dentries WHERE parent = ?1 AND name = ?2")?
        .execute(params![parent as i64, name])?;
    Ok(())
}

pub(crate) fn is_empty_dir(c: &Connection, ino: Ino) -> Result<bool> {
    Ok(
        c.prepare_cached("SELECT 1 FROM dentries WHERE parent = ?1 LIMIT 1")?
            .query_row(params![ino as i64], |_| Ok(()))
            .optional()?
            .is_none(),
    )
}

/// The directory holding `dir` (None for a volume root).
pub(crate) fn parent_of(c: &Connection, dir: Ino) -> Result<Option<Ino>> {
    Ok(
        c.prepare_cached("SELECT parent FROM dentries WHERE ino = ?1 LIMIT 1")?
            .query_row(params![dir as i64], |r| r.get::<_, i64>(0))
            .optional()?
            .map(|i| i as u64),
    )
}

/// Is `ino` the directory `anc` or below it?
pub(crate) fn is_within(c: &Connection, mut ino: Ino, anc: Ino) -> Result<bool> {
    loop {
        if ino == anc {
            return Ok(true);
        }
        match parent_of(c, ino)? {
            Some(p) => ino = p,
            None => return Ok(false),
        }
    }
}

/// `pending_until` of a block whose bytes are being deleted: no commit may
/// reference it any more.
pub(crate) const DELETING: i64 = -1;

/// The workspace a volume (by root inode) belongs to.
pub(crate) fn volume_workspace(c: &Connection, vol: Ino) -> Result<WorkspaceId> {
    c.prepare_cached("SELECT workspace FROM volumes WHERE root = ?1")?
        .query_row(params![vol as i64], |r| r.get(0))
        .optional()?
        .ok_or_else(|| MetaError::NotFound(format!("volume of inode {vol}")))
}

/// The workspace an inode's blocks belong to.
fn inode_workspace(c: &Connection, ino: Ino) -> Result<WorkspaceId> {
    c.prepare_cached(
        "SELECT v.workspace FROM inodes i JOIN volumes v ON v.root = i.volume WHERE i.ino = ?1",
    )?
    .query_row(params![ino as i64], |r| r.get(0))
    .optional()?
    .ok_or_else(|| MetaError::NotFound(format!("inode {ino}")))
}

/// Adds a reference to a block of workspace `ws`. A block the workspace
/// never uploaded is `MissingBlock`, whoever else may hold the same hash.
pub(crate) fn incref(c: &Connection, ws: WorkspaceId, hash: &BlockId) -> Result<()> {
    let n = c
        .prepare_cached(
            "UPDATE blocks SET refs = refs + 1 \
             WHERE workspace = ?1 AND hash = ?2 AND pending_until <> ?3",
        )?
        .execute(params![ws, &hash[..], DELETING])?;
    if n == 0 {
        return Err(MetaError::MissingBlock(*hash));
    }
    Ok(())
}

/// Drops references; records the block in `freed` when none remain.
pub(crate) fn decref(
    c: &Connection,
    ws: WorkspaceId,
    hash: &BlockId,
    by: i64,
    freed: &mut Freed,
) -> Result<()> {
    let refs: Option<i64> = c
        .prepare_cached(
            "UPDATE blocks SET refs = refs - ?3 WHERE workspace = ?1 AND hash = ?2 RETURNING refs",
        )?
        .query_row(params![ws, &hash[..], by], |r| r.get(0))
        .optional()?;
    if let Some(r) = refs {
        if r <= 0 {
            c.prepare_cached(
                "UPDATE blocks SET pending_until = 0 WHERE workspace = ?1 AND hash = ?2",
            )?
            .execute(params![ws, &hash[..]])?;
            freed.push(BlockRef {
                workspace: ws,
                hash: *hash,
            });
        }
    }
    Ok(())
}

pub(crate) fn to_hash(v: Vec<u8>) -> Result<BlockId> {
    v.try_into()
        .map_err(|_| MetaError::Backend("stored block hash is not 32 bytes".into()))
}

/// Deletes `ino` with its chunks and xattrs if no name and no open file
/// refers to it any more.
pub(crate) fn destroy_if_unreachable(c: &Connection, ino: Ino, freed: &mut Freed) -> Result<()> {
    let nlink: Option<i64> = c
        .prepare_cached("SELECT nlink FROM inodes WHERE ino = ?1")?
        .query_row(params![ino as i64], |r| r.get(0))
        .optional()?;
    match nlink {
        Some(0) => {}
        _ => return Ok(()),
    }
    let open = c
        .prepare_cached("SELECT 1 FROM opens WHERE ino = ?1 LIMIT 1")?
        .query_row(params![ino as i64], |_| Ok(()))
        .optional()?
        .is_some();
    if open {
        return Ok(());
    }
    drop_chunks_from(c, ino, 0, freed)?;
    c.prepare_cached("DELETE FROM xattrs WHERE ino = ?1")?
        .execute(params![ino as i64])?;
    c.prepare_cached("DELETE FROM inodes WHERE ino = ?1")?
        .execute(params![ino as i64])?;
    Ok(())
}

/// Deletes chunks with index >= `first`, releasing their blocks.
pub(crate) fn drop_chunks_from(
    c: &Connection,
    ino: Ino,
    first: u64,
    freed: &mut Freed,
) -> Result<()> {
    let ws = inode_workspace(c, ino)?;
    let hashes: Vec<Vec<u8>> = c
        .prepare_cached(
            "SELECT hash FROM chunks WHERE ino = ?1 AND idx >= ?2 AND hash IS NOT NULL",
        )?
        .query_map(params![ino as i64, first as i64], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for h in hashes {
        decref(c, ws, &to_hash(h)?, 1, freed)?;
    }
    c.prepare_cached("DELETE FROM chunks WHERE ino = ?1 AND idx >= ?2")?
        .execute(params![ino as i64, first as i64])?;
    Ok(())
}

pub(crate) fn chunks(c: &Connection, ino: Ino) -> Result<Vec<Chunk>> {
    let mut st =
        c.prepare_cached("SELECT idx, len, hash, data FROM chunks WHERE ino = ?1 ORDER BY idx")?;
    let rows = st.query_map(params![ino as i64], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, Option<Vec<u8>>>(2)?,
            r.get::<_, Option<Vec<u8>>>(3)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (idx, len, hash, data) = row?;
        let data = match hash {
            Some(h) => ChunkData::Block(to_hash(h)?),
            None => ChunkData::Inline(data.unwrap_or_default()),
        };
        out.push(Chunk {
            index: idx as u64,
            len: len as u32,
            data,
        });
    }
    Ok(out)
}
