//! Workspaces, tokens and volumes.

use rusqlite::{params, Connection, OptionalExtension};

use super::rows;
use crate::types::*;
use crate::{MetaError, Result};

pub(crate) fn check_volume_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !ok || name == "." || name == ".." {
        return Err(MetaError::InvalidArgument(format!(
            "invalid volume name {name:?}: use 1 to 64 of A-Z a-z 0-9 . _ -"
        )));
    }
    Ok(())
}

pub(crate) fn create_workspace(c: &Connection, name: &str) -> Result<Workspace> {
    check_volume_name(name)?;
    if workspace(c, name).is_ok() {
        return Err(MetaError::AlreadyExists(format!("workspace {name}")));
    }
    c.execute(
        "INSERT INTO workspaces(name, created) VALUES (?1, ?2)",
        params![name, Timespec::now().sec],
    )?;
    Ok(Workspace {
        id: c.last_insert_rowid(),
        name: name.to_string(),
    })
}

pub(crate) fn workspace(c: &Connection, name: &str) -> Result<Workspace> {
    c.query_row(
        "SELECT id FROM workspaces WHERE name = ?1",
        params![name],
        |r| r.get(0),
    )
    .optional()?
    .map(|id| Workspace {
        id,
        name: name.to_string(),
    })
    .ok_or_else(|| MetaError::NotFound(format!("workspace {name}")))
}

pub(crate) fn authenticate(c: &Connection, hash: &[u8; 32]) -> Result<WorkspaceId> {
    c.prepare_cached("SELECT workspace FROM tokens WHERE hash = ?1 AND revoked = 0")?
        .query_row(params![&hash[..]], |r| r.get(0))
        .optional()?
        .ok_or_else(|| MetaError::PermissionDenied("unknown or revoked token".into()))
}

fn volume_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Volume> {
    Ok(Volume {
        root: r.get::<_, i64>(0)? as u64,
        id: r.get(1)?,
        workspace: r.get(2)?,
        name: r.get(3)?,
        created: r.get(4)?,
    })
}

const VOLUME_COLS: &str = "root, public_id, workspace, name, created";

pub(crate) fn volume(c: &Connection, ws: WorkspaceId, key: &str) -> Result<Volume> {
    c.prepare_cached(&format!(
        "SELECT {VOLUME_COLS} FROM volumes WHERE workspace = ?1 AND (name = ?2 OR public_id = ?2)"
    ))?
    .query_row(params![ws, key], volume_row)
    .optional()?
    .ok_or_else(|| MetaError::NotFound(format!("volume {key}")))
}

pub(crate) fn list_volumes(c: &Connection, ws: WorkspaceId) -> Result<Vec<Volume>> {
    let mut st = c.prepare(&format!(
        "SELECT {VOLUME_COLS} FROM volumes WHERE workspace = ?1 ORDER BY name"
    ))?;
    let v = st
        .query_map(params![ws], volume_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(v)
}

pub(crate) fn create_volume(
    c: &Connection,
    ws: WorkspaceId,
    name: &str,
    now: Timespec,
) -> Result<Volume> {
    check_volume_name(name)?;
    if volume(c, ws, name).is_ok() {
        return Err(MetaError::AlreadyExists(format!("volume {name}")));
    }
    let root = insert_inode(
        c,
        0,
        &NewNode {
            kind: FileKind::Directory,
            mode: ROOT_MODE,
            uid: 0,
            gid: 0,
            rdev: 0,
            target: vec![],
        },
        2,
        now,
    )?;
    c.execute(
        "UPDATE inodes SET volume = ?1 WHERE ino = ?1",
        params![root as i64],
    )?;
    let id = super::new_id("vo");
    c.execute(
        "INSERT INTO volumes(root, public_id, workspace, name, created) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![root as i64, id, ws, name, now.sec],
    )?;
    Ok(Volume {
        id,
        name: name.to_string(),
        workspace: ws,
        created: now.sec,
        root,
    })
}

pub(crate) fn rename_volume(
    c: &Connection,
    ws: WorkspaceId,
    name: &str,
    new_name: &str,
) -> Result<Volume> {
    check_volume_name(new_name)?;
    let mut v = volume(c, ws, name)?;
    if volume(c, ws, new_name).is_ok() {
        return Err(MetaError::AlreadyExists(format!("volume {new_name}")));
    }
    c.execute(
        "UPDATE volumes SET name = ?2 WHERE root = ?1",
        params![v.root as i64, new_name],
    )?;
    v.name = new_name.to_string();
    Ok(v)
}

pub(crate) fn delete_volume(c: &Connection, ws: WorkspaceId, key: &str) -> Result<Outcome<Volume>> {
    let v = volume(c, ws, key)?;
    let vol = v.root as i64;
    let mut freed = Vec::new();
    let counts: Vec<(Vec<u8>, i64)> = c
        .prepare(
            "SELECT hash, count(*) FROM chunks WHERE hash IS NOT NULL AND ino IN \
             (SELECT ino FROM inodes WHERE volume = ?1) GROUP BY hash",
        )?
        .query_map(params![vol], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (h, n) in counts {
        rows::decref(c, &rows::to_hash(h)?, n, &mut freed)?;
    }
    for sql in [
        "DELETE FROM chunks WHERE ino IN (SELECT ino FROM inodes WHERE volume = ?1)",
        "DELETE FROM xattrs WHERE ino IN (SELECT ino FROM inodes WHERE volume = ?1)",
        "DELETE FROM dentries WHERE parent IN (SELECT ino FROM inodes WHERE volume = ?1)",
        "DELETE FROM opens WHERE ino IN (SELECT ino FROM inodes WHERE volume = ?1)",
        "DELETE FROM sessions WHERE volume = ?1",
        "DELETE FROM inodes WHERE volume = ?1",
        "DELETE FROM volumes WHERE root = ?1",
    ] {
        c.execute(sql, params![vol])?;
    }
    Ok(Outcome::new(v, freed))
}

pub(crate) fn volume_usage(c: &Connection, vol: Ino) -> Result<VolumeUsage> {
    let (files, bytes): (i64, i64) = c.query_row(
        "SELECT count(*), coalesce(sum(size), 0) FROM inodes WHERE volume = ?1 AND kind = 1",
        params![vol as i64],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(VolumeUsage {
        bytes: bytes as u64,
        files: files as u64,
    })
}

/// Inserts an inode row and returns its number.
pub(crate) fn insert_inode(
    c: &Connection,
    vol: Ino,
    n: &NewNode,
    nlink: u32,
    now: Timespec,
) -> Result<Ino> {
    let size = if n.kind == FileKind::Symlink {
        n.target.len() as i64
    } else {
        0
    };
    let target: Option<&[u8]> = (n.kind == FileKind::Symlink).then_some(&n.target[..]);
    c.prepare_cached(
        "INSERT INTO inodes(volume, kind, mode, uid, gid, nlink, size, atime_s, atime_ns, mtime_s, \
         mtime_ns, ctime_s, ctime_ns, rdev, version, target) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?8, ?9, ?8, ?9, ?10, 0, ?11)",
    )?
    .execute(params![
        vol as i64,
        n.kind as i64,
        (n.mode & 0o7777) as i64,
        n.uid as i64,
        n.gid as i64,
        nlink as i64,
        size,
        now.sec,
        now.nsec as i64,
        n.rdev as i64,
        target
    ])?;
    Ok(c.last_insert_rowid() as u64)
}
