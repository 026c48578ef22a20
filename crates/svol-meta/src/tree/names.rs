//! Names and links: lookup, create, link, unlink, rename, listing, copy.
//! What may replace what, link counts and directory times are decided here.

use super::refs::*;
use super::{InodeUpdate, Nlink, Tx};
use crate::types::*;
use crate::{MetaError, Result};

const S_ISGID: u32 = 0o2000;
const LINK_MAX: u32 = 65_000;

fn not_found(name: &[u8]) -> MetaError {
    MetaError::NotFound(String::from_utf8_lossy(name).into_owned())
}

fn exists(name: &[u8]) -> MetaError {
    MetaError::AlreadyExists(String::from_utf8_lossy(name).into_owned())
}

pub(crate) fn touch_dir(t: &impl Tx, dir: Ino, now: Timespec) -> Result<()> {
    t.update_inode(
        dir,
        &InodeUpdate {
            mtime: Some(now),
            ctime: Some(now),
            ..Default::default()
        },
    )
}

pub(crate) fn touch_ctime(t: &impl Tx, ino: Ino, now: Timespec) -> Result<()> {
    t.update_inode(
        ino,
        &InodeUpdate {
            ctime: Some(now),
            ..Default::default()
        },
    )
}

fn add_nlink(t: &impl Tx, ino: Ino, delta: i64) -> Result<()> {
    t.update_inode(
        ino,
        &InodeUpdate {
            nlink: Some(Nlink::Add(delta)),
            ..Default::default()
        },
    )
}

fn zero_nlink(t: &impl Tx, ino: Ino) -> Result<()> {
    t.update_inode(
        ino,
        &InodeUpdate {
            nlink: Some(Nlink::Set(0)),
            ..Default::default()
        },
    )
}

pub(crate) fn lookup(t: &impl Tx, vol: Ino, parent: Ino, name: &[u8]) -> Result<Attr> {
    dir(t, vol, parent)?;
    if name.len() > NAME_MAX {
        return Err(MetaError::NameTooLong);
    }
    let ino = t.child(parent, name)?.ok_or_else(|| not_found(name))?;
    attr(t, vol, ino)
}

pub(crate) fn create(
    t: &impl Tx,
    vol: Ino,
    parent: Ino,
    name: &[u8],
    node: &NewNode,
    exclusive: bool,
    now: Timespec,
) -> Result<Attr> {
    create_as(t, vol, parent, name, node, exclusive, now, None)
}

/// `create`, as inode `ino` when given (one a mount reserved and already
/// handed to its application; see `MetaBackend::apply`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn create_as(
    t: &impl Tx,
    vol: Ino,
    parent: Ino,
    name: &[u8],
    node: &NewNode,
    exclusive: bool,
    now: Timespec,
    ino: Option<Ino>,
) -> Result<Attr> {
    check_name(name)?;
    let p = dir(t, vol, parent)?;
    if let Some(existing) = t.child(parent, name)? {
        let a = attr(t, vol, existing)?;
        if !exclusive && node.kind == FileKind::Regular && a.kind == FileKind::Regular {
            return Ok(a);
        }
        return Err(exists(name));
    }
    if node.kind == FileKind::Symlink && (node.target.is_empty() || node.target.len() > SYMLINK_MAX)
    {
        return Err(if node.target.is_empty() {
            MetaError::InvalidArgument("empty symlink target".into())
        } else {
            MetaError::NameTooLong
        });
    }
    let is_dir = node.kind == FileKind::Directory;
    if is_dir && p.nlink >= LINK_MAX {
        return Err(MetaError::TooManyLinks);
    }
    let mut n = node.clone();
    if p.mode & S_ISGID != 0 {
        n.gid = p.gid;
        if is_dir {
            n.mode |= S_ISGID;
        }
    }
    let ino = t.insert_inode(vol, &n, if is_dir { 2 } else { 1 }, now, ino)?;
    t.insert_entry(parent, name, ino)?;
    t.update_inode(
        parent,
        &InodeUpdate {
            nlink: is_dir.then_some(Nlink::Add(1)),
            mtime: Some(now),
            ctime: Some(now),
            ..Default::default()
        },
    )?;
    attr(t, vol, ino)
}

pub(crate) fn link(
    t: &impl Tx,
    vol: Ino,
    ino: Ino,
    new_parent: Ino,
    new_name: &[u8],
    now: Timespec,
) -> Result<Attr> {
    check_name(new_name)?;
    let a = attr(t, vol, ino)?;
    if a.kind == FileKind::Directory {
        return Err(MetaError::PermissionDenied(
            "hard link to a directory".into(),
        ));
    }
    if a.nlink == 0 {
        return Err(MetaError::NotFound(format!("inode {ino} has no name")));
    }
    if a.nlink >= LINK_MAX {
        return Err(MetaError::TooManyLinks);
    }
    dir(t, vol, new_parent)?;
    if t.child(new_parent, new_name)?.is_some() {
        return Err(exists(new_name));
    }
    t.insert_entry(new_parent, new_name, ino)?;
    t.update_inode(
        ino,
        &InodeUpdate {
            nlink: Some(Nlink::Add(1)),
            ctime: Some(now),
            ..Default::default()
        },
    )?;
    touch_dir(t, new_parent, now)?;
    attr(t, vol, ino)
}

