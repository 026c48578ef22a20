//! Control-plane calls of a [`Client`]: volumes, workspaces, tokens, apps.

use svol_proto as p;

use std::time::Duration;

use crate::records::{
    AppInfo, ClientInfo, Identity, NewToken, TokenInfo, Trash, VolumeInfo, WorkspaceInfo,
};
use crate::{
    check_remote_path, check_volume_name, check_volume_ref, Client, ClientError, FileKind, Result,
    Volume,
};

fn ctx<T>(r: std::result::Result<tonic::Response<T>, tonic::Status>, what: &str) -> Result<T> {
    r.map(|r| r.into_inner())
        .map_err(|e| ClientError::from(e).context(what))
}

/// [`ctx`], the reply converted to the SDK's record.
fn ctx_into<T, U: From<T>>(
    r: std::result::Result<tonic::Response<T>, tonic::Status>,
    what: &str,
) -> Result<U> {
    ctx(r, what).map(U::from)
}

/// Checks an app id before it goes on the wire.
pub(crate) fn check_app_id(id: &str) -> Result<()> {
    let ok = id.starts_with("ap-")
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ClientError::InvalidArgument(format!(
            "invalid app id {id:?}: app ids look like ap-0123456789abcdef"
        )))
    }
}

/// A file a volume's trash keeps (see [`Client::list_deleted_files`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeletedFile {
    /// Picks this deletion alone (`DeletedPick::id`).
    pub id: i64,
    /// From the volume's root, no leading slash.
    pub path: bytes::Bytes,
    pub kind: FileKind,
    pub size: u64,
    pub deleted_unix_ms: i64,
    /// When it is dropped for good.
    pub purge_unix_ms: i64,
}

impl Client {
    /// Creates a persisted, named volume.
    pub async fn create_volume(&self, name: &str) -> Result<VolumeInfo> {
        check_volume_name(name)?;
        let req = p::CreateVolumeRequest {
            name: name.into(),
            ephemeral_app: String::new(),
        };
        ctx_into(
            self.rpc().create_volume(self.req(req)).await,
            &format!("volume {name}"),
        )
    }

    /// Creates an unnamed volume that lives as long as app `app`.
    pub async fn create_ephemeral_volume(&self, app: &str) -> Result<VolumeInfo> {
        check_app_id(app)?;
        let req = p::CreateVolumeRequest {
            name: String::new(),
            ephemeral_app: app.into(),
        };
        ctx_into(
            self.rpc().create_volume(self.req(req)).await,
            &format!("app {app}"),
        )
    }

    /// Names ephemeral volume `id` and makes it outlive its app.
    pub async fn persist_volume(&self, id: &str, name: &str) -> Result<VolumeInfo> {
        check_volume_name(id)?;
        check_volume_name(name)?;
        let req = p::PersistVolumeRequest {
            volume: id.into(),
            name: name.into(),
        };
        ctx_into(
            self.rpc().persist_volume(self.req(req)).await,
            &format!("volume {id}"),
        )
    }

    pub async fn list_volumes(&self) -> Result<Vec<VolumeInfo>> {
        Ok(self
            .rpc()
            .list_volumes(self.req(p::ListVolumesRequest {}))
            .await?
            .into_inner()
            .volumes
            .into_iter()
            .map(Into::into)
            .collect())
    }

    pub async fn volume_info(&self, name: &str) -> Result<VolumeInfo> {
        check_volume_ref(name)?;
        let req = p::GetVolumeRequest { name: name.into() };
        ctx_into(
            self.rpc().get_volume(self.req(req)).await,
            &format!("volume {name}"),
        )
    }

    /// Deletes volume `name` (to the server's trash, with its snapshots).
    /// Refused while a client has it mounted unless `force`: then their
    /// calls fail from now on.
    pub async fn delete_volume(&self, name: &str, force: bool) -> Result<()> {
        check_volume_ref(name)?;
        let req = p::DeleteVolumeRequest {
            name: name.into(),
            force,
        };
        ctx(
            self.rpc().delete_volume(self.req(req)).await,
            &format!("volume {name}"),
        )?;
        Ok(())
    }

