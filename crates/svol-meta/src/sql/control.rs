//! Workspaces, tokens and volumes.

use super::tx::SqlTx;
use super::{args, rows, Conn, ConnExt, Row};
use crate::lifetimes::*;
use crate::tree::Tx;
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

pub(crate) fn create_workspace(c: &dyn Conn, name: &str) -> Result<Workspace> {
    check_volume_name(name)?;
    if workspace(c, name).is_ok() {
        return Err(MetaError::AlreadyExists(format!("workspace {name}")));
    }
    let created = Timespec::now().sec;
    let id = c
        .int(
            "INSERT INTO workspaces(name, created) VALUES (?1, ?2) RETURNING id",
            args![name, created],
        )?
        .ok_or_else(|| MetaError::Backend("insert returned no workspace".into()))?;
    Ok(Workspace {
        id,
        name: name.to_string(),
        created,
    })
}

fn workspace_row(r: &dyn Row) -> Result<Workspace> {
    Ok(Workspace {
        id: r.int(0)?,
        name: r.text(1)?,
        created: r.int(2)?,
    })
}

pub(crate) fn workspace(c: &dyn Conn, name: &str) -> Result<Workspace> {
    c.row(
        "SELECT id, name, created FROM workspaces WHERE name = ?1",
        args![name],
        workspace_row,
    )?
    .ok_or_else(|| MetaError::NotFound(format!("workspace {name}")))
}

pub(crate) fn list_workspaces(c: &dyn Conn) -> Result<Vec<Workspace>> {
    c.rows(
        "SELECT id, name, created FROM workspaces ORDER BY name",
        &[],
        workspace_row,
    )
}

/// Bytes of data held inline in the chunks of the files of volume `vol`
/// (or, with `vol` 0, of every volume of workspace `ws`).
fn inline_bytes(c: &dyn Conn, ws: WorkspaceId, vol: Ino) -> Result<u64> {
    Ok(c.row(
        "SELECT CAST(coalesce(sum(length(c.data)), 0) AS BIGINT) FROM chunks c \
         JOIN inodes i ON i.ino = c.ino WHERE c.data IS NOT NULL AND \
         (i.volume = ?2 OR (?2 = 0 AND i.volume IN \
         (SELECT root FROM volumes WHERE workspace = ?1)))",
        args![ws, vol as i64],
        |r| r.int(0),
    )?
    .unwrap_or(0)
    .max(0) as u64)
}

pub(crate) fn workspace_usage(c: &dyn Conn, ws: WorkspaceId) -> Result<WorkspaceUsage> {
    let count = |sql: &str| -> Result<u64> {
        Ok(c.row(sql, args![ws], |r| r.int(0))?.unwrap_or(0).max(0) as u64)
    };
    Ok(WorkspaceUsage {
        volumes: count("SELECT count(*) FROM volumes WHERE workspace = ?1")?,
        running_apps: count(&format!(
            "SELECT count(*) FROM apps WHERE workspace = ?1 AND state = {}",
            AppState::Running as i64
        ))?,
        files: count(
            "SELECT count(*) FROM inodes WHERE kind = 1 AND volume IN \
             (SELECT root FROM volumes WHERE workspace = ?1)",
        )?,
        logical_bytes: count(
            "SELECT CAST(coalesce(sum(size), 0) AS BIGINT) FROM inodes WHERE kind = 1 AND \
             volume IN (SELECT root FROM volumes WHERE workspace = ?1)",
        )?,
        // Every block the workspace keeps, referenced or on its way out.
        stored_bytes: count(
            "SELECT CAST(coalesce(sum(size), 0) AS BIGINT) FROM blocks WHERE workspace = ?1",
        )? + inline_bytes(c, ws, 0)?,
        sessions: count("SELECT count(*) FROM sessions WHERE workspace = ?1")?,
        inodes: count(
            "SELECT count(*) FROM inodes i JOIN volumes v ON v.root = i.volume \
             WHERE v.workspace = ?1 AND i.ino <> v.root",
        )?,
        max_bytes: count("SELECT max_bytes FROM workspaces WHERE id = ?1")?,
        max_files: count("SELECT max_files FROM workspaces WHERE id = ?1")?,
    })
}

pub(crate) fn authenticate(c: &dyn Conn, hash: &[u8; 32]) -> Result<Grant> {
    c.row(
        "SELECT workspace, admin FROM tokens WHERE hash = ?1 AND revoked = 0",
        args![&hash[..]],
        |r| {
            Ok(Grant {
                workspace: r.int(0)?,
                admin: r.flag(1)?,
            })
        },
    )?
    .ok_or_else(|| MetaError::PermissionDenied("unknown or revoked token".into()))
}

const TOKEN_COLS: &str = "public_id, workspace, label, admin, created, revoked";

