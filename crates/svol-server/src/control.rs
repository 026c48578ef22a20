//! The control plane: workspaces, tokens, apps and volumes. Every call is
//! confined to the caller's workspace; only an admin token reaches others.

use svol_meta::{self as m, TokenRef};
use svol_proto as p;
use tonic::{Request, Status};

use crate::auth::{hash_token, new_token, Caller};
use crate::service::State;

fn app_info(a: m::App) -> p::AppInfo {
    p::AppInfo {
        id: a.id,
        name: a.name,
        kind: a.kind.as_str().into(),
        state: a.state.as_str().into(),
        volumes: a.volumes,
        created_unix: a.created,
    }
}

fn token_info(t: m::TokenInfo, workspace: String) -> p::TokenInfo {
    p::TokenInfo {
        id: t.id,
        label: t.label,
        admin: t.admin,
        created_unix: t.created,
        revoked: t.revoked,
        workspace,
    }
}

fn need_admin(c: &Caller, what: &str) -> Result<(), Status> {
    if c.admin {
        Ok(())
    } else {
        Err(Status::permission_denied(format!(
            "{what} needs an admin token"
        )))
    }
}

impl State {
    /// Drops everything cached about volumes and ends the live sessions of
    /// volumes that no longer exist.
    fn volumes_gone(&self, freed: m::Freed) {
        self.auth.forget_volumes();
        let st = self.clone();
        tokio::spawn(async move {
            for h in freed {
                st.reap_one(h).await;
            }
            let meta = st.meta.clone();
            match tokio::task::spawn_blocking(move || meta.compact()).await {
                Ok(Err(e)) => tracing::warn!("compacting metadata: {e}"),
                Err(e) => tracing::warn!("compacting metadata: {e}"),
                Ok(Ok(())) => {}
            }
        });
    }

    pub(crate) async fn volume_info(&self, v: m::Volume) -> Result<p::VolumeInfo, Status> {
        let root = v.root;
        let usage = self.meta(move |m| m.volume_usage(root)).await?;
        Ok(p::VolumeInfo {
            id: v.id,
            name: v.name,
            created_unix: v.created,
            bytes: usage.bytes,
            files: usage.files,
            stored_bytes: usage.stored_bytes,
            root_ino: v.root,
            app: v.app,
            ephemeral: v.ephemeral,
            snapshot_of: v.snapshot_of,
            max_bytes: v.max_bytes,
            max_files: v.max_files,
            inodes: usage.inodes,
            file_trash_seconds: (v.file_trash_ms.max(0) / 1000) as u64,
            trash_files: usage.trash_files,
            trash_bytes: usage.trash_bytes,
        })
    }

    pub(crate) async fn do_create_volume(
        &self,
        req: Request<p::CreateVolumeRequest>,
    ) -> Result<p::VolumeInfo, Status> {
        let c = self.caller(&req, "").await?;
        let (r, now) = (req.into_inner(), self.clock.now());
        let v = if r.ephemeral_app.is_empty() {
            self.meta(move |m| m.create_volume(c.ws, &r.name, now))
                .await?
        } else {
            self.meta(move |m| m.create_ephemeral_volume(c.ws, &r.ephemeral_app, now))
                .await?
        };
        self.volume_info(v).await
    }

    pub(crate) async fn do_persist_volume(
        &self,
        req: Request<p::PersistVolumeRequest>,
    ) -> Result<p::VolumeInfo, Status> {
        let c = self.caller(&req, "").await?;
        let (r, now) = (req.into_inner(), self.clock.now());
        let v = self
            .meta(move |m| m.persist_volume(c.ws, &r.volume, &r.name, now))
            .await?;
        self.auth.forget_volumes();
        self.volume_info(v).await
    }

    pub(crate) async fn do_delete_volume(
        &self,
        req: Request<p::DeleteVolumeRequest>,
    ) -> Result<p::Empty, Status> {
        let c = self.caller(&req, "").await?;
        let p::DeleteVolumeRequest { name, force } = req.into_inner();
        if !force {
            self.refuse_if_mounted(c.ws, &name).await?;
        }
        let retire = self.retire();
        let out = self
            .meta(move |m| m.delete_volume(c.ws, &name, retire))
            .await?;
        self.sessions.end_volume(out.value.root);
        self.volumes_gone(out.changes.freed);
        Ok(p::Empty {})
    }

