//! Creates a mount made ahead of the server, applied in one transaction.
//!
//! A mount that holds a directory (no other client may look into it until
//! the mount gives it back) creates there on its own: it answers its
//! application at once with an inode number its session reserved, and
//! sends the creates later, many per transaction. The rules are those of
//! `create`; what differs is that each create's own failure (a name taken
//! meanwhile by a client the hold did not stop, a number not reserved) is
//! that create's result, not the batch's.

use super::*;
use crate::MetaError;

/// One queued create; `touch` collects what it changed.
pub(crate) fn queued_create(
    t: &impl Tx,
    vol: Ino,
    session: &str,
    op: &QueuedCreate,
    touch: &mut Touch,
) -> Result<Attr> {
    if session.is_empty() || !t.take_reserved(session, op.ino)? {
        return Err(MetaError::InvalidArgument(format!(
            "inode number {} was not reserved by this session",
            op.ino
        )));
    }
    let a = create_as(
        t,
        vol,
        op.parent,
        &op.name,
        &op.node,
        true,
        op.now,
        Some(op.ino),
    )?;
    if op.open {
        t.add_open(session, a.ino)?;
    }
    touch.inodes.push(op.parent);
    touch.entries.push((op.parent, op.name.clone()));
    touch.fresh.push(a.ino);
    touch.known.push(a.clone());
    Ok(a)
}

/// Errors that end the whole batch (the store failed), as opposed to
/// one create's own refusal.
pub(crate) fn ends_batch(e: &MetaError) -> bool {
    matches!(e, MetaError::Backend(_) | MetaError::Fenced(_))
}