    pub async fn rename_volume(&self, name: &str, new_name: &str) -> Result<VolumeInfo> {
        check_volume_name(name)?;
        check_volume_name(new_name)?;
        let req = p::RenameVolumeRequest {
            name: name.into(),
            new_name: new_name.into(),
        };
        ctx_into(
            self.rpc().rename_volume(self.req(req)).await,
            &format!("volume {name}"),
        )
    }

    /// Snapshot `snapshot` of volume `name` (read-only `name@snapshot`).
    pub async fn snapshot_volume(&self, name: &str, snapshot: &str) -> Result<VolumeInfo> {
        check_volume_name(name)?;
        check_volume_name(snapshot)?;
        let req = p::SnapshotRequest {
            volume: name.into(),
            snapshot: snapshot.into(),
        };
        ctx_into(
            self.rpc().snapshot_volume(self.req(req)).await,
            &format!("volume {name}"),
        )
    }

    /// The snapshots of volume `name`, oldest first.
    pub async fn list_snapshots(&self, name: &str) -> Result<Vec<VolumeInfo>> {
        check_volume_name(name)?;
        let req = p::GetVolumeRequest { name: name.into() };
        Ok(ctx(
            self.rpc().list_snapshots(self.req(req)).await,
            &format!("volume {name}"),
        )?
        .volumes
        .into_iter()
        .map(Into::into)
        .collect())
    }

    /// Puts snapshot `snapshot`'s tree in place of volume `name`'s.
    pub async fn restore_volume(&self, name: &str, snapshot: &str) -> Result<VolumeInfo> {
        check_volume_name(name)?;
        check_volume_name(snapshot)?;
        let req = p::RestoreRequest {
            volume: name.into(),
            snapshot: snapshot.into(),
        };
        ctx_into(
            self.rpc().restore_volume(self.req(req)).await,
            &format!("volume {name}"),
        )
    }

    /// A new volume `name` with a copy of volume or snapshot `source`.
    pub async fn clone_volume(&self, source: &str, name: &str) -> Result<VolumeInfo> {
        check_volume_ref(source)?;
        check_volume_name(name)?;
        let req = p::CloneRequest {
            source: source.into(),
            name: name.into(),
        };
        ctx_into(
            self.rpc().clone_volume(self.req(req)).await,
            &format!("volume {source}"),
        )
    }

    /// Sets volume `name`'s quotas: bytes after dedup and inodes (None:
    /// unchanged, 0: no limit).
    pub async fn set_volume_quota(
        &self,
        name: &str,
        max_bytes: Option<u64>,
        max_files: Option<u64>,
    ) -> Result<VolumeInfo> {
        check_volume_name(name)?;
        let req = p::VolumeQuotaRequest {
            volume: name.into(),
            max_bytes,
            max_files,
        };
        ctx_into(
            self.rpc().set_volume_quota(self.req(req)).await,
            &format!("volume {name}"),
        )
    }

    /// Keeps files removed from volume `name` (unlink, or a rename over
    /// them) in its trash for `keep` (zero: not at all).
    pub async fn set_file_trash(&self, name: &str, keep: Duration) -> Result<VolumeInfo> {
        check_volume_name(name)?;
        let req = p::FileTrashRequest {
            volume: name.into(),
            retention_seconds: keep.as_secs(),
        };
        ctx_into(
            self.rpc().set_file_trash(self.req(req)).await,
            &format!("volume {name}"),
        )
    }

    /// The files of volume `name`'s trash that `pick` selects, newest
    /// first.
    pub async fn list_deleted_files(
        &self,
        name: &str,
        pick: &DeletedPick,
    ) -> Result<Vec<DeletedFile>> {
        let req = pick.selection(name)?;
        let files = ctx(
            self.rpc().list_deleted_files(self.req(req)).await,
            &format!("volume {name}"),
        )?
        .files;
        Ok(files
            .into_iter()
            .map(|f| DeletedFile {
                id: f.id,
                path: f.path,
                kind: FileKind::from_wire(f.kind),
                size: f.size,
                deleted_unix_ms: f.deleted_unix_ms,
                purge_unix_ms: f.purge_unix_ms,
            })
            .collect())
    }

