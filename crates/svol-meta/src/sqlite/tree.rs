//! Operations on the directory tree: names, links, renames, attributes.

use rusqlite::{params, Connection};

use super::control::insert_inode;
use super::rows::*;
use crate::types::*;
use crate::{MetaError, Result};

const S_ISGID: u32 = 0o2000;
const LINK_MAX: u32 = 65_000;

pub(crate) fn lookup(c: &Connection, vol: Ino, parent: Ino, name: &[u8]) -> Result<Attr> {
    dir(c, vol, parent)?;
    if name.len() > NAME_MAX {
        return Err(MetaError::NameTooLong);
    }
    let ino = child(c, parent, name)?
        .ok_or_else(|| MetaError::NotFound(String::from_utf8_lossy(name).into_owned()))?;
    attr(c, vol, ino)
}

pub(crate) fn create(
    c: &Connection,
    vol: Ino,
    parent: Ino,
    name: &[u8],
    node: &NewNode,
    exclusive: bool,
    now: Timespec,
) -> Result<Attr> {
    check_name(name)?;
    let p = dir(c, vol, parent)?;
    if let Some(existing) = child(c, parent, name)? {
        let a = attr(c, vol, existing)?;
        if !exclusive && node.kind == FileKind::Regular && a.kind == FileKind::Regular {
            return Ok(a);
        }
        return Err(MetaError::AlreadyExists(
            String::from_utf8_lossy(name).into_owned(),
        ));
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
    let ino = insert_inode(c, vol, &n, if is_dir { 2 } else { 1 }, now)?;
    insert_dentry(c, parent, name, ino)?;
    if is_dir {
        add_nlink(c, parent, 1)?;
    }
    touch_dir(c, parent, now)?;
    attr(c, vol, ino)
}

pub(crate) fn link(
    c: &Connection,
    vol: Ino,
    ino: Ino,
    new_parent: Ino,
    new_name: &[u8],
    now: Timespec,
) -> Result<Attr> {
    check_name(new_name)?;
    let a = attr(c, vol, ino)?;
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
    dir(c, vol, new_parent)?;
    if child(c, new_parent, new_name)?.is_some() {
        return Err(MetaError::AlreadyExists(
            String::from_utf8_lossy(new_name).into_owned(),
        ));
    }
    insert_dentry(c, new_parent, new_name, ino)?;
    add_nlink(c, ino, 1)?;
    touch_ctime(c, ino, now)?;
    touch_dir(c, new_parent, now)?;
    attr(c, vol, ino)
}

pub(crate) fn unlink(
    c: &Connection,
    vol: Ino,
    parent: Ino,
    name: &[u8],
    directory: bool,
    now: Timespec,
) -> Result<Outcome<Ino>> {
    dir(c, vol, parent)?;
    let ino = child(c, parent, name)?
        .ok_or_else(|| MetaError::NotFound(String::from_utf8_lossy(name).into_owned()))?;
    let a = attr(c, vol, ino)?;
    let mut freed = Vec::new();
    match (directory, a.kind == FileKind::Directory) {
        (true, false) => return Err(MetaError::NotDirectory),
        (false, true) => return Err(MetaError::IsDirectory),
        (true, true) => {
            if !is_empty_dir(c, ino)? {
                return Err(MetaError::NotEmpty);
            }
            delete_dentry(c, parent, name)?;
            add_nlink(c, parent, -1)?;
            c.execute(
                "UPDATE inodes SET nlink = 0 WHERE ino = ?1",
                params![ino as i64],
            )?;
        }
        (false, false) => {
            delete_dentry(c, parent, name)?;
            add_nlink(c, ino, -1)?;
            touch_ctime(c, ino, now)?;
        }
    }
    touch_dir(c, parent, now)?;
    destroy_if_unreachable(c, ino, &mut freed)?;
    Ok(Outcome::new(ino, freed))
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn rename(
    c: &Connection,
    vol: Ino,
    parent: Ino,
    name: &[u8],
    new_parent: Ino,
    new_name: &[u8],
    flags: RenameFlags,
    now: Timespec,
) -> Result<Outcome<Option<Ino>>> {
    check_name(new_name)?;
    if flags.exchange && flags.noreplace {
        return Err(MetaError::InvalidArgument(
            "RENAME_EXCHANGE with RENAME_NOREPLACE".into(),
        ));
    }
    dir(c, vol, parent)?;
    dir(c, vol, new_parent)?;
    let src = child(c, parent, name)?
        .ok_or_else(|| MetaError::NotFound(String::from_utf8_lossy(name).into_owned()))?;
    let sa = attr(c, vol, src)?;
    let dst = child(c, new_parent, new_name)?;
    let src_dir = sa.kind == FileKind::Directory;
    let mut freed = Vec::new();

    if flags.exchange {
        let dst =
            dst.ok_or_else(|| MetaError::NotFound(String::from_utf8_lossy(new_name).into_owned()))?;
        let da = attr(c, vol, dst)?;
        let dst_dir = da.kind == FileKind::Directory;
        if (src_dir && is_within(c, new_parent, src)?) || (dst_dir && is_within(c, parent, dst)?) {
            return Err(MetaError::InvalidArgument(
                "cannot move a directory below itself".into(),
            ));
        }
        c.execute(
            "UPDATE dentries SET ino = ?3 WHERE parent = ?1 AND name = ?2",
            params![parent as i64, name, dst as i64],
        )?;
        c.execute(
            "UPDATE dentries SET ino = ?3 WHERE parent = ?1 AND name = ?2",
            params![new_parent as i64, new_name, src as i64],
        )?;
        if parent != new_parent && src_dir != dst_dir {
            let d = if src_dir { 1 } else { -1 };
            add_nlink(c, new_parent, d)?;
            add_nlink(c, parent, -d)?;
        }
        touch_ctime(c, src, now)?;
        touch_ctime(c, dst, now)?;
        touch_dir(c, parent, now)?;
        touch_dir(c, new_parent, now)?;
        return Ok(Outcome::new(None, freed));
    }

    if let Some(d) = dst {
        if d == src {
            // Two names of one inode: POSIX says do nothing.
            return Ok(Outcome::new(None, freed));
        }
        if flags.noreplace {
            return Err(MetaError::AlreadyExists(
                String::from_utf8_lossy(new_name).into_owned(),
            ));
        }
    }
    if src_dir && is_within(c, new_parent, src)? {
        return Err(MetaError::InvalidArgument(
            "cannot move a directory below itself".into(),
        ));
    }
    let mut replaced = None;
    if let Some(d) = dst {
        let da = attr(c, vol, d)?;
        let dst_dir = da.kind == FileKind::Directory;
        match (src_dir, dst_dir) {
            (true, false) => return Err(MetaError::NotDirectory),
            (false, true) => return Err(MetaError::IsDirectory),
            (true, true) => {
                if !is_empty_dir(c, d)? {
                    return Err(MetaError::NotEmpty);
                }
                c.execute(
                    "UPDATE inodes SET nlink = 0 WHERE ino = ?1",
                    params![d as i64],
                )?;
                add_nlink(c, new_parent, -1)?;
            }
            (false, false) => {
                add_nlink(c, d, -1)?;
                touch_ctime(c, d, now)?;
            }
        }
        delete_dentry(c, new_parent, new_name)?;
        replaced = Some(d);
    }
    c.execute(
        "UPDATE dentries SET parent = ?3, name = ?4 WHERE parent = ?1 AND name = ?2",
        params![parent as i64, name, new_parent as i64, new_name],
    )?;
    if src_dir && parent != new_parent {
        add_nlink(c, parent, -1)?;
        add_nlink(c, new_parent, 1)?;
    }
    touch_ctime(c, src, now)?;
    touch_dir(c, parent, now)?;
    touch_dir(c, new_parent, now)?;
    if let Some(d) = replaced {
        destroy_if_unreachable(c, d, &mut freed)?;
    }
    Ok(Outcome::new(replaced, freed))
}

pub(crate) fn readdir(
    c: &Connection,
    vol: Ino,
    d: Ino,
    after: u64,
    limit: usize,
) -> Result<Vec<DirEntry>> {
    dir(c, vol, d)?;
    let mut st = c.prepare_cached(&format!(
        "SELECT d.id, d.name, {} FROM dentries d JOIN inodes i ON i.ino = d.ino \
         WHERE d.parent = ?1 AND d.id > ?2 ORDER BY d.id LIMIT ?3",
        ATTR_COLS
            .split(", ")
            .map(|c| format!("i.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    ))?;
    let rows = st.query_map(params![d as i64, after as i64, limit as i64], |r| {
        Ok(DirEntry {
            cookie: r.get::<_, i64>(0)? as u64,
            name: r.get(1)?,
            attr: row_attr(r, 2)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(crate) fn readlink(c: &Connection, vol: Ino, ino: Ino) -> Result<Vec<u8>> {
    let a = attr(c, vol, ino)?;
    if a.kind != FileKind::Symlink {
        return Err(MetaError::InvalidArgument("not a symlink".into()));
    }
    Ok(c.query_row(
        "SELECT target FROM inodes WHERE ino = ?1",
        params![ino as i64],
        |r| r.get::<_, Option<Vec<u8>>>(0),
    )?
    .unwrap_or_default())
}

pub(crate) fn resolve(c: &Connection, vol: Ino, path: &str) -> Result<Attr> {
    let mut cur = attr(c, vol, vol)?;
    for part in path.split('/').filter(|p| !p.is_empty() && *p != ".") {
        if part == ".." {
            return Err(MetaError::InvalidArgument(format!(
                "path {path:?} contains '..'"
            )));
        }
        cur = lookup(c, vol, cur.ino, part.as_bytes())?;
    }
    Ok(cur)
}

pub(crate) fn setattr(
    c: &Connection,
    vol: Ino,
    ino: Ino,
    set: &SetAttr,
    now: Timespec,
) -> Result<Outcome<Attr>> {
    let a = attr(c, vol, ino)?;
    let mut freed = Vec::new();
    let mut changed = false;
    if let Some(m) = set.mode {
        c.execute(
            "UPDATE inodes SET mode = ?2 WHERE ino = ?1",
            params![ino as i64, (m & 0o7777) as i64],
        )?;
        changed = true;
    }
    if let Some(u) = set.uid {
        c.execute(
            "UPDATE inodes SET uid = ?2 WHERE ino = ?1",
            params![ino as i64, u as i64],
        )?;
        changed = true;
    }
    if let Some(g) = set.gid {
        c.execute(
            "UPDATE inodes SET gid = ?2 WHERE ino = ?1",
            params![ino as i64, g as i64],
        )?;
        changed = true;
    }
    if let Some(size) = set.size.filter(|s| *s > MAX_FILE_SIZE) {
        return Err(MetaError::FileTooLarge(format!("size {size}")));
    }
    if let Some(size) = set.size {
        match a.kind {
            FileKind::Regular => {}
            FileKind::Directory => return Err(MetaError::IsDirectory),
            _ => {
                return Err(MetaError::InvalidArgument(
                    "truncate of a special file".into(),
                ))
            }
        }
        truncate(c, ino, size, &mut freed)?;
        c.execute(
            "UPDATE inodes SET size = ?2, version = version + 1, mtime_s = ?3, mtime_ns = ?4 WHERE ino = ?1",
            params![ino as i64, size as i64, now.sec, now.nsec as i64],
        )?;
        changed = true;
    }
    for (col, t) in [("atime", set.atime), ("mtime", set.mtime)] {
        if let Some(t) = t {
            let ts = match t {
                TimeSet::Now => now,
                TimeSet::At(ts) => ts,
            };
            c.execute(
                &format!("UPDATE inodes SET {col}_s = ?2, {col}_ns = ?3 WHERE ino = ?1"),
                params![ino as i64, ts.sec, ts.nsec as i64],
            )?;
            changed = true;
        }
    }
    if changed {
        touch_ctime(c, ino, now)?;
    }
    Ok(Outcome::new(attr(c, vol, ino)?, freed))
}

/// Cuts the chunk map at `size`: whole chunks past it go, the chunk it falls
/// in is shortened (its block stays; bytes past `len` read as zeros).
pub(crate) fn truncate(c: &Connection, ino: Ino, size: u64, freed: &mut Freed) -> Result<()> {
    let first_gone = size.div_ceil(CHUNK_SIZE);
    drop_chunks_from(c, ino, first_gone, freed)?;
    if size % CHUNK_SIZE != 0 {
        let idx = size / CHUNK_SIZE;
        let keep = (size - idx * CHUNK_SIZE) as i64;
        c.execute(
            "UPDATE chunks SET len = min(len, ?3), data = CASE WHEN data IS NULL THEN NULL \
             ELSE substr(data, 1, ?3) END WHERE ino = ?1 AND idx = ?2",
            params![ino as i64, idx as i64, keep],
        )?;
    }
    Ok(())
}

pub(crate) fn copy(
    c: &Connection,
    vol: Ino,
    src: Ino,
    dst_parent: Ino,
    dst_name: &[u8],
    now: Timespec,
) -> Result<Attr> {
    check_name(dst_name)?;
    dir(c, vol, dst_parent)?;
    let sa = attr(c, vol, src)?;
    if child(c, dst_parent, dst_name)?.is_some() {
        return Err(MetaError::AlreadyExists(
            String::from_utf8_lossy(dst_name).into_owned(),
        ));
    }
    if sa.kind == FileKind::Directory && is_within(c, dst_parent, src)? {
        return Err(MetaError::InvalidArgument(
            "cannot copy a directory into itself".into(),
        ));
    }
    let ws = volume_workspace(c, vol)?;
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
        let ino = copy_node(c, vol, ws, &sa, parent, &name, now)?;
        top.get_or_insert(ino);
        if sa.kind == FileKind::Directory {
            let mut after = 0;
            loop {
                let batch = readdir(c, vol, sa.ino, after, 256)?;
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
    touch_dir(c, dst_parent, now)?;
    attr(c, vol, ino)
}

/// Most entries one `copy` may create (one transaction).
pub(crate) const COPY_LIMIT: usize = 250_000;

/// Copies one node (its data and xattrs, not a directory's entries).
fn copy_node(
    c: &Connection,
    vol: Ino,
    ws: WorkspaceId,
    sa: &Attr,
    dst_parent: Ino,
    name: &[u8],
    now: Timespec,
) -> Result<Ino> {
    let is_dir = sa.kind == FileKind::Directory;
    let target = if sa.kind == FileKind::Symlink {
        readlink(c, vol, sa.ino)?
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
    let ino = insert_inode(c, vol, &node, if is_dir { 2 } else { 1 }, now)?;
    c.execute(
        "UPDATE inodes SET size = ?2, mtime_s = ?3, mtime_ns = ?4 WHERE ino = ?1",
        params![
            ino as i64,
            sa.size as i64,
            sa.mtime.sec,
            sa.mtime.nsec as i64
        ],
    )?;
    insert_dentry(c, dst_parent, name, ino)?;
    if is_dir {
        add_nlink(c, dst_parent, 1)?;
    }
    c.execute(
        "INSERT INTO xattrs(ino, name, value) SELECT ?2, name, value FROM xattrs WHERE ino = ?1",
        params![sa.ino as i64, ino as i64],
    )?;
    for ch in chunks(c, sa.ino)? {
        let (hash, data): (Option<&[u8]>, Option<&[u8]>) = match &ch.data {
            ChunkData::Block(h) => {
                incref(c, ws, h)?;
                (Some(&h[..]), None)
            }
            ChunkData::Inline(d) => (None, Some(&d[..])),
        };
        c.execute(
            "INSERT INTO chunks(ino, idx, len, hash, data) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![ino as i64, ch.index as i64, ch.len as i64, hash, data],
        )?;
    }
    Ok(ino)
}
