//! Row helpers shared by the SQLite modules: reading attributes and chunk
//! maps, block hashes, and which workspace a volume or block belongs to.

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::types::*;
use crate::{MetaError, Result};

pub(crate) const ATTR_COLS: &str = "ino, kind, mode, uid, gid, nlink, size, atime_s, atime_ns, \
     mtime_s, mtime_ns, ctime_s, ctime_ns, rdev, version";

/// `pending_until` of a block whose bytes are being deleted: no commit may
/// reference it any more.
pub(crate) const DELETING: i64 = -1;

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

/// The workspace a volume (by root inode) belongs to.
pub(crate) fn volume_workspace(c: &Connection, vol: Ino) -> Result<WorkspaceId> {
    c.prepare_cached("SELECT workspace FROM volumes WHERE root = ?1")?
        .query_row(params![vol as i64], |r| r.get(0))
        .optional()?
        .ok_or_else(|| MetaError::NotFound(format!("volume of inode {vol}")))
}

pub(crate) fn to_hash(v: Vec<u8>) -> Result<BlockId> {
    v.try_into()
        .map_err(|_| MetaError::Backend("stored block hash is not 32 bytes".into()))
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

/// Does workspace `ws` hold this block (uploaded by it, not being deleted)?
pub(crate) fn block_visible(c: &Connection, ws: WorkspaceId, hash: &BlockId) -> Result<bool> {
    Ok(c.prepare_cached(
        "SELECT 1 FROM blocks WHERE workspace = ?1 AND hash = ?2 AND pending_until <> ?3",
    )?
    .query_row(params![ws, &hash[..], DELETING], |_| Ok(()))
    .optional()?
    .is_some())
}