fn token_row(r: &dyn Row) -> Result<TokenInfo> {
    Ok(TokenInfo {
        id: r.text(0)?,
        workspace: r.int(1)?,
        label: r.text(2)?,
        admin: r.flag(3)?,
        created: r.int(4)?,
        revoked: r.flag(5)?,
    })
}

pub(crate) fn add_token(
    c: &dyn Conn,
    ws: WorkspaceId,
    hash: &[u8; 32],
    label: &str,
    admin: bool,
) -> Result<TokenInfo> {
    let id = super::new_id("tk");
    let now = Timespec::now().sec;
    c.exec(
        "INSERT INTO tokens(hash, workspace, label, public_id, admin, created) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        args![&hash[..], ws, label, &id, admin, now],
    )?;
    Ok(TokenInfo {
        id,
        workspace: ws,
        label: label.to_string(),
        admin,
        created: now,
        revoked: false,
    })
}

pub(crate) fn token(c: &dyn Conn, hash: &[u8; 32]) -> Result<TokenInfo> {
    c.row(
        &format!("SELECT {TOKEN_COLS} FROM tokens WHERE hash = ?1 AND revoked = 0"),
        args![&hash[..]],
        token_row,
    )?
    .ok_or_else(|| MetaError::PermissionDenied("unknown or revoked token".into()))
}

pub(crate) fn list_tokens(c: &dyn Conn, ws: WorkspaceId) -> Result<Vec<TokenInfo>> {
    c.rows(
        &format!(
            "SELECT {TOKEN_COLS} FROM tokens WHERE workspace = ?1 ORDER BY created, public_id"
        ),
        args![ws],
        token_row,
    )
}

pub(crate) fn revoke_token(
    c: &dyn Conn,
    ws: Option<WorkspaceId>,
    token: TokenRef<'_>,
) -> Result<TokenInfo> {
    let found = match token {
        TokenRef::Id(id) => c.row(
            &format!("SELECT {TOKEN_COLS} FROM tokens WHERE public_id = ?1"),
            args![id],
            token_row,
        )?,
        TokenRef::Hash(h) => c.row(
            &format!("SELECT {TOKEN_COLS} FROM tokens WHERE hash = ?1"),
            args![&h[..]],
            token_row,
        )?,
    };
    let mut t = found
        .filter(|t| ws.is_none_or(|ws| ws == t.workspace))
        .ok_or_else(|| MetaError::NotFound("token".into()))?;
    if ws.is_some() && t.admin {
        return Err(MetaError::PermissionDenied(
            "only an admin token may revoke an admin token".into(),
        ));
    }
    c.exec(
        "UPDATE tokens SET revoked = 1 WHERE public_id = ?1",
        args![&t.id],
    )?;
    t.revoked = true;
    Ok(t)
}

fn volume_row(r: &dyn Row) -> Result<Volume> {
    Ok(Volume {
        root: r.int(0)? as u64,
        id: r.text(1)?,
        workspace: r.int(2)?,
        name: r.text(3)?,
        created: r.int(4)?,
        app: r.opt_text(5)?.unwrap_or_default(),
        ephemeral: r.flag(6)?,
        snapshot_of: r.opt_text(7)?.unwrap_or_default(),
        max_bytes: r.int(8)?.max(0) as u64,
        max_files: r.int(9)?.max(0) as u64,
        file_trash_ms: r.int(10)?,
    })
}

const VOLUME_COLS: &str = "v.root, v.public_id, v.workspace, v.name, v.created, \
     (SELECT a.public_id FROM apps a WHERE a.id = v.app), v.ephemeral, \
     (SELECT s.public_id FROM volumes s WHERE s.root = v.snapshot_of), v.max_bytes, v.max_files, \
     v.file_trash";

pub(crate) fn volume(c: &dyn Conn, ws: WorkspaceId, key: &str) -> Result<Volume> {
    c.row(
        &format!(
            "SELECT {VOLUME_COLS} FROM volumes v \
             WHERE v.workspace = ?1 AND (v.name = ?2 OR v.public_id = ?2)"
        ),
        args![ws, key],
        volume_row,
    )?
    .ok_or_else(|| MetaError::NotFound(format!("volume {key}")))
}

/// Volumes (not snapshots) of workspace `ws`.
pub(crate) fn list_volumes(c: &dyn Conn, ws: WorkspaceId) -> Result<Vec<Volume>> {
    volumes_where(c, ws, "v.snapshot_of = ?2 ORDER BY v.ephemeral, v.name", 0)
}

/// Volumes of workspace `ws` that `cond` (with `?2` bound to `arg`) picks.
pub(crate) fn volumes_where(
    c: &dyn Conn,
    ws: WorkspaceId,
    cond: &str,
    arg: Ino,
) -> Result<Vec<Volume>> {
    c.rows(
        &format!("SELECT {VOLUME_COLS} FROM volumes v WHERE v.workspace = ?1 AND {cond}"),
        args![ws, arg as i64],
        volume_row,
    )
}