    /// Restores what `pick` selects (of each path its newest deletion) to
    /// where it was, or with the picked path replaced by `to`. All or
    /// nothing; returns (from, to) paths.
    pub async fn restore_deleted_files(
        &self,
        name: &str,
        pick: &DeletedPick,
        to: Option<&str>,
    ) -> Result<Vec<(String, String)>> {
        let req = p::RestoreDeletedFilesRequest {
            selection: Some(pick.selection(name)?),
            to: match to {
                Some(t) => {
                    check_remote_path(t)?;
                    t.as_bytes().to_vec().into()
                }
                None => Default::default(),
            },
        };
        let r = match self.rpc().restore_deleted_files(self.req(req)).await {
            Ok(r) => r.into_inner(),
            // The server names the path that is taken.
            Err(e) => match ClientError::from(e) {
                ClientError::AlreadyExists(m) => {
                    return Err(ClientError::AlreadyExists(format!("volume {name}: {m}")))
                }
                // Nothing there to restore: the server says what it looked for.
                ClientError::NotFound(m) if m.contains("in the volume's trash") => {
                    let m = m.strip_prefix("not found: ").unwrap_or(&m);
                    return Err(ClientError::NotFound(format!("volume {name}: {m}")));
                }
                e => return Err(e.context(&format!("volume {name}"))),
            },
        };
        Ok(r.restored
            .into_iter()
            .map(|f| {
                (
                    String::from_utf8_lossy(&f.from).into_owned(),
                    String::from_utf8_lossy(&f.to).into_owned(),
                )
            })
            .collect())
    }

    /// Drops what `pick` selects from volume `name`'s trash now; returns
    /// how many files.
    pub async fn purge_deleted_files(&self, name: &str, pick: &DeletedPick) -> Result<u64> {
        let req = pick.selection(name)?;
        Ok(ctx(
            self.rpc().purge_deleted_files(self.req(req)).await,
            &format!("volume {name}"),
        )?
        .purged)
    }

    /// Sets workspace `name`'s quotas (admin tokens only).
    pub async fn set_workspace_quota(
        &self,
        name: &str,
        max_bytes: Option<u64>,
        max_files: Option<u64>,
    ) -> Result<WorkspaceInfo> {
        let req = p::WorkspaceQuotaRequest {
            workspace: name.into(),
            max_bytes,
            max_files,
        };
        ctx_into(
            self.rpc().set_workspace_quota(self.req(req)).await,
            &format!("workspace {name}"),
        )
    }

    /// The workspace's trash, and the server's retention in seconds.
    pub async fn list_trash(&self) -> Result<Trash> {
        ctx_into(self.rpc().list_trash(self.req(p::Empty {})).await, "trash")
    }

    /// Brings volume `id` back from the trash, as `name` (default: the
    /// name it had).
    pub async fn restore_trash(&self, id: &str, name: Option<&str>) -> Result<VolumeInfo> {
        check_volume_name(id)?;
        if let Some(n) = name {
            check_volume_name(n)?;
        }
        let req = p::RestoreTrashRequest {
            id: id.into(),
            name: name.unwrap_or_default().into(),
        };
        ctx_into(
            self.rpc().restore_trash(self.req(req)).await,
            &format!("{id} in the trash"),
        )
    }

    /// Drops volume `id` (or, with None, everything) from the trash now;
    /// returns the ids dropped.
    pub async fn purge_trash(&self, id: Option<&str>) -> Result<Vec<String>> {
        if let Some(i) = id {
            check_volume_name(i)?;
        }
        let req = p::PurgeTrashRequest {
            id: id.unwrap_or_default().into(),
        };
        Ok(ctx(self.rpc().purge_trash(self.req(req)).await, "trash")?.purged)
    }

    /// A handle on a volume for file operations (checks that it exists).
    pub async fn volume(&self, name: &str) -> Result<Volume> {
        let info = self.volume_info(name).await?;
        Ok(Volume::new(self.clone(), info))
    }

