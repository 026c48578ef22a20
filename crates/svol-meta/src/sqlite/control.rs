//! Workspaces, tokens and volumes.

use rusqlite::{params, Connection, OptionalExtension};

use super::rows;
use super::tx::SqlTx;
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

pub(crate) fn list_workspaces(c: &Connection) -> Result<Vec<Workspace>> {
    let mut st = c.prepare("SELECT id, name FROM workspaces ORDER BY name")?;
    let v = st
        .query_map([], |r| {
            Ok(Workspace {
                id: r.get(0)?,
                name: r.get(1)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(v)
}

pub(crate) fn authenticate(c: &Connection, hash: &[u8; 32]) -> Result<Grant> {
    c.prepare_cached("SELECT workspace, admin FROM tokens WHERE hash = ?1 AND revoked = 0")?
        .query_row(params![&hash[..]], |r| {
            Ok(Grant {
                workspace: r.get(0)?,
                admin: r.get(1)?,
            })
        })
        .optional()?
        .ok_or_else(|| MetaError::PermissionDenied("unknown or revoked token".into()))
}

const TOKEN_COLS: &str = "public_id, workspace, label, admin, created, revoked";

fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenInfo> {
    Ok(TokenInfo {
        id: r.get(0)?,
        workspace: r.get(1)?,
        label: r.get(2)?,
        admin: r.get(3)?,
        created: r.get(4)?,
        revoked: r.get(5)?,
    })
}

pub(crate) fn add_token(
    c: &Connection,
    ws: WorkspaceId,
    hash: &[u8; 32],
    label: &str,
    admin: bool,
) -> Result<TokenInfo> {
    let id = super::new_id("tk");
    let now = Timespec::now().sec;
    c.execute(
        "INSERT INTO tokens(hash, workspace, label, public_id, admin, created) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![&hash[..], ws, label, id, admin, now],
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

pub(crate) fn list_tokens(c: &Connection, ws: WorkspaceId) -> Result<Vec<TokenInfo>> {
    let mut st = c.prepare(&format!(
        "SELECT {TOKEN_COLS} FROM tokens WHERE workspace = ?1 ORDER BY created, public_id"
    ))?;
    let v = st
        .query_map(params![ws], token_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(v)
}

pub(crate) fn revoke_token(
    c: &Connection,
    ws: Option<WorkspaceId>,
    token: TokenRef<'_>,
) -> Result<TokenInfo> {
    let found = match token {
        TokenRef::Id(id) => c
            .query_row(
                &format!("SELECT {TOKEN_COLS} FROM tokens WHERE public_id = ?1"),
                params![id],
                token_row,
            )
            .optional()?,
        TokenRef::Hash(h) => c
            .query_row(
                &format!("SELECT {TOKEN_COLS} FROM tokens WHERE hash = ?1"),
                params![&h[..]],
                token_row,
            )
            .optional()?,
    };
    let mut t = found
        .filter(|t| ws.is_none_or(|ws| ws == t.workspace))
        .ok_or_else(|| MetaError::NotFound("token".into()))?;
    if ws.is_some() && t.admin {
        return Err(MetaError::PermissionDenied(
            "only an admin token may revoke an admin token".into(),
        ));
    }
    c.execute(
        "UPDATE tokens SET revoked = 1 WHERE public_id = ?1",
        params![t.id],
    )?;
    t.revoked = true;
    Ok(t)
}

fn volume_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Volume> {
    Ok(Volume {
        root: r.get::<_, i64>(0)? as u64,
        id: r.get(1)?,
        workspace: r.get(2)?,
        name: r.get(3)?,
        created: r.get(4)?,
        app: r.get::<_, Option<String>>(5)?.unwrap_or_default(),
        ephemeral: r.get(6)?,
    })
}

const VOLUME_COLS: &str = "v.root, v.public_id, v.workspace, v.name, v.created, \
     (SELECT a.public_id FROM apps a WHERE a.id = v.app), v.ephemeral";

pub(crate) fn volume(c: &Connection, ws: WorkspaceId, key: &str) -> Result<Volume> {
    c.prepare_cached(&format!(
        "SELECT {VOLUME_COLS} FROM volumes v WHERE v.workspace = ?1 AND (v.name = ?2 OR v.public_id = ?2)"
    ))?
    .query_row(params![ws, key], volume_row)
    .optional()?
    .ok_or_else(|| MetaError::NotFound(format!("volume {key}")))
}

pub(crate) fn list_volumes(c: &Connection, ws: WorkspaceId) -> Result<Vec<Volume>> {
    let mut st = c.prepare(&format!(
        "SELECT {VOLUME_COLS} FROM volumes v WHERE v.workspace = ?1 ORDER BY v.ephemeral, v.name"
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
    let app = super::apps::insert_app(c, ws, name, AppKind::Volume, now.sec * 1000)?;
    insert_volume(c, ws, Some(name), app, now)
}

/// A new volume with an empty root directory, owned by app row `app`.
/// Without a name it is ephemeral and named by its id.
pub(crate) fn insert_volume(
    c: &Connection,
    ws: WorkspaceId,
    name: Option<&str>,
    app: i64,
    now: Timespec,
) -> Result<Volume> {
    let root = SqlTx(c).insert_inode(
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
    let name = name.unwrap_or(&id);
    c.execute(
        "INSERT INTO volumes(root, public_id, workspace, name, created, app, ephemeral) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![root as i64, id, ws, name, now.sec, app, name == id],
    )?;
    volume(c, ws, &id)
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
    if v.ephemeral {
        return Err(MetaError::InvalidArgument(format!(
            "volume {name} is ephemeral: persist it to give it a name"
        )));
    }
    c.execute(
        "UPDATE volumes SET name = ?2 WHERE root = ?1",
        params![v.root as i64, new_name],
    )?;
    c.execute(
        "UPDATE apps SET name = ?2 WHERE public_id = ?1 AND kind = ?3",
        params![v.app, new_name, AppKind::Volume as i64],
    )?;
    v.name = new_name.to_string();
    Ok(v)
}

pub(crate) fn delete_volume(c: &Connection, ws: WorkspaceId, key: &str) -> Result<Outcome<Volume>> {
    let v = volume(c, ws, key)?;
    let mut freed = Vec::new();
    drop_volume(c, v.root, &mut freed)?;
    // A persisted volume's own app ends with it.
    c.execute(
        "UPDATE apps SET state = ?2 WHERE public_id = ?1 AND kind = ?3",
        params![v.app, AppState::Stopped as i64, AppKind::Volume as i64],
    )?;
    Ok(Outcome::new(v, freed))
}

/// Deletes a volume's whole tree and drops its block references.
pub(crate) fn drop_volume(c: &Connection, root: Ino, freed: &mut Freed) -> Result<()> {
    let vol = root as i64;
    // What the feed says about the volume's files is moot now (and would
    // keep its space); every server ends its sessions of the volume when
    // the feed says it is gone.
    c.execute("DELETE FROM feed WHERE volume = ?1", params![vol])?;
    super::feed::append(
        c,
        &FeedEntry {
            volume: root,
            volume_deleted: true,
            ..Default::default()
        },
    )?;
    let ws = rows::volume_workspace(c, root)?;
    let counts: Vec<(Vec<u8>, i64)> = c
        .prepare(
            "SELECT hash, count(*) FROM chunks WHERE hash IS NOT NULL AND ino IN \
             (SELECT ino FROM inodes WHERE volume = ?1) GROUP BY hash",
        )?
        .query_map(params![vol], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (h, n) in counts {
        crate::tree::decref(&super::tx::SqlTx(c), ws, &rows::to_hash(h)?, n, freed)?;
    }
    for sql in [
        "DELETE FROM chunks WHERE ino IN (SELECT ino FROM inodes WHERE volume = ?1)",
        "DELETE FROM xattrs WHERE ino IN (SELECT ino FROM inodes WHERE volume = ?1)",
        "DELETE FROM dentries WHERE parent IN (SELECT ino FROM inodes WHERE volume = ?1)",
        "DELETE FROM opens WHERE ino IN (SELECT ino FROM inodes WHERE volume = ?1)",
        "DELETE FROM locks WHERE ino IN (SELECT ino FROM inodes WHERE volume = ?1)",
        "DELETE FROM lock_waiters WHERE ino IN (SELECT ino FROM inodes WHERE volume = ?1)",
        "DELETE FROM lock_fences WHERE ino IN (SELECT ino FROM inodes WHERE volume = ?1)",
        "DELETE FROM sessions WHERE volume = ?1",
        "DELETE FROM inodes WHERE volume = ?1",
        "DELETE FROM volumes WHERE root = ?1",
    ] {
        c.execute(sql, params![vol])?;
    }
    Ok(())
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
