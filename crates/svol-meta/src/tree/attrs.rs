//! Attributes: chmod, chown, utimes and truncate.

use super::refs::*;
use super::{InodeUpdate, Tx};
use crate::types::*;
use crate::{MetaError, Result};

const S_ISUID: u32 = 0o4000;
const S_ISGID: u32 = 0o2000;
const S_IXGRP: u32 = 0o010;
/// The extended attribute holding a file's capabilities.
pub(crate) const SECURITY_CAPABILITY: &[u8] = b"security.capability";

/// What is left of `mode` when a writer may not keep set-ID bits: no
/// S_ISUID, and no S_ISGID on a group-executable file (without group
/// execute it marks mandatory locking, not privilege).
pub(crate) fn without_suidgid(mode: u32) -> u32 {
    mode & !(S_ISUID | if mode & S_IXGRP != 0 { S_ISGID } else { 0 })
}

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
    let mut mode = set.mode.map(|m| m & 0o7777);
    if set.kill_suidgid && a.kind != FileKind::Directory {
        let m = mode.unwrap_or(a.mode & 0o7777);
        if without_suidgid(m) != m || mode.is_some() {
            mode = Some(without_suidgid(m));
        }
    }
    // A file's capabilities do not survive a change of its contents or
    // owner (as the kernel has it for local file systems, which it leaves
    // to us: see the mount's HANDLE_KILLPRIV_V2).
    if a.kind != FileKind::Directory
        && (set.size.is_some() || set.uid.is_some() || set.gid.is_some())
    {
        t.delete_xattr(ino, SECURITY_CAPABILITY)?;
    }
    let mut u = InodeUpdate {
        mode,
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
    let changed = mode.is_some()
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
