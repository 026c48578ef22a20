//! Who may do what, and how long things live: tokens and their grants,
//! apps and their states.

use crate::types::WorkspaceId;

/// What a valid token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    pub workspace: WorkspaceId,
    /// May create workspaces and tokens for any workspace.
    pub admin: bool,
}

/// Who a session belongs to: the workspace and the (hashed) token that
/// opened it. Only the same token may resume it or act through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionOwner {
    pub workspace: WorkspaceId,
    pub token: [u8; 32],
}

/// A live session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub owner: SessionOwner,
    /// Root inode of the volume the session is on.
    pub volume: u64,
    pub expires_ms: i64,
    /// Rises each time the session is resumed.
    pub generation: u64,
}

/// What a client says of itself when it opens a session, and what the
/// server saw: shown to people (the dashboard's live clients), never
/// trusted for anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionClient {
    pub host: String,
    /// `mount /mnt/x`, `run python train.py`.
    pub purpose: String,
    /// The address the connection came from.
    pub peer: String,
    pub started_ms: i64,
}

/// A session whose lease still runs, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSession {
    pub id: String,
    pub workspace: WorkspaceId,
    /// Public ids of the volume it is on and the app its lease keeps.
    pub volume: String,
    pub volume_name: String,
    pub app: String,
    pub client: SessionClient,
    pub expires_ms: i64,
}

/// A stored token (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// Public id (`tk-…`), what `token list` shows and `token revoke` takes.
    pub id: String,
    pub workspace: WorkspaceId,
    pub label: String,
    pub admin: bool,
    pub created: i64,
    pub revoked: bool,
}

/// Names a token for revocation.
#[derive(Debug, Clone, Copy)]
pub enum TokenRef<'a> {
    Id(&'a str),
    Hash(&'a [u8; 32]),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppKind {
    /// Made by `app create` or `svol run`; stops when told or when idle.
    App = 1,
    /// The app a persisted volume is shown as; stopping it deletes the volume.
    Volume = 2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppState {
    Running = 1,
    Stopped = 2,
}

impl AppKind {
    /// From the stored integer (anything unknown reads as `App`).
    pub fn from_i64(v: i64) -> Self {
        if v == Self::Volume as i64 {
            Self::Volume
        } else {
            Self::App
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::App => "app",
            Self::Volume => "volume",
        }
    }
}

impl AppState {
    /// From the stored integer (anything unknown reads as `Stopped`).
    pub fn from_i64(v: i64) -> Self {
        if v == Self::Running as i64 {
            Self::Running
        } else {
            Self::Stopped
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Stopped => "stopped",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    /// Public id (`ap-…`).
    pub id: String,
    pub workspace: WorkspaceId,
    pub name: String,
    pub kind: AppKind,
    pub state: AppState,
    pub created: i64,
    /// Public ids of the volumes the app owns now (none once stopped).
    pub volumes: Vec<String>,
}
