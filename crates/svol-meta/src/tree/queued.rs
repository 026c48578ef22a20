//! What a mount did ahead of the server, applied in one transaction.
//!
//! A mount that holds a directory (no other client may look into it until
//! the mount gives it back) creates there on its own: it answers its
//! application at once with an inode number its session reserved, and
//! sends the creates later, many per transaction — with what it then did
//! to those new nodes while nobody else could see them (the contents a
//! close committed, attributes set), and the names it removed or moved
//! there. The rules are those of `create`, `commit`, `setattr`, `unlink`
//! and `rename`; what differs is that each operation's own
//! failure (a name taken meanwhile by a client the hold did not stop, a
//! number not reserved) is that operation's result, not the batch's.

use super::*;
use crate::MetaError;

/// One queued operation; `touch` collects what it changed, `freed` the
/// blocks it let go.
pub(crate) fn queued(
    t: &impl Tx,
    vol: Ino,
    cx: &Cx<'_>,
    op: &Queued,
    touch: &mut Touch,
    freed: &mut Freed,
) -> Result<Attr> {
    match op {
        Queued::Create(c) => queued_create(t, vol, cx.session, c, touch),
        Queued::Commit {
            ino,
            chunks,
            write_end,
            now,
            kill_suidgid,
        } => {
            check_fence(t, cx, *ino)?;
            // Only nodes made ahead are queued, and such a node has no
            // extended attributes (setting one ends its being made ahead).
            let privs = Privs {
                caps: false,
                suidgid: *kill_suidgid,
            };
            let done = commit(t, vol, *ino, chunks, *write_end, *now, privs)?;
            freed.extend(done.out.changes.freed);
            if done.changed {
                touch.inodes.push(*ino);
                touch.known.push(done.out.value.clone());
                touch.contents_of(t, &done.out.value)?;
            }
            Ok(done.out.value)
        }
        Queued::SetAttr { ino, set, now } => {
            if set.size.is_some() {
                return Err(MetaError::InvalidArgument(
                    "a truncate cannot be queued".into(),
                ));
            }
            let out = setattr(t, vol, *ino, set, *now)?;
            freed.extend(out.changes.freed);
            touch.inodes.push(*ino);
            if out.value.kind != FileKind::Directory {
                touch.known.push(out.value.clone());
            }
            Ok(out.value)
        }
        Queued::Unlink {
            parent,
            name,
            ino,
            now,
        } => {
            still_names(t, *parent, name, Some(*ino))?;
            let before = attr(t, vol, *ino)?;
            let out = unlink(t, vol, *parent, name, false, *now)?;
            freed.extend(out.changes.freed);
            touch.inodes.extend([*parent, *ino]);
            touch.entries.push((*parent, name.clone()));
            now_known(t, vol, before, touch)
        }
        Queued::Rename {
            parent,
            name,
            new_parent,
            new_name,
            ino,
            replaced,
            now,
        } => {
            still_names(t, *parent, name, Some(*ino))?;
            still_names(t, *new_parent, new_name, *replaced)?;
            let before = attr(t, vol, *ino)?;
            if before.kind == FileKind::Directory {
                return Err(MetaError::InvalidArgument(
                    "a directory's rename cannot be queued".into(),
                ));
            }
            let replaced_before = match replaced {
                Some(r) => Some(attr(t, vol, *r)?),
                None => None,
            };
            let flags = RenameFlags {
                noreplace: replaced.is_none(),
                exchange: false,
            };
            let out = rename(t, vol, *parent, name, *new_parent, new_name, flags, *now)?;
            freed.extend(out.changes.freed);
            touch.inodes.extend([*parent, *new_parent, *ino]);
            touch.inodes.extend(out.value.replaced);
            touch.entries.push((*parent, name.clone()));
            touch.entries.push((*new_parent, new_name.clone()));
            if let Some(r) = replaced_before {
                now_known(t, vol, r, touch)?;
            }
            now_known(t, vol, before, touch)
        }
    }
}

/// A queued removal or move is refused unless `name` in `dir` still names
/// what the mount's listing said it did when it answered (`None`: no
/// entry): a client the hold did not stop may have changed it since.
fn still_names(t: &impl Tx, dir: Ino, name: &[u8], want: Option<Ino>) -> Result<()> {
    let now = t.child(dir, name)?;
    if now == want {
        return Ok(());
    }
    let name = String::from_utf8_lossy(name);
    Err(match want {
        Some(ino) => MetaError::NotFound(format!("{name} no longer names inode {ino}")),
        None => MetaError::AlreadyExists(name.into_owned()),
    })
}

/// An inode's attributes after a queued op changed it (`before`: as the
/// op found them), for the change set: they replace what an earlier op of
/// the batch left; an inode the op destroyed has none and goes out as
/// gone. Returns them, or `before` unlinked if it is gone (the op's own
/// result).
fn now_known(t: &impl Tx, vol: Ino, before: Attr, touch: &mut Touch) -> Result<Attr> {
    touch.known.retain(|a| a.ino != before.ino);
    match t.attr(vol, before.ino)? {
        Some(a) => {
            touch.known.push(a.clone());
            Ok(a)
        }
        None => Ok(Attr { nlink: 0, ..before }),
    }
}

/// One queued create.
fn queued_create(
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
    // A directory's attributes move on with the creates in it later in
    // the batch: read at the end instead (here and in `SetAttr`). A
    // file's change only by later operations that say what they left.
    if a.kind != FileKind::Directory {
        touch.known.push(a.clone());
    }
    Ok(a)
}

/// Errors that end the whole batch (the store failed), as opposed to
/// one create's own refusal.
pub(crate) fn ends_batch(e: &MetaError) -> bool {
    matches!(e, MetaError::Backend(_) | MetaError::Fenced(_))
}
