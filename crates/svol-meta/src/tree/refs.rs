//! Block references and the end of an inode: a block is counted once per
//! chunk that names it; an inode is destroyed when no name and no open file
//! refers to it, and its blocks' references go with it.

use super::Tx;
use crate::types::*;
use crate::{MetaError, Result};

/// Adds a reference to a block of workspace `ws`. A block the workspace
/// never uploaded is `MissingBlock`, whoever else may hold the same hash.
pub(crate) fn incref(t: &impl Tx, ws: WorkspaceId, hash: &BlockId) -> Result<()> {
    if !t.add_block_refs(ws, hash, 1)? {
        return Err(MetaError::MissingBlock(*hash));
    }
    Ok(())
}

/// Drops references; records the block in `freed` when none remain.
pub(crate) fn decref(
    t: &impl Tx,
    ws: WorkspaceId,
    hash: &BlockId,
    by: i64,
    freed: &mut Freed,
) -> Result<()> {
    if t.drop_block_refs(ws, hash, by)? {
        freed.push(BlockRef {
            workspace: ws,
            hash: *hash,
        });
    }
    Ok(())
}

/// Deletes chunks with index >= `first`, releasing their blocks.
pub(crate) fn drop_chunks_from(t: &impl Tx, ino: Ino, first: u64, freed: &mut Freed) -> Result<()> {
    let ws = t.inode_workspace(ino)?;
    for h in t.remove_chunks_from(ino, first)? {
        decref(t, ws, &h, 1, freed)?;
    }
    Ok(())
}

/// Deletes `ino` with its chunks and xattrs if no name, no open file and
/// no volume trash refers to it any more.
pub(crate) fn destroy_if_unreachable(t: &impl Tx, ino: Ino, freed: &mut Freed) -> Result<()> {
    if t.nlink(ino)? != Some(0) || t.is_open(ino)? || t.is_trashed(ino)? {
        return Ok(());
    }
    drop_chunks_from(t, ino, 0, freed)?;
    t.delete_inode(ino)
}

/// The inode `ino` of volume `vol`, or `NotFound`.
pub(crate) fn attr(t: &impl Tx, vol: Ino, ino: Ino) -> Result<Attr> {
    t.attr(vol, ino)?
        .ok_or_else(|| MetaError::NotFound(format!("inode {ino}")))
}

/// The directory `ino` of volume `vol`.
pub(crate) fn dir(t: &impl Tx, vol: Ino, ino: Ino) -> Result<Attr> {
    let a = attr(t, vol, ino)?;
    if a.kind != FileKind::Directory {
        return Err(MetaError::NotDirectory);
    }
    Ok(a)
}

/// Is `ino` the directory `anc` or below it?
pub(crate) fn is_within(t: &impl Tx, mut ino: Ino, anc: Ino) -> Result<bool> {
    loop {
        if ino == anc {
            return Ok(true);
        }
        match t.parent_of(ino)? {
            Some(p) => ino = p,
            None => return Ok(false),
        }
    }
}
