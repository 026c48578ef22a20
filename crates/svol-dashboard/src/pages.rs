//! Apps (with stop, the trash icon), volumes and tokens of the signed-in
//! workspace.

use std::collections::HashMap;

use axum::extract::{Form, Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Serialize;

use crate::render::{page, PageError};
use crate::session::{CsrfForm, Signed};
use crate::Shared;

type PageResult = Result<Response, PageError>;

pub(crate) async fn home(_signed: Signed) -> Response {
    Redirect::to("/apps").into_response()
}

#[derive(Serialize)]
struct VolumeRow {
    id: String,
    name: String,
    ephemeral: bool,
    bytes: u64,
    stored_bytes: u64,
    files: u64,
    created: i64,
    app: String,
}

impl From<&svol_sdk::VolumeInfo> for VolumeRow {
    fn from(v: &svol_sdk::VolumeInfo) -> Self {
        VolumeRow {
            id: v.id.clone(),
            name: v.name.clone(),
            ephemeral: v.ephemeral,
            bytes: v.bytes,
            stored_bytes: v.stored_bytes,
            files: v.files,
            created: v.created_unix,
            app: v.app.clone(),
        }
    }
}

#[derive(Serialize)]
struct AppRow {
    id: String,
    name: String,
    kind: String,
    state: String,
    created: i64,
    volumes: Vec<VolumeRow>,
    clients: Vec<ClientRow>,
}

/// A live client: a mount or `svol run` holding a lease.
#[derive(Serialize, Clone)]
struct ClientRow {
    session: String,
    workspace: String,
    volume: String,
    volume_name: String,
    host: String,
    purpose: String,
    peer: String,
    since: i64,
}

impl From<&svol_sdk::ClientInfo> for ClientRow {
    fn from(c: &svol_sdk::ClientInfo) -> Self {
        ClientRow {
            session: c.session.clone(),
            workspace: c.workspace.clone(),
            volume: c.volume.clone(),
            volume_name: c.volume_name.clone(),
            host: c.host.clone(),
            purpose: c.purpose.clone(),
            peer: c.peer.clone(),
            since: c.since_unix,
        }
    }
}

async fn app_rows(s: &Signed) -> Result<Vec<AppRow>, PageError> {
    let (apps, vols, clients) = tokio::try_join!(
        s.client.list_apps(),
        s.client.list_volumes(),
        s.client.list_sessions(false)
    )?;
    let by_id: HashMap<&str, &svol_sdk::VolumeInfo> =
        vols.iter().map(|v| (v.id.as_str(), v)).collect();
    let mut by_app: HashMap<&str, Vec<ClientRow>> = HashMap::new();
    for c in &clients {
        by_app.entry(c.app.as_str()).or_default().push(c.into());
    }
    let mut rows: Vec<AppRow> = apps
        .iter()
        .map(|a| AppRow {
            id: a.id.clone(),
            name: a.name.clone(),
            kind: a.kind.clone(),
            state: a.state.clone(),
            created: a.created_unix,
            volumes: a
                .volumes
                .iter()
                .filter_map(|id| by_id.get(id.as_str()).map(|v| VolumeRow::from(*v)))
                .collect(),
            clients: by_app.get(a.id.as_str()).cloned().unwrap_or_default(),
        })
        .collect();
    // Running first, then newest first.
    rows.sort_by(|a, b| {
        (a.state != "running", -a.created).cmp(&(b.state != "running", -b.created))
    });
    Ok(rows)
}

pub(crate) async fn apps(State(d): Shared, s: Signed) -> PageResult {
    let apps = app_rows(&s).await?;
    Ok(page(&d, "apps.html", context! { apps, ..s.base("apps") }))
}

pub(crate) async fn stop_confirm(
    State(d): Shared,
    s: Signed,
    Path(id): Path<String>,
) -> PageResult {
    let app = app_rows(&s)
        .await?
        .into_iter()
        .find(|a| a.id == id)
        .ok_or_else(|| PageError::NotFound(format!("app {id}: not found")))?;
    let retention = s.client.list_trash().await?.retention_seconds;
    let bytes: u64 = app.volumes.iter().map(|v| v.bytes).sum();
    let stored: u64 = app.volumes.iter().map(|v| v.stored_bytes).sum();
    let files: u64 = app.volumes.iter().map(|v| v.files).sum();
    Ok(page(
        &d,
        "stop.html",
        context! { app, bytes, stored, files, retention, ..s.base("apps") },
    ))
}

pub(crate) async fn stop(s: Signed, Path(id): Path<String>, Form(f): Form<CsrfForm>) -> PageResult {
    s.check(&f.csrf)?;
    s.client.stop_app(&id).await?;
    Ok(Redirect::to("/apps").into_response())
}

pub(crate) async fn volumes(State(d): Shared, s: Signed) -> PageResult {
    let mut vols: Vec<VolumeRow> = s
        .client
        .list_volumes()
        .await?
        .iter()
        .map(VolumeRow::from)
        .collect();
    vols.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(page(
        &d,
        "volumes.html",
        context! { volumes => vols, ..s.base("volumes") },
    ))
}

#[derive(Serialize)]
struct TokenRow {
    id: String,
    label: String,
    admin: bool,
    created: i64,
    revoked: bool,
    workspace: String,
}

async fn tokens_page(
    d: &crate::Dashboard,
    s: &Signed,
    created: Option<(String, String)>,
) -> PageResult {
    let tokens: Vec<TokenRow> = s
        .client
        .list_tokens()
        .await?
        .into_iter()
        .map(|t| TokenRow {
            id: t.id,
            label: t.label,
            admin: t.admin,
            created: t.created_unix,
            revoked: t.revoked,
            workspace: t.workspace,
        })
        .collect();
    let (new_id, new_secret) = created.unzip();
    Ok(page(
        d,
        "tokens.html",
        context! { tokens, new_id, new_secret, ..s.base("tokens") },
    ))
}

pub(crate) async fn tokens(State(d): Shared, s: Signed) -> PageResult {
    tokens_page(&d, &s, None).await
}

#[derive(serde::Deserialize)]
pub(crate) struct NewToken {
    csrf: String,
    label: String,
}

/// The secret is shown once, in this response only (never in a URL).
pub(crate) async fn create_token(
    State(d): Shared,
    s: Signed,
    Form(f): Form<NewToken>,
) -> PageResult {
    s.check(&f.csrf)?;
    let label = f.label.trim();
    if label.is_empty() || label.len() > 128 || label.chars().any(char::is_control) {
        return Err(PageError::BadRequest(
            "a token's label is 1 to 128 printable characters".into(),
        ));
    }
    let made = s.client.create_token(label, None, false).await?;
    tokens_page(&d, &s, Some((made.id, made.token))).await
}

pub(crate) async fn revoke_token(
    s: Signed,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> PageResult {
    s.check(&f.csrf)?;
    if !id.starts_with("tk-") {
        return Err(PageError::BadRequest(
            "tokens are revoked by id (tk-…)".into(),
        ));
    }
    s.client.revoke_token(&id).await?;
    Ok(Redirect::to("/tokens").into_response())
}

#[derive(Serialize)]
struct WorkspaceRow {
    name: String,
    volumes: u64,
    running_apps: u64,
    files: u64,
    logical_bytes: u64,
    stored_bytes: u64,
    sessions: u64,
    created: i64,
}

/// Every workspace and every live client: for admin tokens only. Others
/// get the same 404 as any page that is not there.
pub(crate) async fn admin(State(d): Shared, s: Signed) -> PageResult {
    if !s.me.admin {
        return Err(PageError::NotFound("no such page".into()));
    }
    let (workspaces, clients) =
        tokio::try_join!(s.client.list_workspaces(), s.client.list_sessions(true))?;
    let workspaces: Vec<WorkspaceRow> = workspaces
        .into_iter()
        .map(|w| WorkspaceRow {
            name: w.name,
            volumes: w.volumes,
            running_apps: w.running_apps,
            files: w.files,
            logical_bytes: w.logical_bytes,
            stored_bytes: w.stored_bytes,
            sessions: w.sessions,
            created: w.created_unix,
        })
        .collect();
    let clients: Vec<ClientRow> = clients.iter().map(ClientRow::from).collect();
    Ok(page(
        &d,
        "admin.html",
        context! { workspaces, clients, ..s.base("admin") },
    ))
}