/// A new volume with an empty root directory, owned by app row `app`.
/// Without a name it is ephemeral and named by its id.
pub(crate) fn insert_volume(
    c: &dyn Conn,
    ws: WorkspaceId,
    name: Option<&str>,
    app: i64,
    now: Timespec,
) -> Result<Volume> {
    let root = SqlTx::new(c).insert_inode(
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
        None,
    )?;
    c.exec(
        "UPDATE inodes SET volume = ?1 WHERE ino = ?1",
        args![root as i64],
    )?;
    let id = super::new_id("vo");
    let name = name.unwrap_or(&id);
    c.exec(
        "INSERT INTO volumes(root, public_id, workspace, name, created, app, ephemeral) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        args![root as i64, &id, ws, name, now.sec, app, name == id],
    )?;
    volume(c, ws, &id)
}

pub(crate) fn rename_volume(
    c: &dyn Conn,
    ws: WorkspaceId,
    name: &str,
    new_name: &str,
) -> Result<Volume> {
    check_volume_name(new_name)?;
    let mut v = volume(c, ws, name)?;
    if !v.snapshot_of.is_empty() {
        return Err(MetaError::InvalidArgument(format!(
            "{} is a snapshot, named after its volume; rename the volume",
            v.name
        )));
    }
    if volume(c, ws, new_name).is_ok() {
        return Err(MetaError::AlreadyExists(format!("volume {new_name}")));
    }
    if v.ephemeral {
        return Err(MetaError::InvalidArgument(format!(
            "volume {name} is ephemeral: persist it to give it a name"
        )));
    }
    c.exec(
        "UPDATE volumes SET name = ?2 WHERE root = ?1",
        args![v.root as i64, new_name],
    )?;
    // Its snapshots are `name@snap`: they follow.
    c.exec(
        "UPDATE volumes SET name = ?2 || substr(name, CAST(?3 AS INTEGER)) WHERE snapshot_of = ?1",
        args![v.root as i64, new_name, v.name.len() as i64 + 1],
    )?;
    c.exec(
        "UPDATE apps SET name = ?2 WHERE public_id = ?1 AND kind = ?3",
        args![&v.app, new_name, AppKind::Volume as i64],
    )?;
    v.name = new_name.to_string();
    Ok(v)
}

pub(crate) fn delete_volume(
    c: &dyn Conn,
    ws: WorkspaceId,
    key: &str,
    retire: Retire,
) -> Result<Outcome<Volume>> {
    let v = volume(c, ws, key)?;
    let mut freed = Vec::new();
    super::trash::retire(c, v.root, retire, &mut freed)?;
    if !v.snapshot_of.is_empty() {
        // A snapshot's app is its volume's, which goes on.
        return Ok(Outcome::new(v, freed));
    }
    // A persisted volume's own app ends with it.
    c.exec(
        "UPDATE apps SET state = ?2 WHERE public_id = ?1 AND kind = ?3",
        args![&v.app, AppState::Stopped as i64, AppKind::Volume as i64],
    )?;
    Ok(Outcome::new(v, freed))
}

