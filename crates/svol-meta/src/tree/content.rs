//! File contents (chunk maps, open files) and extended attributes.

use super::names::touch_ctime;
use super::refs::*;
use super::{InodeUpdate, Tx};
use crate::types::*;
use crate::{MetaError, Result};

/// Largest inline chunk accepted from a client.
pub(crate) const INLINE_LIMIT: usize = 64 << 10;

/// Registers an open by `session` ("" registers nothing) and returns the
/// file's chunk map.
pub(crate) fn open(t: &impl Tx, vol: Ino, session: &str, ino: Ino) -> Result<(Attr, Vec<Chunk>)> {
    let a = attr(t, vol, ino)?;
    if !session.is_empty() {
        t.add_open(session, ino)?;
    }
    let ch = if a.kind == FileKind::Regular {
        t.chunks(ino)?
    } else {
        vec![]
    };
    Ok((a, ch))
}

pub(crate) fn release(t: &impl Tx, vol: Ino, session: &str, ino: Ino) -> Result<Outcome<()>> {
    let mut freed = Vec::new();
    t.drop_open(session, ino)?;
    // The inode may already be gone (its volume deleted); that is fine.
    if t.attr(vol, ino)?.is_some() {
        destroy_if_unreachable(t, ino, &mut freed)?;
    }
    Ok(Outcome::new((), freed))
}

/// A commit's outcome, and whether it changed the file at all (an fsync of
/// a clean file does not: no news for other mounts).
pub(crate) struct Committed {
    pub out: Outcome<Attr>,
    pub changed: bool,
}

/// What privileges a commit takes from its file (see `attrs::setattr`).
pub(crate) struct Privs {
    /// Its capabilities (`security.capability`).
    pub caps: bool,
    /// Its set-ID bits (`without_suidgid`).
    pub suidgid: bool,
}

pub(crate) fn commit(
    t: &impl Tx,
    vol: Ino,
    ino: Ino,
    new: &[Chunk],
    write_end: u64,
    now: Timespec,
    privs: Privs,
) -> Result<Committed> {
    let a = attr(t, vol, ino)?;
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
    let ws = t.volume_workspace(vol)?;
    t.check_commit_quota(vol, ino, new)?;
    let mut freed = Vec::new();
    let mut end = write_end;
    for ch in new {
        if ch.len as u64 > CHUNK_SIZE || ch.index > (i64::MAX as u64) / CHUNK_SIZE - 1 {
            return Err(MetaError::InvalidArgument(format!(
                "chunk {} out of range",
                ch.index
            )));
        }
        match &ch.data {
            ChunkData::Block(h) => incref(t, ws, h)?,
            ChunkData::Inline(d) => {
                if d.len() > INLINE_LIMIT || d.len() != ch.len as usize {
                    return Err(MetaError::TooBig(format!(
                        "inline chunk of {} bytes",
                        d.len()
                    )));
                }
            }
        }
        if let Some(Chunk {
            data: ChunkData::Block(old),
            ..
        }) = t.chunk(ino, ch.index)?
        {
            decref(t, ws, &old, 1, &mut freed)?;
        }
        t.put_chunk(ino, ch)?;
        end = end.max(ch.index * CHUNK_SIZE + ch.len as u64);
    }
    if new.is_empty() && end <= a.size {
        // Nothing to change: an fsync of a clean file. The transaction still
        // commits (durably, if asked), which is all such a call needs.
        return Ok(Committed {
            out: Outcome::new(a, freed),
            changed: false,
        });
    }
    if privs.caps {
        // New contents lose the file's capabilities (see attrs::setattr).
        t.delete_xattr(ino, super::attrs::SECURITY_CAPABILITY)?;
    }
    let mode = a.mode & 0o7777;
    // A commit never shrinks a file: truncation is an explicit setattr.
    t.update_inode(
        ino,
        &InodeUpdate {
            mode: (privs.suidgid && super::attrs::without_suidgid(mode) != mode)
                .then(|| super::attrs::without_suidgid(mode)),
            size: Some(a.size.max(end)),
            mtime: Some(now),
            ctime: Some(now),
            new_version: true,
            ..Default::default()
        },
    )?;
    Ok(Committed {
        out: Outcome::new(attr(t, vol, ino)?, freed),
        changed: true,
    })
}

pub(crate) fn get_xattr(t: &impl Tx, vol: Ino, ino: Ino, name: &[u8]) -> Result<Vec<u8>> {
    attr(t, vol, ino)?;
    t.xattr(ino, name)?.ok_or(MetaError::NoData)
}

pub(crate) fn set_xattr(
    t: &impl Tx,
    vol: Ino,
    ino: Ino,
    name: &[u8],
    value: &[u8],
    mode: XattrMode,
    now: Timespec,
) -> Result<()> {
    attr(t, vol, ino)?;
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
    let exists = t.xattr(ino, name)?.is_some();
    match (mode, exists) {
        (XattrMode::Create, true) => {
            return Err(MetaError::AlreadyExists(
                String::from_utf8_lossy(name).into_owned(),
            ))
        }
        (XattrMode::Replace, false) => return Err(MetaError::NoData),
        _ => {}
    }
    t.put_xattr(ino, name, value)?;
    touch_ctime(t, ino, now)
}

pub(crate) fn list_xattr(t: &impl Tx, vol: Ino, ino: Ino) -> Result<Vec<Vec<u8>>> {
    attr(t, vol, ino)?;
    t.xattr_names(ino)
}

pub(crate) fn remove_xattr(
    t: &impl Tx,
    vol: Ino,
    ino: Ino,
    name: &[u8],
    now: Timespec,
) -> Result<()> {
    attr(t, vol, ino)?;
    if !t.delete_xattr(ino, name)? {
        return Err(MetaError::NoData);
    }
    touch_ctime(t, ino, now)
}