pub(crate) fn unlink(
    t: &impl Tx,
    vol: Ino,
    parent: Ino,
    name: &[u8],
    directory: bool,
    now: Timespec,
) -> Result<Outcome<Ino>> {
    dir(t, vol, parent)?;
    let ino = t.child(parent, name)?.ok_or_else(|| not_found(name))?;
    let a = attr(t, vol, ino)?;
    let mut freed = Vec::new();
    match (directory, a.kind == FileKind::Directory) {
        (true, false) => return Err(MetaError::NotDirectory),
        (false, true) => return Err(MetaError::IsDirectory),
        (true, true) => {
            if t.has_entries(ino)? {
                return Err(MetaError::NotEmpty);
            }
            t.delete_entry(parent, name)?;
            add_nlink(t, parent, -1)?;
            zero_nlink(t, ino)?;
        }
        (false, false) => {
            t.delete_entry(parent, name)?;
            t.update_inode(
                ino,
                &InodeUpdate {
                    nlink: Some(Nlink::Add(-1)),
                    ctime: Some(now),
                    ..Default::default()
                },
            )?;
            super::keep_if_trashed(t, vol, parent, name, ino, now)?;
        }
    }
    touch_dir(t, parent, now)?;
    destroy_if_unreachable(t, ino, &mut freed)?;
    Ok(Outcome::new(ino, freed))
}

