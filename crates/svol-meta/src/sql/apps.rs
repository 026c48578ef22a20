//! Apps and the lifetimes of the volumes they own.

use super::control::{self, check_volume_name};
use super::{args, Conn, ConnExt, Row};
use crate::types::*;
use crate::{App, AppKind, AppState, MetaError, Result};

/// Inserts a running app and returns its row id.
pub(crate) fn insert_app(
    c: &dyn Conn,
    ws: WorkspaceId,
    name: &str,
    kind: AppKind,
    now_ms: i64,
) -> Result<i64> {
    c.int(
        "INSERT INTO apps(public_id, workspace, name, kind, state, created, last_active) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
        args![
            &super::new_id("ap"),
            ws,
            name,
            kind as i64,
            AppState::Running as i64,
            now_ms / 1000,
            now_ms
        ],
    )?
    .ok_or_else(|| MetaError::Backend("insert returned no app".into()))
}

pub(crate) fn create_app(c: &dyn Conn, ws: WorkspaceId, name: &str, now_ms: i64) -> Result<App> {
    if name.len() > 128 || name.contains(['\0', '\n']) {
        return Err(MetaError::InvalidArgument(format!(
            "invalid app name {name:?}: at most 128 bytes, no NUL or newline"
        )));
    }
    let row = insert_app(c, ws, name, AppKind::App, now_ms)?;
    app_by_row(c, row)
}

const APP_COLS: &str = "id, public_id, workspace, name, kind, state, created";

/// An app from `APP_COLS`, without its volumes (see `with_volumes`).
fn app_row(r: &dyn Row) -> Result<(i64, App)> {
    Ok((
        r.int(0)?,
        App {
            id: r.text(1)?,
            workspace: r.int(2)?,
            name: r.text(3)?,
            kind: AppKind::from_i64(r.int(4)?),
            state: AppState::from_i64(r.int(5)?),
            created: r.int(6)?,
            volumes: Vec::new(),
        },
    ))
}

fn with_volumes(c: &dyn Conn, (row, mut app): (i64, App)) -> Result<App> {
    app.volumes = c.rows(
        "SELECT public_id FROM volumes WHERE app = ?1 ORDER BY created, public_id",
        args![row],
        |r| r.text(0),
    )?;
    Ok(app)
}

fn app_by_row(c: &dyn Conn, row: i64) -> Result<App> {
    let found = c.row(
        &format!("SELECT {APP_COLS} FROM apps WHERE id = ?1"),
        args![row],
        app_row,
    )?;
    with_volumes(
        c,
        found.ok_or_else(|| MetaError::NotFound(format!("app row {row}")))?,
    )
}

/// Row id and state of app `id` of workspace `ws`.
fn find(c: &dyn Conn, ws: WorkspaceId, id: &str) -> Result<(i64, AppState)> {
    c.row(
        "SELECT id, state FROM apps WHERE workspace = ?1 AND public_id = ?2",
        args![ws, id],
        |r| Ok((r.int(0)?, AppState::from_i64(r.int(1)?))),
    )?
    .ok_or_else(|| MetaError::NotFound(format!("app {id}")))
}

/// Row id of a running app; `Stale` once it stopped.
fn running(c: &dyn Conn, ws: WorkspaceId, id: &str) -> Result<i64> {
    match find(c, ws, id)? {
        (row, AppState::Running) => Ok(row),
        (_, AppState::Stopped) => Err(MetaError::Stale(format!("app {id} is stopped"))),
    }
}

pub(crate) fn app(c: &dyn Conn, ws: WorkspaceId, id: &str) -> Result<App> {
    app_by_row(c, find(c, ws, id)?.0)
}

pub(crate) fn list_apps(c: &dyn Conn, ws: WorkspaceId) -> Result<Vec<App>> {
    c.rows(
        &format!("SELECT {APP_COLS} FROM apps WHERE workspace = ?1 ORDER BY id DESC"),
        args![ws],
        app_row,
    )?
    .into_iter()
    .map(|a| with_volumes(c, a))
    .collect()
}

fn stop_row(c: &dyn Conn, row: i64, retire: Retire, freed: &mut Freed) -> Result<()> {
    // Snapshots go with their volumes.
    let roots = c.rows(
        "SELECT root FROM volumes WHERE app = ?1 AND snapshot_of = 0",
        args![row],
        |r| r.int(0),
    )?;
    for root in roots {
        super::trash::retire(c, root as u64, retire, freed)?;
    }
    c.exec(
        "UPDATE apps SET state = ?2 WHERE id = ?1",
        args![row, AppState::Stopped as i64],
    )?;
    Ok(())
}