    pub async fn create_workspace(&self, name: &str) -> Result<WorkspaceInfo> {
        check_volume_name(name).map_err(|_| {
            ClientError::InvalidArgument(format!(
                "invalid workspace name {name:?}: use 1 to 64 of A-Z a-z 0-9 . _ -"
            ))
        })?;
        let req = p::CreateWorkspaceRequest { name: name.into() };
        ctx_into(
            self.rpc().create_workspace(self.req(req)).await,
            &format!("workspace {name}"),
        )
    }

    pub async fn list_workspaces(&self) -> Result<Vec<WorkspaceInfo>> {
        Ok(ctx(
            self.rpc().list_workspaces(self.req(p::Empty {})).await,
            "workspaces",
        )?
        .workspaces
        .into_iter()
        .map(Into::into)
        .collect())
    }

    /// A new token for `workspace` (`None`: the caller's own). The secret
    /// is in the answer only; the server keeps its hash.
    pub async fn create_token(
        &self,
        label: &str,
        workspace: Option<&str>,
        admin: bool,
    ) -> Result<NewToken> {
        let req = p::CreateTokenRequest {
            name: label.into(),
            workspace: workspace.unwrap_or_default().into(),
            admin,
        };
        let what = format!("workspace {}", workspace.unwrap_or("of this token"));
        ctx_into(self.rpc().create_token(self.req(req)).await, &what)
    }

    pub async fn list_tokens(&self) -> Result<Vec<TokenInfo>> {
        Ok(ctx(
            self.rpc().list_tokens(self.req(p::Empty {})).await,
            "tokens",
        )?
        .tokens
        .into_iter()
        .map(Into::into)
        .collect())
    }

    /// Revokes a token given by id (`tk-…`) or by its secret.
    pub async fn revoke_token(&self, token: &str) -> Result<TokenInfo> {
        let shown = if token.starts_with("tk-") {
            token.to_string()
        } else {
            "given".to_string()
        };
        let req = p::RevokeTokenRequest {
            token: token.into(),
        };
        ctx_into(
            self.rpc().revoke_token(self.req(req)).await,
            &format!("token {shown}"),
        )
    }

    /// The calling token: its workspace, id, label and whether it is admin.
    pub async fn whoami(&self) -> Result<Identity> {
        ctx_into(self.rpc().who_am_i(self.req(p::Empty {})).await, "whoami")
    }

    /// Live clients (mounts and runs holding a lease) of this workspace,
    /// or of every workspace with `all_workspaces` (admin tokens only).
    pub async fn list_sessions(&self, all_workspaces: bool) -> Result<Vec<ClientInfo>> {
        let req = p::ListSessionsRequest { all_workspaces };
        Ok(ctx(
            self.rpc().list_sessions(self.req(req)).await,
            "live clients",
        )?
        .clients
        .into_iter()
        .map(Into::into)
        .collect())
    }

    pub async fn list_apps(&self) -> Result<Vec<AppInfo>> {
        Ok(
            ctx(self.rpc().list_apps(self.req(p::Empty {})).await, "apps")?
                .apps
                .into_iter()
                .map(Into::into)
                .collect(),
        )
    }

    pub async fn stop_app(&self, id: &str) -> Result<AppInfo> {
        check_app_id(id)?;
        let req = p::AppRef { app: id.into() };
        ctx_into(
            self.rpc().stop_app(self.req(req)).await,
            &format!("app {id}"),
        )
    }
}

/// Which files of a volume's trash: entry `id`, or every one at `path`
/// or below it ("/" or "": all) deleted within `since` of now.
#[derive(Debug, Clone, Default)]
pub struct DeletedPick {
    pub path: String,
    pub since: Option<Duration>,
    pub id: Option<i64>,
}

impl DeletedPick {
    fn selection(&self, volume: &str) -> Result<p::DeletedFilesSelection> {
        check_volume_name(volume)?;
        check_remote_path(&self.path)?;
        let path = if self.path.is_empty() {
            "/"
        } else {
            &self.path
        };
        Ok(p::DeletedFilesSelection {
            volume: volume.into(),
            path: path.as_bytes().to_vec().into(),
            since_seconds: self.since.map(|d| d.as_secs().max(1)).unwrap_or(0),
            id: self.id.unwrap_or(0),
        })
    }
}