    /// `Busy` naming who has volume `name` (or a snapshot of it) in use:
    /// deleting it under them would turn every call of theirs into an
    /// error. (A client that connects after this check loses its session
    /// with the delete, as with --force.)
    async fn refuse_if_mounted(&self, ws: m::WorkspaceId, name: &str) -> Result<(), Status> {
        let (key, now) = (name.to_string(), self.clock.now_ms());
        let users = self
            .meta(move |m| {
                let v = m.volume(ws, &key)?;
                let mut ids = vec![v.id.clone()];
                if v.snapshot_of.is_empty() {
                    ids.extend(m.list_snapshots(ws, &key)?.into_iter().map(|s| s.id));
                }
                Ok(m.live_sessions(Some(ws), now)?
                    .into_iter()
                    .filter(|s| ids.contains(&s.volume))
                    .collect::<Vec<_>>())
            })
            .await?;
        if users.is_empty() {
            return Ok(());
        }
        let who: Vec<String> = users
            .iter()
            .take(5)
            .map(|s| {
                let what = if s.client.purpose.is_empty() {
                    "a client".to_string()
                } else {
                    s.client.purpose.clone()
                };
                let on = match s.client.host.as_str() {
                    "" => String::new(),
                    h => format!(" on {h}"),
                };
                // Say which snapshot, when it is one.
                if s.volume_name == name {
                    format!("{what}{on}")
                } else {
                    format!("{what}{on} (of {})", s.volume_name)
                }
            })
            .collect();
        let more = users.len().saturating_sub(who.len());
        Err(crate::convert::status(m::MetaError::Busy(format!(
            "in use by {} client{}: {}{}; unmount first, or delete anyway with --force \
             (their calls then fail)",
            users.len(),
            if users.len() == 1 { "" } else { "s" },
            who.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ))))
    }

    pub(crate) async fn do_create_workspace(
        &self,
        req: Request<p::CreateWorkspaceRequest>,
    ) -> Result<p::WorkspaceInfo, Status> {
        let c = self.caller(&req, "").await?;
        need_admin(&c, "creating a workspace")?;
        let name = req.into_inner().name;
        let w = self.meta(move |m| m.create_workspace(&name)).await?;
        Ok(p::WorkspaceInfo {
            name: w.name,
            created_unix: w.created,
            ..Default::default()
        })
    }

    pub(crate) async fn do_list_workspaces(
        &self,
        req: Request<p::Empty>,
    ) -> Result<p::ListWorkspacesResponse, Status> {
        let c = self.caller(&req, "").await?;
        let workspaces = self
            .meta(move |m| {
                let mut out = Vec::new();
                for w in m.list_workspaces()? {
                    if !(c.admin || w.id == c.ws) {
                        continue;
                    }
                    let u = m.workspace_usage(w.id)?;
                    out.push(p::WorkspaceInfo {
                        name: w.name,
                        volumes: u.volumes,
                        running_apps: u.running_apps,
                        files: u.files,
                        logical_bytes: u.logical_bytes,
                        stored_bytes: u.stored_bytes,
                        sessions: u.sessions,
                        created_unix: w.created,
                        max_bytes: u.max_bytes,
                        max_files: u.max_files,
                        inodes: u.inodes,
                    });
                }
                Ok(out)
            })
            .await?;
        Ok(p::ListWorkspacesResponse { workspaces })
    }

    pub(crate) async fn do_snapshot_volume(
        &self,
        req: Request<p::SnapshotRequest>,
    ) -> Result<p::VolumeInfo, Status> {
        let c = self.caller(&req, "").await?;
        self.settle_volume(c.ws, &req.get_ref().volume).await;
        let (r, now) = (req.into_inner(), self.clock.now());
        let v = self
            .meta(move |m| m.snapshot_volume(c.ws, &r.volume, &r.snapshot, now))
            .await?;
        self.volume_info(v).await
    }

