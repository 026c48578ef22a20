//! The workspace's trash: a deleted volume (with its snapshots) leaves the
//! `volumes` table, so nothing can find, mount or change it, but keeps its
//! tree and its block references until its retention ends; then, or when
//! purged, it is dropped as a delete always was.

use super::apps::insert_app;
use super::control::{self, check_volume_name, clear_tree, drop_volume};
use super::{args, Conn, ConnExt, Row};
use crate::types::*;
use crate::{AppKind, MetaError, Result, Retire};

/// Deletes volume `root` as `retire` says: to the trash until
/// `now + keep`, or at once.
pub(crate) fn retire(c: &dyn Conn, root: Ino, retire: Retire, freed: &mut Freed) -> Result<()> {
    if retire.keep_ms <= 0 {
        return drop_volume(c, root, freed);
    }
    let vol = root as i64;
    let snapshots = c.rows(
        "SELECT root FROM volumes WHERE snapshot_of = ?1",
        args![vol],
        |r| r.int(0),
    )?;
    for s in snapshots {
        retire_one(c, s as Ino, retire)?;
    }
    retire_one(c, root, retire)
}

fn retire_one(c: &dyn Conn, root: Ino, retire: Retire) -> Result<()> {
    let vol = root as i64;
    c.exec(
        "INSERT INTO trash(root, public_id, workspace, name, created, ephemeral, snapshot_of, \
         deleted, purge_at) SELECT root, public_id, workspace, name, created, ephemeral, \
         snapshot_of, ?2, ?3 FROM volumes WHERE root = ?1",
        args![
            vol,
            retire.now_ms,
            retire.now_ms.saturating_add(retire.keep_ms)
        ],
    )?;
    // What lived only while the volume was in use goes now: its sessions
    // (their servers end them on the feed entry below), their open files
    // and locks, and what the feed said about it.
    for sql in [
        "DELETE FROM feed WHERE volume = ?1",
        "DELETE FROM opens WHERE ino IN (SELECT ino FROM inodes WHERE volume = ?1)",
        "DELETE FROM locks WHERE ino IN (SELECT ino FROM inodes WHERE volume = ?1)",
        "DELETE FROM lock_waiters WHERE ino IN (SELECT ino FROM inodes WHERE volume = ?1)",
        "DELETE FROM sessions WHERE volume = ?1",
        "DELETE FROM volume_blocks WHERE volume = ?1",
        "DELETE FROM volumes WHERE root = ?1",
    ] {
        c.exec(sql, args![vol])?;
    }
    super::feed::append(
        c,
        &FeedEntry {
            volume: root,
            volume_deleted: true,
            ..Default::default()
        },
    )?;
    Ok(())
}

const COLS: &str = "t.root, t.public_id, t.workspace, t.name, t.created, t.ephemeral, \
     (SELECT p.public_id FROM trash p WHERE p.root = t.snapshot_of), t.deleted, t.purge_at, \
     t.snapshot_of";

fn row(r: &dyn Row) -> Result<(Trashed, Ino)> {
    Ok((
        Trashed {
            root: r.int(0)? as Ino,
            id: r.text(1)?,
            workspace: r.int(2)?,
            name: r.text(3)?,
            created: r.int(4)?,
            ephemeral: r.flag(5)?,
            snapshot_of: r.opt_text(6)?.unwrap_or_default(),
            deleted_ms: r.int(7)?,
            purge_ms: r.int(8)?,
        },
        r.int(9)? as Ino,
    ))
}

/// The trash of workspace `ws`, most recently deleted first.
pub(crate) fn list(c: &dyn Conn, ws: WorkspaceId) -> Result<Vec<Trashed>> {
    Ok(c.rows(
        &format!(
            "SELECT {COLS} FROM trash t WHERE t.workspace = ?1 ORDER BY t.deleted DESC, t.name"
        ),
        args![ws],
        row,
    )?
    .into_iter()
    .map(|(t, _)| t)
    .collect())
}