/// What a rename did: the inode it replaced, the one it moved, and (for
/// an exchange) the one moved the other way.
#[derive(Debug, Default)]
pub(crate) struct Renamed {
    pub replaced: Option<Ino>,
    pub moved: Option<Ino>,
    pub swapped: Option<Ino>,
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn rename(
    t: &impl Tx,
    vol: Ino,
    parent: Ino,
    name: &[u8],
    new_parent: Ino,
    new_name: &[u8],
    flags: RenameFlags,
    now: Timespec,
) -> Result<Outcome<Renamed>> {
    check_name(new_name)?;
    if flags.exchange && flags.noreplace {
        return Err(MetaError::InvalidArgument(
            "RENAME_EXCHANGE with RENAME_NOREPLACE".into(),
        ));
    }
    dir(t, vol, parent)?;
    dir(t, vol, new_parent)?;
    let src = t.child(parent, name)?.ok_or_else(|| not_found(name))?;
    let sa = attr(t, vol, src)?;
    let dst = t.child(new_parent, new_name)?;
    let src_dir = sa.kind == FileKind::Directory;
    let mut freed = Vec::new();

    if flags.exchange {
        let dst = dst.ok_or_else(|| not_found(new_name))?;
        let da = attr(t, vol, dst)?;
        let dst_dir = da.kind == FileKind::Directory;
        if (src_dir && is_within(t, new_parent, src)?) || (dst_dir && is_within(t, parent, dst)?) {
            return Err(MetaError::InvalidArgument(
                "cannot move a directory below itself".into(),
            ));
        }
        t.repoint_entry(parent, name, dst)?;
        t.repoint_entry(new_parent, new_name, src)?;
        if parent != new_parent && src_dir != dst_dir {
            let d = if src_dir { 1 } else { -1 };
            add_nlink(t, new_parent, d)?;
            add_nlink(t, parent, -d)?;
        }
        touch_ctime(t, src, now)?;
        touch_ctime(t, dst, now)?;
        touch_dir(t, parent, now)?;
        touch_dir(t, new_parent, now)?;
        let done = Renamed {
            replaced: None,
            moved: Some(src),
            swapped: Some(dst),
        };
        return Ok(Outcome::new(done, freed));
    }

    if let Some(d) = dst {
        if d == src {
            // Two names of one inode: POSIX says do nothing.
            return Ok(Outcome::new(Renamed::default(), freed));
        }
        if flags.noreplace {
            return Err(exists(new_name));
        }
    }
    if src_dir && is_within(t, new_parent, src)? {
        return Err(MetaError::InvalidArgument(
            "cannot move a directory below itself".into(),
        ));
    }
    let mut replaced = None;
    if let Some(d) = dst {
        let da = attr(t, vol, d)?;
        let dst_dir = da.kind == FileKind::Directory;
        match (src_dir, dst_dir) {
            (true, false) => return Err(MetaError::NotDirectory),
            (false, true) => return Err(MetaError::IsDirectory),
            (true, true) => {
                if t.has_entries(d)? {
                    return Err(MetaError::NotEmpty);
                }
                zero_nlink(t, d)?;
                add_nlink(t, new_parent, -1)?;
            }
            (false, false) => {
                t.update_inode(
                    d,
                    &InodeUpdate {
                        nlink: Some(Nlink::Add(-1)),
                        ctime: Some(now),
                        ..Default::default()
                    },
                )?;
                // Its path, read before the entry is repointed.
                super::keep_if_trashed(t, vol, new_parent, new_name, d, now)?;
            }
        }
        t.delete_entry(new_parent, new_name)?;
        replaced = Some(d);
    }
    t.move_entry(parent, name, new_parent, new_name)?;
    if src_dir && parent != new_parent {
        add_nlink(t, parent, -1)?;
        add_nlink(t, new_parent, 1)?;
    }
    touch_ctime(t, src, now)?;
    touch_dir(t, parent, now)?;
    touch_dir(t, new_parent, now)?;
    if let Some(d) = replaced {
        destroy_if_unreachable(t, d, &mut freed)?;
    }
    let done = Renamed {
        replaced,
        moved: Some(src),
        swapped: None,
    };
    Ok(Outcome::new(done, freed))
}

pub(crate) fn readdir(
    t: &impl Tx,
    vol: Ino,
    d: Ino,
    after: u64,
    limit: usize,
) -> Result<Vec<DirEntry>> {
    dir(t, vol, d)?;
    t.entries(d, after, limit)
}

pub(crate) fn readlink(t: &impl Tx, vol: Ino, ino: Ino) -> Result<Vec<u8>> {
    let a = attr(t, vol, ino)?;
    if a.kind != FileKind::Symlink {
        return Err(MetaError::InvalidArgument("not a symlink".into()));
    }
    t.symlink_target(ino)
}

pub(crate) fn resolve(t: &impl Tx, vol: Ino, path: &str) -> Result<Attr> {
    let mut cur = attr(t, vol, vol)?;
    for part in path.split('/').filter(|p| !p.is_empty() && *p != ".") {
        if part == ".." {
            return Err(MetaError::InvalidArgument(format!(
                "path {path:?} contains '..'"
            )));
        }
        cur = lookup(t, vol, cur.ino, part.as_bytes())?;
    }
    Ok(cur)
}

/// Most entries one `copy` may create (one transaction).
pub(crate) const COPY_LIMIT: usize = 250_000;

pub(crate) fn copy(
    t: &impl Tx,
    vol: Ino,
    src: Ino,
    dst_parent: Ino,
    dst_name: &[u8],
    now: Timespec,
) -> Result<Attr> {
    check_name(dst_name)?;
    dir(t, vol, dst_parent)?;
    let sa = attr(t, vol, src)?;
    if t.child(dst_parent, dst_name)?.is_some() {
        return Err(exists(dst_name));
    }
    if sa.kind == FileKind::Directory && is_within(t, dst_parent, src)? {
        return Err(MetaError::InvalidArgument(
            "cannot copy a directory into itself".into(),
        ));
    }
    let ws = t.volume_workspace(vol)?;
    // Depth-first with an explicit stack: a chain of any depth costs heap,
    // never the server's stack, and the whole copy is capped so one request
    // cannot hold the writer for an unbounded time.
    let mut todo = vec![(sa, dst_parent, dst_name.to_vec())];
    let mut copied = 0usize;
    let mut top = None;
    let too_big = || {
        MetaError::TooBig(format!(
            "copy of more than {COPY_LIMIT} entries; copy the tree in parts"
        ))
    };
    while let Some((sa, parent, name)) = todo.pop() {
        copied += 1;
        let ino = copy_node(t, vol, ws, &sa, parent, &name, now)?;
        top.get_or_insert(ino);
        if sa.kind == FileKind::Directory {
            let mut after = 0;
            loop {
                let batch = t.entries(sa.ino, after, 256)?;
                let Some(last) = batch.last() else { break };
                after = last.cookie;
                todo.extend(batch.into_iter().map(|e| (e.attr, ino, e.name)));
                if copied + todo.len() > COPY_LIMIT {
                    return Err(too_big());
                }
            }
        }
    }
    let ino = top.ok_or_else(|| MetaError::Backend("copy made nothing".into()))?;
    touch_dir(t, dst_parent, now)?;
    attr(t, vol, ino)
}

/// Copies one node (its data and xattrs, not a directory's entries).
fn copy_node(
    t: &impl Tx,
    vol: Ino,
    ws: WorkspaceId,
    sa: &Attr,
    dst_parent: Ino,
    name: &[u8],
    now: Timespec,
) -> Result<Ino> {
    let is_dir = sa.kind == FileKind::Directory;
    let target = if sa.kind == FileKind::Symlink {
        t.symlink_target(sa.ino)?
    } else {
        vec![]
    };
    let node = NewNode {
        kind: sa.kind,
        mode: sa.mode,
        uid: sa.uid,
        gid: sa.gid,
        rdev: sa.rdev,
        target,
    };
    let ino = t.insert_inode(vol, &node, if is_dir { 2 } else { 1 }, now, None)?;
    t.update_inode(
        ino,
        &InodeUpdate {
            size: Some(sa.size),
            mtime: Some(sa.mtime),
            ..Default::default()
        },
    )?;
    t.insert_entry(dst_parent, name, ino)?;
    if is_dir {
        add_nlink(t, dst_parent, 1)?;
    }
    t.copy_xattrs(sa.ino, ino)?;
    for ch in t.chunks(sa.ino)? {
        if let ChunkData::Block(h) = &ch.data {
            incref(t, ws, h)?;
        }
        t.put_chunk(ino, &ch)?;
    }
    Ok(ino)
}
