//! The file trash of each volume (see `tree::trash` for what goes in):
//! its retention setting, listing, restoring to a path, and dropping what
//! is purged or past its retention.

use std::collections::HashSet;

use super::tx::SqlTx;
use super::{args, Conn, ConnExt, Row};
use crate::tree;
use crate::types::*;
use crate::{MetaError, Result};

/// Sets how long volume `key` keeps removed files (0: not at all; what is
/// in its trash stays until its own time).
pub(crate) fn set_retention(
    c: &dyn Conn,
    ws: WorkspaceId,
    key: &str,
    keep_ms: i64,
) -> Result<Volume> {
    let v = super::control::volume(c, ws, key)?;
    if !v.snapshot_of.is_empty() {
        return Err(MetaError::ReadOnly(format!(
            "{} is a snapshot: nothing is removed from it",
            v.name
        )));
    }
    c.exec(
        "UPDATE volumes SET file_trash = ?2 WHERE root = ?1",
        args![v.root as i64, keep_ms.max(0)],
    )?;
    super::control::volume(c, ws, key)
}

fn row(r: &dyn Row) -> Result<DeletedFile> {
    Ok(DeletedFile {
        id: r.int(0)?,
        ino: r.int(1)? as Ino,
        path: r.bytes(2)?,
        deleted_ms: r.int(3)?,
        purge_ms: r.int(4)?,
        kind: FileKind::from_i64(r.int(5)?).unwrap_or(FileKind::Regular),
        size: r.int(6)?.max(0) as u64,
    })
}

/// The files of volume `vol`'s trash that `sel` picks, newest first.
pub(crate) fn list(c: &dyn Conn, vol: Ino, sel: &DeletedSelection<'_>) -> Result<Vec<DeletedFile>> {
    let all = c.rows(
        "SELECT f.id, f.ino, f.path, f.deleted, f.purge_at, i.kind, i.size \
         FROM file_trash f JOIN inodes i ON i.ino = f.ino WHERE f.volume = ?1 \
         ORDER BY f.deleted DESC, f.id DESC",
        args![vol as i64],
        row,
    )?;
    Ok(all.into_iter().filter(|f| sel.picks(f)).collect())
}

/// `path` with its leading `from` replaced by `to`.
fn moved(path: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let from = from.strip_suffix(b"/").unwrap_or(from);
    let to = to.strip_suffix(b"/").unwrap_or(to);
    let rest = &path[from.len().min(path.len())..];
    let mut out = to.to_vec();
    out.extend_from_slice(rest);
    out
}

/// Restores what `sel` picks (of each path, the newest deletion) to the
/// path it had, or with `sel.path` replaced by `to`. All or nothing: a
/// path that is taken refuses the whole restore. Returns (from, to) pairs
/// and what it touched.
pub(crate) fn restore(
    t: &SqlTx<'_>,
    vol: Ino,
    sel: &DeletedSelection<'_>,
    to: Option<&[u8]>,
    now: Timespec,
) -> Result<(Restored, tree::Touch)> {
    let picked = list(t.conn(), vol, sel)?;
    if picked.is_empty() {
        return Err(MetaError::NotFound(match sel.id {
            Some(id) => format!("entry {id} in the volume's trash"),
            None => format!(
                "{} in the volume's trash",
                if sel.path.is_empty() {
                    "anything".into()
                } else {
                    String::from_utf8_lossy(sel.path).into_owned()
                }
            ),
        }));
    }
    // With an id, its path is what `to` replaces.
    let from: Vec<u8> = match sel.id {
        Some(_) => picked[0].path.clone(),
        None => sel.path.to_vec(),
    };
    let mut seen = HashSet::new();
    let mut done = Vec::new();
    let mut touch = tree::Touch::default();
    for f in picked {
        if !seen.insert(f.path.clone()) {
            continue; // an older deletion of a path already restored
        }
        let dest = match to {
            Some(to) => moved(&f.path, &from, to),
            None => f.path.clone(),
        };
        let (dir, made) = tree::restore(t, vol, f.ino, &dest, now)?;
        touch.inodes.push(dir);
        touch.inodes.push(f.ino);
        for (p, n) in made {
            touch.inodes.push(p);
            touch.entries.push((p, n));
        }
        done.push((f.path, dest));
    }
    Ok((done, touch))
}

/// Drops what `sel` picks from volume `vol`'s trash for good.
pub(crate) fn purge(
    t: &SqlTx<'_>,
    vol: Ino,
    sel: &DeletedSelection<'_>,
    freed: &mut Freed,
) -> Result<usize> {
    let picked = list(t.conn(), vol, sel)?;
    for f in &picked {
        tree::purge(t, f.ino, freed)?;
    }
    Ok(picked.len())
}

/// Drops up to `limit` files whose retention ended by `now_ms`, in every
/// volume.
pub(crate) fn purge_expired(
    t: &SqlTx<'_>,
    now_ms: i64,
    limit: i64,
    freed: &mut Freed,
) -> Result<usize> {
    let due = t.conn().rows(
        "SELECT ino FROM file_trash WHERE purge_at <= ?1 ORDER BY purge_at LIMIT ?2",
        args![now_ms, limit],
        |r| r.int(0),
    )?;
    for ino in &due {
        tree::purge(t, *ino as Ino, freed)?;
    }
    Ok(due.len())
}