    pub(crate) async fn do_list_snapshots(
        &self,
        req: Request<p::GetVolumeRequest>,
    ) -> Result<p::ListVolumesResponse, Status> {
        let c = self.caller(&req, "").await?;
        let name = req.into_inner().name;
        let vs = self.meta(move |m| m.list_snapshots(c.ws, &name)).await?;
        let mut volumes = Vec::with_capacity(vs.len());
        for v in vs {
            volumes.push(self.volume_info(v).await?);
        }
        Ok(p::ListVolumesResponse { volumes })
    }

    pub(crate) async fn do_restore_volume(
        &self,
        req: Request<p::RestoreRequest>,
    ) -> Result<p::VolumeInfo, Status> {
        let c = self.caller(&req, "").await?;
        let (r, now) = (req.into_inner(), self.clock.now_ms());
        let out = self
            .meta(move |m| m.restore_volume(c.ws, &r.volume, &r.snapshot, now))
            .await?;
        self.volumes_gone(out.changes.freed);
        self.volume_info(out.value).await
    }

    pub(crate) async fn do_clone_volume(
        &self,
        req: Request<p::CloneRequest>,
    ) -> Result<p::VolumeInfo, Status> {
        let c = self.caller(&req, "").await?;
        self.settle_volume(c.ws, &req.get_ref().source).await;
        let (r, now) = (req.into_inner(), self.clock.now());
        let v = self
            .meta(move |m| m.clone_volume(c.ws, &r.source, &r.name, now))
            .await?;
        self.volume_info(v).await
    }

    pub(crate) async fn do_set_volume_quota(
        &self,
        req: Request<p::VolumeQuotaRequest>,
    ) -> Result<p::VolumeInfo, Status> {
        let c = self.caller(&req, "").await?;
        let r = req.into_inner();
        let v = self
            .meta(move |m| m.set_volume_quota(c.ws, &r.volume, r.max_bytes, r.max_files))
            .await?;
        self.volume_info(v).await
    }

    pub(crate) async fn do_set_workspace_quota(
        &self,
        req: Request<p::WorkspaceQuotaRequest>,
    ) -> Result<p::WorkspaceInfo, Status> {
        let c = self.caller(&req, "").await?;
        need_admin(&c, "setting a workspace's quota")?;
        let r = req.into_inner();
        let w = self
            .meta(move |m| m.set_workspace_quota(&r.workspace, r.max_bytes, r.max_files))
            .await?;
        let id = w.id;
        let u = self.meta(move |m| m.workspace_usage(id)).await?;
        Ok(p::WorkspaceInfo {
            name: w.name,
            volumes: u.volumes,
            running_apps: u.running_apps,
            files: u.files,
            logical_bytes: u.logical_bytes,
            stored_bytes: u.stored_bytes,
            sessions: u.sessions,
            created_unix: w.created,
            max_bytes: u.max_bytes,
            max_files: u.max_files,
            inodes: u.inodes,
        })
    }

    /// How a volume deleted now goes: to the trash for the retention.
    pub(crate) fn retire(&self) -> m::Retire {
        m::Retire {
            now_ms: self.clock.now_ms(),
            keep_ms: self.trash_retention.as_millis() as i64,
        }
    }

    pub(crate) async fn do_list_trash(
        &self,
        req: Request<p::Empty>,
    ) -> Result<p::ListTrashResponse, Status> {
        let c = self.caller(&req, "").await?;
        let listed = self
            .meta(move |m| {
                let mut out = Vec::new();
                for t in m.list_trash(c.ws)? {
                    let u = m.volume_usage(t.root)?;
                    out.push(p::TrashedVolume {
                        id: t.id,
                        name: t.name,
                        ephemeral: t.ephemeral,
                        snapshot_of: t.snapshot_of,
                        deleted_unix: t.deleted_ms.div_euclid(1000),
                        purge_unix: t.purge_ms.div_euclid(1000),
                        bytes: u.bytes,
                        files: u.files,
                        stored_bytes: u.stored_bytes,
                    });
                }
                Ok(out)
            })
            .await?;
        Ok(p::ListTrashResponse {
            volumes: listed,
            retention_seconds: self.trash_retention.as_secs(),
        })
    }

