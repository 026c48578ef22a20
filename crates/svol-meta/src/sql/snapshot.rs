//! Snapshots and clones: a volume's whole tree copied inside one
//! transaction, metadata only. Blocks are shared (their references
//! counted), so a snapshot costs rows, never bytes; and it is one instant
//! of the volume, since nothing commits while the transaction runs.

use super::control::{self, clear_tree, volume};
use super::tx::SqlTx;
use super::{apps, args, Conn, ConnExt, Dialect};
use crate::tree::Tx;
use crate::types::*;
use crate::{MetaError, Result};

/// Fresh inode numbers for every reachable inode of volume `from`, in
/// `ino_map(old, new)`. They come from the inode sequence, so they can
/// collide with nothing made or reserved before or after.
fn map_inodes(c: &dyn Conn, from: Ino) -> Result<()> {
    c.exec("DELETE FROM ino_map", args![])?;
    let vol = from as i64;
    match c.dialect() {
        Dialect::Sqlite => {
            let n = c
                .int(
                    "SELECT count(*) FROM inodes WHERE volume = ?1 AND nlink > 0",
                    args![vol],
                )?
                .unwrap_or(0);
            let top = match c.int(
                "UPDATE sqlite_sequence SET seq = seq + ?1 WHERE name = 'inodes' RETURNING seq",
                args![n],
            )? {
                Some(top) => top,
                None => {
                    return Err(MetaError::Backend("the inode sequence is missing".into()));
                }
            };
            c.exec(
                "INSERT INTO ino_map(old, new) SELECT ino, ?2 + row_number() OVER (ORDER BY ino) \
                 FROM inodes WHERE volume = ?1 AND nlink > 0",
                args![vol, top - n],
            )?;
        }
        Dialect::Postgres => {
            c.exec(
                "INSERT INTO ino_map(old, new) \
                 SELECT ino, nextval(pg_get_serial_sequence('inodes', 'ino')) \
                 FROM inodes WHERE volume = ?1 AND nlink > 0",
                args![vol],
            )?;
        }
    }
    Ok(())
}

/// Copies the reachable tree of volume `from` into volume `to` whose root
/// is `to` (already cleared, see `clear_tree`): inodes with their
/// attributes and times, names in listing order, chunks (their blocks'
/// references counted), symlink targets and xattrs. Hard links stay links.
fn copy_tree(c: &dyn Conn, ws: WorkspaceId, from: Ino, to: Ino) -> Result<()> {
    map_inodes(c, from)?;
    c.exec(
        "UPDATE ino_map SET new = ?2 WHERE old = ?1",
        args![from as i64, to as i64],
    )?;
    c.exec(
        "INSERT INTO inodes(ino, volume, kind, mode, uid, gid, nlink, size, atime_s, atime_ns, \
         mtime_s, mtime_ns, ctime_s, ctime_ns, rdev, version, target) \
         SELECT m.new, ?1, i.kind, i.mode, i.uid, i.gid, i.nlink, i.size, i.atime_s, i.atime_ns, \
         i.mtime_s, i.mtime_ns, i.ctime_s, i.ctime_ns, i.rdev, i.version, i.target \
         FROM inodes i JOIN ino_map m ON m.old = i.ino",
        args![to as i64],
    )?;
    c.exec(
        "INSERT INTO dentries(parent, name, ino) SELECT mp.new, d.name, mi.new \
         FROM dentries d JOIN ino_map mp ON mp.old = d.parent JOIN ino_map mi ON mi.old = d.ino \
         ORDER BY d.id",
        args![],
    )?;
    c.exec(
        "INSERT INTO chunks(ino, idx, len, hash, data) SELECT m.new, k.idx, k.len, k.hash, k.data \
         FROM chunks k JOIN ino_map m ON m.old = k.ino",
        args![],
    )?;
    c.exec(
        "INSERT INTO xattrs(ino, name, value) SELECT m.new, x.name, x.value \
         FROM xattrs x JOIN ino_map m ON m.old = x.ino",
        args![],
    )?;
    let counts = c.rows(
        "SELECT k.hash, count(*) FROM chunks k JOIN ino_map m ON m.new = k.ino \
         WHERE k.hash IS NOT NULL GROUP BY k.hash",
        args![],
        |r| Ok((super::rows::to_hash(r.bytes(0)?)?, r.int(1)?)),
    )?;
    let t = SqlTx::new(c);
    for (h, n) in counts {
        if !t.add_block_refs(ws, &h, n)? {
            return Err(MetaError::MissingBlock(h));
        }
    }
    c.exec("DELETE FROM ino_map", args![])?;
    super::quota::recount(c, to)
}

