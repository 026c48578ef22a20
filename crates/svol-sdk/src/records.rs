//! What the control plane lists — volumes, apps, workspaces, tokens, live
//! clients, the trash — as the SDK's own records. They are plain data, so
//! each mirrors its wire message field for field; the one place that
//! knows both is the conversion here.

use svol_proto as p;

/// A record with the same fields as wire message `p::$name`, and the
/// conversion from it.
macro_rules! record {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $f:ident: $t:ty,)* }) => {
        $(#[$m])*
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct $name {
            $($(#[$fm])* pub $f: $t,)*
        }

        impl From<p::$name> for $name {
            fn from(w: p::$name) -> Self {
                Self { $($f: w.$f,)* }
            }
        }
    };
}

record! {
    /// A volume (or a snapshot of one).
    VolumeInfo {
        id: String,
        name: String,
        created_unix: i64,
        bytes: u64,
        files: u64,
        root_ino: u64,
        /// The owning app's id.
        app: String,
        /// Deleted with its app.
        ephemeral: bool,
        /// What its files take after dedup: each distinct block once, plus
        /// small files kept inline.
        stored_bytes: u64,
        /// A snapshot: the id of the volume it was taken of (read-only).
        snapshot_of: String,
        /// Quotas (0: none), on `inodes` and `stored_bytes`.
        max_bytes: u64,
        max_files: u64,
        inodes: u64,
        /// How long removed files are kept (0: not kept), and what its
        /// trash holds now.
        file_trash_seconds: u64,
        trash_files: u64,
        trash_bytes: u64,
    }
}

record! {
    /// An app: a running job (`kind` "app") or a persisted volume's owner
    /// (`kind` "volume"); `state` "running" or "stopped".
    AppInfo {
        id: String,
        name: String,
        kind: String,
        state: String,
        volumes: Vec<String>,
        created_unix: i64,
    }
}

record! {
    /// A workspace, with the counts an admin's listing shows.
    WorkspaceInfo {
        name: String,
        volumes: u64,
        running_apps: u64,
        files: u64,
        logical_bytes: u64,
        /// Its distinct blocks plus inline data: its share of the disk.
        stored_bytes: u64,
        sessions: u64,
        created_unix: i64,
        /// Quotas (0: none).
        max_bytes: u64,
        max_files: u64,
        /// Inodes of its volumes (what `max_files` limits).
        inodes: u64,
    }
}

record! {
    /// A token as listed (never the secret itself).
    TokenInfo {
        id: String,
        label: String,
        admin: bool,
        created_unix: i64,
        revoked: bool,
        workspace: String,
    }
}

record! {
    /// Who the caller's token is.
    Identity {
        workspace: String,
        /// tk-…; empty for the server's bootstrap token.
        token_id: String,
        token_label: String,
        admin: bool,
    }
}

record! {
    /// One live client (a mount's session): `session` is a short tag of
    /// its id, `host` and `purpose` what it said of itself, `peer` the
    /// address the server saw.
    ClientInfo {
        session: String,
        workspace: String,
        volume: String,
        volume_name: String,
        /// The app its lease keeps running.
        app: String,
        host: String,
        purpose: String,
        peer: String,
        since_unix: i64,
        lease_until_unix: i64,
    }
}

record! {
    /// A deleted volume the trash keeps until `purge_unix`.
    TrashedVolume {
        id: String,
        /// As it was (`vol@snap` for a snapshot).
        name: String,
        ephemeral: bool,
        snapshot_of: String,
        deleted_unix: i64,
        purge_unix: i64,
        bytes: u64,
        files: u64,
        stored_bytes: u64,
    }
}

/// The caller's trash of deleted volumes, and how long the server keeps
/// them (0: no trash).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trash {
    pub volumes: Vec<TrashedVolume>,
    pub retention_seconds: u64,
}

impl From<p::ListTrashResponse> for Trash {
    fn from(t: p::ListTrashResponse) -> Self {
        Self {
            volumes: t.volumes.into_iter().map(Into::into).collect(),
            retention_seconds: t.retention_seconds,
        }
    }
}

/// A token just made: its secret (shown this once; the server keeps only
/// its hash), workspace and id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewToken {
    pub token: String,
    pub workspace: String,
    pub id: String,
}

impl From<p::CreateTokenResponse> for NewToken {
    fn from(t: p::CreateTokenResponse) -> Self {
        Self {
            token: t.token,
            workspace: t.workspace,
            id: t.id,
        }
    }
}