    pub(crate) async fn do_restore_trash(
        &self,
        req: Request<p::RestoreTrashRequest>,
    ) -> Result<p::VolumeInfo, Status> {
        let c = self.caller(&req, "").await?;
        let (r, now) = (req.into_inner(), self.clock.now());
        let v = self
            .meta(move |m| {
                let name = (!r.name.is_empty()).then_some(r.name.as_str());
                m.restore_trashed(c.ws, &r.id, name, now)
            })
            .await?;
        self.auth.forget_volumes();
        self.volume_info(v).await
    }

    pub(crate) async fn do_purge_trash(
        &self,
        req: Request<p::PurgeTrashRequest>,
    ) -> Result<p::PurgeTrashResponse, Status> {
        let c = self.caller(&req, "").await?;
        let id = req.into_inner().id;
        let out = self
            .meta(move |m| {
                m.purge_trash(if id.is_empty() {
                    m::Purge::Workspace(c.ws)
                } else {
                    m::Purge::One(c.ws, &id)
                })
            })
            .await?;
        self.volumes_gone(out.changes.freed);
        Ok(p::PurgeTrashResponse { purged: out.value })
    }

    /// Drops what the trash kept past its retention (on the leader).
    pub(crate) async fn purge_expired_trash(&self) {
        let now = self.clock.now_ms();
        match self
            .meta(move |m| m.purge_trash(m::Purge::Expired(now)))
            .await
        {
            Ok(out) => {
                for id in &out.value {
                    tracing::info!(volume = %id, "retention ended; dropped from the trash");
                }
                if !out.value.is_empty() {
                    self.volumes_gone(out.changes.freed);
                }
            }
            Err(e) => tracing::warn!("purging the trash: {e}"),
        }
    }

    pub(crate) async fn do_whoami(&self, req: Request<p::Empty>) -> Result<p::Identity, Status> {
        let c = self.caller(&req, "").await?;
        let token = c.token;
        let t = self.meta(move |m| m.token(&token)).await?;
        Ok(p::Identity {
            workspace: self.workspace_name(c.ws).await?,
            token_id: t.id,
            token_label: t.label,
            admin: t.admin,
        })
    }

    /// Live clients: what each said of itself, the address it came from,
    /// and since when; session ids only as tags.
    pub(crate) async fn do_list_sessions(
        &self,
        req: Request<p::ListSessionsRequest>,
    ) -> Result<p::ListSessionsResponse, Status> {
        let c = self.caller(&req, "").await?;
        let all = req.get_ref().all_workspaces;
        if all {
            need_admin(&c, "listing every workspace's clients")?;
        }
        let now = self.clock.now_ms();
        let (live, names) = self
            .meta(move |m| {
                let live = m.live_sessions((!all).then_some(c.ws), now)?;
                let names: std::collections::HashMap<m::WorkspaceId, String> = m
                    .list_workspaces()?
                    .into_iter()
                    .map(|w| (w.id, w.name))
                    .collect();
                Ok((live, names))
            })
            .await?;
        let clients = live
            .into_iter()
            .map(|s| p::ClientInfo {
                session: crate::sessions::tag(&s.id),
                workspace: names.get(&s.workspace).cloned().unwrap_or_default(),
                volume: s.volume,
                volume_name: s.volume_name,
                app: s.app,
                host: s.client.host,
                purpose: s.client.purpose,
                peer: s.client.peer,
                since_unix: s.client.started_ms.div_euclid(1000),
                lease_until_unix: s.expires_ms.div_euclid(1000),
            })
            .collect();
        Ok(p::ListSessionsResponse { clients })
    }

    async fn workspace_name(&self, ws: m::WorkspaceId) -> Result<String, Status> {
        let all = self.meta(|m| m.list_workspaces()).await?;
        Ok(all
            .into_iter()
            .find(|w| w.id == ws)
            .map(|w| w.name)
            .unwrap_or_default())
    }

    pub(crate) async fn do_create_token(
        &self,
        req: Request<p::CreateTokenRequest>,
    ) -> Result<p::CreateTokenResponse, Status> {
        let c = self.caller(&req, "").await?;
        let r = req.into_inner();
        let ws = if r.workspace.is_empty() {
            c.ws
        } else {
            let name = r.workspace.clone();
            let w = self.meta(move |m| m.workspace(&name)).await?;
            if w.id != c.ws {
                need_admin(&c, "a token for another workspace")?;
            }
            w.id
        };
        if r.admin {
            need_admin(&c, "an admin token")?;
        }
        let token = new_token();
        let h = hash_token(&token);
        let t = self
            .meta(move |m| m.add_token(ws, &h, &r.name, r.admin))
            .await?;
        Ok(p::CreateTokenResponse {
            token,
            workspace: self.workspace_name(ws).await?,
            id: t.id,
        })
    }