pub(crate) fn stop_app(
    c: &dyn Conn,
    ws: WorkspaceId,
    id: &str,
    retire: Retire,
) -> Result<Outcome<App>> {
    let (row, _) = find(c, ws, id)?;
    let mut freed = Vec::new();
    stop_row(c, row, retire, &mut freed)?;
    Ok(Outcome::new(app_by_row(c, row)?, freed))
}

pub(crate) fn stop_idle_apps(
    c: &dyn Conn,
    now_ms: i64,
    grace_ms: i64,
    keep_ms: i64,
) -> Result<Outcome<Vec<App>>> {
    let retire = Retire { now_ms, keep_ms };
    let rows = c.rows(
        "SELECT id FROM apps a WHERE state = ?1 AND kind = ?2 AND last_active < ?3 \
         AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.app = a.id OR s.volume IN \
             (SELECT root FROM volumes v WHERE v.app = a.id))",
        args![
            AppState::Running as i64,
            AppKind::App as i64,
            now_ms - grace_ms
        ],
        |r| r.int(0),
    )?;
    let mut freed = Vec::new();
    let mut stopped = Vec::new();
    for row in rows {
        stop_row(c, row, retire, &mut freed)?;
        stopped.push(app_by_row(c, row)?);
    }
    Ok(Outcome::new(stopped, freed))
}

/// A persisted, named volume, owned by an app of kind `Volume` of its own.
pub(crate) fn create_volume(
    c: &dyn Conn,
    ws: WorkspaceId,
    name: &str,
    now: Timespec,
) -> Result<Volume> {
    check_volume_name(name)?;
    if control::volume(c, ws, name).is_ok() {
        return Err(MetaError::AlreadyExists(format!("volume {name}")));
    }
    let app = insert_app(c, ws, name, AppKind::Volume, now.sec * 1000)?;
    control::insert_volume(c, ws, Some(name), app, now)
}

pub(crate) fn create_ephemeral_volume(
    c: &dyn Conn,
    ws: WorkspaceId,
    app: &str,
    now: Timespec,
) -> Result<Volume> {
    let row = running(c, ws, app)?;
    control::insert_volume(c, ws, None, row, now)
}

pub(crate) fn persist_volume(
    c: &dyn Conn,
    ws: WorkspaceId,
    id: &str,
    name: &str,
    now: Timespec,
) -> Result<Volume> {
    check_volume_name(name)?;
    let v = control::volume(c, ws, id)?;
    if !v.ephemeral {
        if v.name == name {
            return Ok(v);
        }
        return Err(MetaError::AlreadyExists(format!(
            "volume {id} is already persisted as {}",
            v.name
        )));
    }
    if control::volume(c, ws, name).is_ok() {
        return Err(MetaError::AlreadyExists(format!("volume {name}")));
    }
    let app = insert_app(c, ws, name, AppKind::Volume, now.sec * 1000)?;
    c.exec(
        "UPDATE volumes SET name = ?2, app = ?3, ephemeral = 0 WHERE root = ?1",
        args![v.root as i64, name, app],
    )?;
    control::volume(c, ws, &v.id)
}

/// The app row a new session on `vol` keeps alive (besides the app that
/// owns `vol`, which every session on it keeps alive).
pub(crate) fn session_app(c: &dyn Conn, ws: WorkspaceId, vol: Ino, app: &str) -> Result<i64> {
    if !app.is_empty() {
        return running(c, ws, app);
    }
    Ok(c.int(
        "SELECT app FROM volumes WHERE root = ?1 AND workspace = ?2",
        args![vol as i64, ws],
    )?
    .unwrap_or(0))
}

/// The apps whose last session just ended start their idle clock now.
pub(crate) fn touch_session_apps(c: &dyn Conn, session: &str, now_ms: i64) -> Result<()> {
    c.exec(
        "UPDATE apps SET last_active = CASE WHEN last_active > ?2 THEN last_active ELSE ?2 END \
         WHERE id IN (SELECT app FROM sessions WHERE id = ?1 UNION \
          SELECT v.app FROM volumes v JOIN sessions s ON s.volume = v.root WHERE s.id = ?1)",
        args![session, now_ms],
    )?;
    Ok(())
}