fn find(c: &dyn Conn, ws: WorkspaceId, id: &str) -> Result<(Trashed, Ino)> {
    c.row(
        &format!("SELECT {COLS} FROM trash t WHERE t.workspace = ?1 AND t.public_id = ?2"),
        args![ws, id],
        row,
    )?
    .ok_or_else(|| MetaError::NotFound(format!("{id} in the trash")))
}

/// Brings volume `id` back from the trash as a persisted volume called
/// `name` (default: the name it had), with its snapshots.
pub(crate) fn restore(
    c: &dyn Conn,
    ws: WorkspaceId,
    id: &str,
    name: Option<&str>,
    now: Timespec,
) -> Result<Volume> {
    let (t, parent) = find(c, ws, id)?;
    let live_parent = parent != 0
        && c.int(
            "SELECT count(*) FROM volumes WHERE root = ?1",
            args![parent as i64],
        )?
        .unwrap_or(0)
            > 0;
    if !t.snapshot_of.is_empty() && name.is_none() {
        // A snapshot deleted on its own goes back to its volume.
        if live_parent {
            let app = c
                .int(
                    "SELECT app FROM volumes WHERE root = ?1",
                    args![parent as i64],
                )?
                .unwrap_or(0);
            put_back(c, &t, &t.name, app, parent)?;
            return control::volume(c, ws, &t.id);
        }
        return Err(MetaError::InvalidArgument(format!(
            "{} is a snapshot of a volume that is gone; restore it --as a volume",
            t.name
        )));
    }
    let name = name.unwrap_or(&t.name);
    check_volume_name(name)?;
    if control::volume(c, ws, name).is_ok() {
        return Err(MetaError::AlreadyExists(format!(
            "volume {name} (restore it under another name with --as)"
        )));
    }
    let app = insert_app(c, ws, name, AppKind::Volume, now.sec * 1000)?;
    put_back(c, &t, name, app, 0)?;
    let snaps = c.rows(
        &format!("SELECT {COLS} FROM trash t WHERE t.snapshot_of = ?1"),
        args![t.root as i64],
        row,
    )?;
    for (s, _) in snaps {
        let snap = s.name.rsplit_once('@').map(|x| x.1).unwrap_or(&s.id);
        put_back(c, &s, &format!("{name}@{snap}"), app, t.root)?;
    }
    control::volume(c, ws, &t.id)
}

fn put_back(c: &dyn Conn, t: &Trashed, name: &str, app: i64, snapshot_of: Ino) -> Result<()> {
    c.exec(
        "INSERT INTO volumes(root, public_id, workspace, name, created, app, ephemeral, snapshot_of) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7)",
        args![t.root as i64, &t.id, t.workspace, name, t.created, app, snapshot_of as i64],
    )?;
    c.exec("DELETE FROM trash WHERE root = ?1", args![t.root as i64])?;
    super::quota::recount(c, t.root)
}

/// Drops from the trash what `which` picks: one volume (with its
/// snapshots) of a workspace, a whole workspace's trash, or everything
/// whose retention ended. Returns the ids dropped.
pub(crate) fn purge(c: &dyn Conn, which: Purge<'_>, freed: &mut Freed) -> Result<Vec<String>> {
    let rows = match which {
        Purge::One(ws, id) => {
            let (t, _) = find(c, ws, id)?;
            let mut v = c.rows(
                &format!("SELECT {COLS} FROM trash t WHERE t.snapshot_of = ?1"),
                args![t.root as i64],
                row,
            )?;
            v.push((t, 0));
            v
        }
        Purge::Workspace(ws) => c.rows(
            &format!("SELECT {COLS} FROM trash t WHERE t.workspace = ?1"),
            args![ws],
            row,
        )?,
        Purge::Expired(now_ms) => c.rows(
            &format!("SELECT {COLS} FROM trash t WHERE t.purge_at <= ?1 LIMIT 64"),
            args![now_ms],
            row,
        )?,
    };
    let mut ids = Vec::new();
    for (t, _) in rows {
        clear_tree(c, t.workspace, t.root, freed)?;
        c.exec("DELETE FROM trash WHERE root = ?1", args![t.root as i64])?;
        ids.push(t.id);
    }
    Ok(ids)
}