    pub(crate) async fn do_list_tokens(
        &self,
        req: Request<p::Empty>,
    ) -> Result<p::ListTokensResponse, Status> {
        let c = self.caller(&req, "").await?;
        let ws_name = self.workspace_name(c.ws).await?;
        let ts = self.meta(move |m| m.list_tokens(c.ws)).await?;
        Ok(p::ListTokensResponse {
            tokens: ts
                .into_iter()
                .map(|t| token_info(t, ws_name.clone()))
                .collect(),
        })
    }

    pub(crate) async fn do_revoke_token(
        &self,
        req: Request<p::RevokeTokenRequest>,
    ) -> Result<p::TokenInfo, Status> {
        let c = self.caller(&req, "").await?;
        let key = req.into_inner().token;
        let scope = (!c.admin).then_some(c.ws);
        let t = self
            .meta(move |m| {
                if key.starts_with("tk-") {
                    m.revoke_token(scope, TokenRef::Id(&key))
                } else {
                    m.revoke_token(scope, TokenRef::Hash(&hash_token(&key)))
                }
            })
            .await?;
        // Refused from the next call on, here and on every live stream.
        self.auth.forget_tokens();
        let ws = self.workspace_name(t.workspace).await?;
        Ok(token_info(t, ws))
    }

    pub(crate) async fn do_create_app(
        &self,
        req: Request<p::CreateAppRequest>,
    ) -> Result<p::AppInfo, Status> {
        let c = self.caller(&req, "").await?;
        let (name, now) = (req.into_inner().name, self.clock.now_ms());
        let a = self.meta(move |m| m.create_app(c.ws, &name, now)).await?;
        Ok(app_info(a))
    }

    pub(crate) async fn do_list_apps(
        &self,
        req: Request<p::Empty>,
    ) -> Result<p::ListAppsResponse, Status> {
        let c = self.caller(&req, "").await?;
        let apps = self.meta(move |m| m.list_apps(c.ws)).await?;
        Ok(p::ListAppsResponse {
            apps: apps.into_iter().map(app_info).collect(),
        })
    }

    pub(crate) async fn do_stop_app(&self, req: Request<p::AppRef>) -> Result<p::AppInfo, Status> {
        let c = self.caller(&req, "").await?;
        let id = req.into_inner().app;
        let before = {
            let id = id.clone();
            self.meta(move |m| m.app(c.ws, &id)).await?
        };
        let roots = self.volume_roots(c.ws, &before.volumes).await;
        let retire = self.retire();
        let out = self.meta(move |m| m.stop_app(c.ws, &id, retire)).await?;
        for r in roots {
            self.sessions.end_volume(r);
        }
        self.volumes_gone(out.changes.freed);
        Ok(app_info(out.value))
    }

    async fn volume_roots(&self, ws: m::WorkspaceId, ids: &[String]) -> Vec<m::Ino> {
        let ids = ids.to_vec();
        self.meta(move |m| {
            Ok(ids
                .iter()
                .filter_map(|i| m.volume(ws, i).ok())
                .map(|v| v.root)
                .collect())
        })
        .await
        .unwrap_or_default()
    }

    /// Stops apps nobody has held a lease on for the grace period.
    pub(crate) async fn stop_idle_apps(&self) {
        let (grace, now) = (self.app_grace.as_millis() as i64, self.clock.now_ms());
        let keep = self.retire().keep_ms;
        match self.meta(move |m| m.stop_idle_apps(now, grace, keep)).await {
            Ok(out) => {
                for a in &out.value {
                    tracing::info!(app = %a.id, name = %a.name, "app idle past its grace period; stopped");
                }
                if !out.value.is_empty() {
                    self.volumes_gone(out.changes.freed);
                }
            }
            Err(e) => tracing::warn!("stopping idle apps: {e}"),
        }
    }
}
