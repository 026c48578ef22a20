//! The web dashboard: a workspace's apps (stop = the trash icon), volumes,
//! files (browse, download, upload, delete) and tokens, in server-rendered
//! HTML with auto-escaping and no JavaScript.
//!
//! It owns sign-in (a token exchanged for an HttpOnly, SameSite=Strict
//! session cookie), CSRF checks on every form, and the pages. It reaches
//! the data only as a client of the server, through the SDK with the
//! signed-in token — so a page sees exactly what that token may see over
//! gRPC, and no authorization is written twice. It must not depend on the
//! server's crates: `svol server` mounts this router beside its gRPC
//! service on the same port (same TLS, same loopback default).

mod files;
mod pages;
mod render;
mod session;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use axum::routing::{get, post};
use axum::Router;

/// Where the dashboard finds the server it is a client of.
#[derive(Debug, Clone, Default)]
pub struct DashboardConfig {
    /// The server's URL, set once it listens (`http://127.0.0.1:7420`).
    pub server: Arc<OnceLock<String>>,
    /// The CA that signed the server's certificate, when it serves TLS.
    pub ca: Option<PathBuf>,
    /// Mark cookies `Secure` (the server serves TLS).
    pub secure_cookies: bool,
}

pub(crate) struct Dashboard {
    cfg: DashboardConfig,
    sessions: session::Sessions,
    templates: render::Templates,
}

/// The dashboard's routes; every path outside them is the gRPC service's.
pub fn router(cfg: DashboardConfig) -> Router {
    let state = Arc::new(Dashboard {
        cfg,
        sessions: session::Sessions::default(),
        templates: render::Templates::new(),
    });
    Router::new()
        .route("/", get(pages::home))
        .route("/static/style.css", get(render::stylesheet))
        .route("/signin", get(session::signin_page).post(session::signin))
        .route("/signout", post(session::signout))
        .route("/apps", get(pages::apps))
        .route(
            "/apps/{id}/stop",
            get(pages::stop_confirm).post(pages::stop),
        )
        .route("/volumes", get(pages::volumes))
        .route("/volumes/{vol}/files", get(files::browse))
        .route("/volumes/{vol}/download", get(files::download))
        .route(
            "/volumes/{vol}/upload",
            post(files::upload).layer(axum::extract::DefaultBodyLimit::max(files::MAX_UPLOAD)),
        )
        .route(
            "/volumes/{vol}/delete",
            get(files::delete_confirm).post(files::delete),
        )
        .route("/tokens", get(pages::tokens).post(pages::create_token))
        .route("/admin", get(pages::admin))
        .route("/tokens/{id}/revoke", post(pages::revoke_token))
        .with_state(state)
}

type Shared = axum::extract::State<Arc<Dashboard>>;
