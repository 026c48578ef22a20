//! Attributes: chmod, chown, utimes and truncate.

use super::refs::*;
use super::{InodeUpdate, Tx};
use crate::types::*;
use crate::{MetaError, Result};

pub(crate) fn setattr(
    t: &impl Tx,
    vol: Ino,
    ino: Ino,
    set: &SetAttr,
    now: Timespec,
) -> Result<Outcome<Attr>> {
    let a = attr(t, vol, ino)?;
    let mut freed = Vec::new();
    if let Some(size) = set.size.filter(|s| *s > MAX_FILE_SIZE) {
        return Err(MetaError::FileTooLarge(format!("size {size}")));
    }
    if set.size.is_some() {
        match a.kind {
            FileKind::Regular => {}
            FileKind::Directory => return Err(MetaError::IsDirectory),
            _ => {
                return Err(MetaError::InvalidArgument(
                    "truncate of a special file".into(),
                ))
            }
        }
    }
    let time = |t: Option<TimeSet>| {
        t.map(|t| match t {
            TimeSet::Now => now,
            TimeSet::At(ts) => ts,
        })
    };
    let mut u = InodeUpdate {
        mode: set.mode.map(|m| m & 0o7777),
        uid: set.uid,
        gid: set.gid,
        atime: time(set.atime),
        mtime: time(set.mtime),
        ..Default::default()
    };
    if let Some(size) = set.size {
        truncate(t, ino, size, &mut freed)?;
        u.size = Some(size);
        u.new_version = true;
        // An explicit mtime in the same call wins over the truncate's.
        u.mtime = u.mtime.or(Some(now));
    }
    let changed = set.mode.is_some()
        || set.uid.is_some()
        || set.gid.is_some()
        || set.size.is_some()
        || set.atime.is_some()
        || set.mtime.is_some();
    if changed {
        u.ctime = Some(now);
        t.update_inode(ino, &u)?;
    }
    Ok(Outcome::new(attr(t, vol, ino)?, freed))
}

/// Cuts the chunk map at `size`: whole chunks past it go, the chunk it falls
/// in is shortened (its block stays; bytes past `len` read as zeros).
pub(crate) fn truncate(t: &impl Tx, ino: Ino, size: u64, freed: &mut Freed) -> Result<()> {
    let first_gone = size.div_ceil(CHUNK_SIZE);
    drop_chunks_from(t, ino, first_gone, freed)?;
    if size % CHUNK_SIZE != 0 {
        let idx = size / CHUNK_SIZE;
        let keep = (size - idx * CHUNK_SIZE) as u32;
        t.shorten_chunk(ino, idx, keep)?;
    }
    Ok(())
}
