//! Row helpers shared by the SQL modules: reading attributes and chunk
//! maps, block hashes, and which workspace a volume or block belongs to.

use super::{args, Conn, ConnExt, Row};
use crate::types::*;
use crate::{MetaError, Result};

/// The columns `row_attr` reads, as a literal (statements on hot paths are
/// built with `concat!`, not formatted per call).
macro_rules! attr_cols {
    () => {
        "ino, kind, mode, uid, gid, nlink, size, atime_s, atime_ns, \
         mtime_s, mtime_ns, ctime_s, ctime_ns, rdev, version"
    };
}
pub(crate) use attr_cols;

// A block whose bytes are being deleted has a negative `pending_until`:
// minus the time (ms) it was marked. No commit may reference it, and no
// upload may write its bytes until its row is gone.

/// Reads an `Attr` from the 15 columns of `r` starting at `at`.
pub(crate) fn row_attr(r: &dyn Row, at: usize) -> Result<Attr> {
    let time = |i: usize| -> Result<Timespec> {
        Ok(Timespec {
            sec: r.int(at + i)?,
            nsec: r.int(at + i + 1)? as u32,
        })
    };
    Ok(Attr {
        ino: r.int(at)? as u64,
        kind: FileKind::from_i64(r.int(at + 1)?).unwrap_or(FileKind::Regular),
        mode: r.int(at + 2)? as u32,
        uid: r.int(at + 3)? as u32,
        gid: r.int(at + 4)? as u32,
        nlink: r.int(at + 5)? as u32,
        size: r.int(at + 6)? as u64,
        atime: time(7)?,
        mtime: time(9)?,
        ctime: time(11)?,
        rdev: r.int(at + 13)? as u32,
        version: r.int(at + 14)? as u64,
    })
}

/// The workspace a volume (by root inode) belongs to.
pub(crate) fn volume_workspace(c: &dyn Conn, vol: Ino) -> Result<WorkspaceId> {
    c.int(
        "SELECT workspace FROM volumes WHERE root = ?1",
        args![vol as i64],
    )?
    .ok_or_else(|| MetaError::NotFound(format!("volume of inode {vol}")))
}

pub(crate) fn to_hash(v: Vec<u8>) -> Result<BlockId> {
    v.try_into()
        .map_err(|_| MetaError::Backend("stored block hash is not 32 bytes".into()))
}

/// A chunk's data from its `hash` and `data` columns.
pub(crate) fn chunk_data(hash: Option<Vec<u8>>, data: Option<Vec<u8>>) -> Result<ChunkData> {
    Ok(match hash {
        Some(h) => ChunkData::Block(to_hash(h)?),
        None => ChunkData::Inline(data.unwrap_or_default()),
    })
}

pub(crate) fn chunks(c: &dyn Conn, ino: Ino) -> Result<Vec<Chunk>> {
    c.rows(
        "SELECT idx, len, hash, data FROM chunks WHERE ino = ?1 ORDER BY idx",
        args![ino as i64],
        |r| {
            Ok(Chunk {
                index: r.int(0)? as u64,
                len: r.int(1)? as u32,
                data: chunk_data(r.opt_bytes(2)?, r.opt_bytes(3)?)?,
            })
        },
    )
}

/// Does workspace `ws` hold this block (uploaded by it, not being deleted)?
pub(crate) fn block_visible(c: &dyn Conn, ws: WorkspaceId, hash: &BlockId) -> Result<bool> {
    c.any(
        "SELECT 1 FROM blocks WHERE workspace = ?1 AND hash = ?2 AND pending_until >= 0",
        args![ws, &hash[..]],
    )
}