/// The full name of snapshot `snap` of volume `vol`: `vol@snap`.
pub(crate) fn snapshot_name(vol: &str, snap: &str) -> String {
    format!("{vol}@{snap}")
}

pub(crate) fn snapshot(
    c: &dyn Conn,
    ws: WorkspaceId,
    key: &str,
    snap: &str,
    now: Timespec,
) -> Result<Volume> {
    let v = volume(c, ws, key)?;
    if !v.snapshot_of.is_empty() {
        return Err(MetaError::InvalidArgument(format!(
            "{} is a snapshot; clone it to a volume to snapshot that",
            v.name
        )));
    }
    control::check_volume_name(snap)?;
    let name = snapshot_name(&v.name, snap);
    if volume(c, ws, &name).is_ok() {
        return Err(MetaError::AlreadyExists(format!("snapshot {name}")));
    }
    let app = c
        .int(
            "SELECT app FROM volumes WHERE root = ?1",
            args![v.root as i64],
        )?
        .unwrap_or(0);
    let snap_vol = control::insert_volume(c, ws, Some(&name), app, now)?;
    clear_tree(c, ws, snap_vol.root, &mut Vec::new())?;
    copy_tree(c, ws, v.root, snap_vol.root)?;
    c.exec(
        "UPDATE volumes SET snapshot_of = ?2, ephemeral = 0 WHERE root = ?1",
        args![snap_vol.root as i64, v.root as i64],
    )?;
    volume(c, ws, &snap_vol.id)
}

pub(crate) fn list_snapshots(c: &dyn Conn, ws: WorkspaceId, key: &str) -> Result<Vec<Volume>> {
    let v = volume(c, ws, key)?;
    control::volumes_where(
        c,
        ws,
        "v.snapshot_of = ?2 ORDER BY v.created, v.name",
        v.root,
    )
}

/// Puts snapshot `snap`'s tree in place of volume `key`'s (nobody may
/// have it mounted: their caches would name inodes that are gone).
pub(crate) fn restore(
    c: &dyn Conn,
    ws: WorkspaceId,
    key: &str,
    snap: &str,
    now_ms: i64,
) -> Result<Outcome<Volume>> {
    let v = volume(c, ws, key)?;
    let s = volume(c, ws, &snapshot_name(&v.name, snap))?;
    if s.snapshot_of != v.id {
        return Err(MetaError::NotFound(format!(
            "snapshot {snap} of {}",
            v.name
        )));
    }
    let live = c
        .int(
            "SELECT count(*) FROM sessions WHERE volume = ?1 AND expires >= ?2",
            args![v.root as i64, now_ms],
        )?
        .unwrap_or(0);
    if live > 0 {
        return Err(MetaError::Busy(format!(
            "volume {} is mounted by {live} client{}; unmount it to restore a snapshot, \
             or clone the snapshot to a new volume",
            v.name,
            if live == 1 { "" } else { "s" }
        )));
    }
    let mut freed = Vec::new();
    clear_tree(c, ws, v.root, &mut freed)?;
    copy_tree(c, ws, s.root, v.root)?;
    Ok(Outcome::new(v, freed))
}

/// A new persisted volume `name` holding a copy of volume (or snapshot)
/// `from`; writable, sharing its blocks.
pub(crate) fn clone(
    c: &dyn Conn,
    ws: WorkspaceId,
    from: &str,
    name: &str,
    now: Timespec,
) -> Result<Volume> {
    let src = volume(c, ws, from)?;
    let v = apps::create_volume(c, ws, name, now)?;
    clear_tree(c, ws, v.root, &mut Vec::new())?;
    copy_tree(c, ws, src.root, v.root)?;
    Ok(v)
}

/// Refuses any change to a snapshot. Checked in the transaction of every
/// change, so no server's cache can let one through.
pub(crate) fn check_writable(c: &dyn Conn, vol: Ino) -> Result<()> {
    let of = c
        .int(
            "SELECT snapshot_of FROM volumes WHERE root = ?1",
            args![vol as i64],
        )?
        .unwrap_or(0);
    if of != 0 {
        return Err(MetaError::ReadOnly(
            "a snapshot cannot be changed; clone it to a volume to write".into(),
        ));
    }
    Ok(())
}