/// Deletes a volume (and its snapshots): its whole tree, its block
/// references and its sessions.
pub(crate) fn drop_volume(c: &dyn Conn, root: Ino, freed: &mut Freed) -> Result<()> {
    let vol = root as i64;
    let snapshots = c.rows(
        "SELECT root FROM volumes WHERE snapshot_of = ?1",
        args![vol],
        |r| r.int(0),
    )?;
    for s in snapshots {
        drop_volume(c, s as Ino, freed)?;
    }
    // What the feed says about the volume's files is moot now (and would
    // keep its space); every server ends its sessions of the volume when
    // the feed says it is gone.
    c.exec("DELETE FROM feed WHERE volume = ?1", args![vol])?;
    let ws = rows::volume_workspace(c, root)?;
    clear_tree(c, ws, root, freed)?;
    for sql in [
        "DELETE FROM sessions WHERE volume = ?1",
        "DELETE FROM volumes WHERE root = ?1",
    ] {
        c.exec(sql, args![vol])?;
    }
    // Last: on PostgreSQL the feed append orders the commit.
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

/// Deletes every inode of volume `root` (the root's too) with its names,
/// chunks (their block references dropped), xattrs, opens and locks; the
/// volume's row and sessions stay.
pub(crate) fn clear_tree(
    c: &dyn Conn,
    ws: WorkspaceId,
    root: Ino,
    freed: &mut Freed,
) -> Result<()> {
    let vol = root as i64;
    c.exec("DELETE FROM feed WHERE volume = ?1", args![vol])?;
    super::quota::tree_cleared(c, ws, root)?;
    let counts = c.rows(
        "SELECT hash, count(*) FROM chunks WHERE hash IS NOT NULL AND ino IN \
         (SELECT ino FROM inodes WHERE volume = ?1) GROUP BY hash",
        args![vol],
        |r| Ok((rows::to_hash(r.bytes(0)?)?, r.int(1)?)),
    )?;
    for (h, n) in counts {
        crate::tree::decref(&SqlTx::new(c), ws, &h, n, freed)?;
    }
    for sql in [
        "DELETE FROM chunks WHERE ino IN (SELECT ino FROM inodes WHERE volume = ?1)",
        "DELETE FROM xattrs WHERE ino IN (SELECT ino FROM inodes WHERE volume = ?1)",
        "DELETE FROM dentries WHERE parent IN (SELECT ino FROM inodes WHERE volume = ?1)",
        "DELETE FROM opens WHERE ino IN (SELECT ino FROM inodes WHERE volume = ?1)",
        "DELETE FROM locks WHERE ino IN (SELECT ino FROM inodes WHERE volume = ?1)",
        "DELETE FROM lock_waiters WHERE ino IN (SELECT ino FROM inodes WHERE volume = ?1)",
        "DELETE FROM lock_fences WHERE ino IN (SELECT ino FROM inodes WHERE volume = ?1)",
        "DELETE FROM file_trash WHERE volume = ?1",
        "DELETE FROM inodes WHERE volume = ?1",
    ] {
        c.exec(sql, args![vol])?;
    }
    Ok(())
}

pub(crate) fn stats(c: &dyn Conn) -> Result<StoreStats> {
    let count = |sql: &str| -> Result<u64> {
        Ok(c.row(sql, args![], |r| r.int(0))?.unwrap_or(0).max(0) as u64)
    };
    Ok(StoreStats {
        volumes: count("SELECT count(*) FROM volumes")?,
        logical_bytes: count(
            "SELECT CAST(coalesce(sum(size), 0) AS BIGINT) FROM inodes WHERE kind = 1",
        )?,
        blocks: count("SELECT count(*) FROM blocks")?,
        block_bytes: count("SELECT CAST(coalesce(sum(size), 0) AS BIGINT) FROM blocks")?,
        sessions: count("SELECT count(*) FROM sessions")?,
        locks_held: count("SELECT count(*) FROM locks")?,
        lock_waiters: count("SELECT count(*) FROM lock_waiters")?,
        feed_head: count("SELECT coalesce(max(seq), 0) FROM feed")?,
    })
}

pub(crate) fn volume_usage(c: &dyn Conn, vol: Ino) -> Result<VolumeUsage> {
    let (files, bytes) = c
        .row(
            "SELECT count(*), CAST(coalesce(sum(size), 0) AS BIGINT) FROM inodes \
             WHERE volume = ?1 AND kind = 1",
            args![vol as i64],
            |r| Ok((r.int(0)?, r.int(1)?)),
        )?
        .unwrap_or((0, 0));
    let (trash_files, trash_bytes) = c
        .row(
            "SELECT count(*), CAST(coalesce(sum(i.size), 0) AS BIGINT) FROM file_trash f \
             JOIN inodes i ON i.ino = f.ino WHERE f.volume = ?1 AND i.kind = 1",
            args![vol as i64],
            |r| Ok((r.int(0)?.max(0) as u64, r.int(1)?.max(0) as u64)),
        )?
        .unwrap_or((0, 0));
    // A volume in the trash is counted too (what purging it would free).
    let ws = c
        .int(
            "SELECT coalesce((SELECT workspace FROM volumes WHERE root = ?1), \
             (SELECT workspace FROM trash WHERE root = ?1), 0)",
            args![vol as i64],
        )?
        .unwrap_or(0);
    // Each distinct block once, found through the chunks' hash index.
    let blocks = c
        .row(
            "SELECT CAST(coalesce(sum(b.size), 0) AS BIGINT) FROM blocks b \
             WHERE b.workspace = ?1 AND b.hash IN (SELECT c.hash FROM chunks c \
             JOIN inodes i ON i.ino = c.ino WHERE i.volume = ?2 AND c.hash IS NOT NULL)",
            args![ws, vol as i64],
            |r| r.int(0),
        )?
        .unwrap_or(0)
        .max(0) as u64;
    Ok(VolumeUsage {
        bytes: (bytes.max(0) as u64).saturating_sub(trash_bytes),
        files: (files.max(0) as u64).saturating_sub(trash_files),
        trash_files,
        trash_bytes,
        stored_bytes: blocks + inline_bytes(c, ws, vol)?,
        inodes: c
            .int(
                "SELECT count(*) - 1 FROM inodes WHERE volume = ?1",
                args![vol as i64],
            )?
            .unwrap_or(0)
            .max(0) as u64,
    })
}
