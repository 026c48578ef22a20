//! The gRPC service: authorise, run one metadata transaction off the async
//! threads, push invalidations to the volume's other sessions, answer.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use svol_blocks::{BlockHash, BlockStore};
use svol_meta::{self as m, Ino, MetaStore};
use svol_proto as p;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::Caller;
use crate::blocks::block_key;
use crate::clock::Clock;
use crate::convert::{self, attr, status};
use crate::feed::Feed;
use crate::sessions::Sessions;
use crate::ServerConfig;

#[derive(Clone)]
pub(crate) struct State {
    pub(crate) meta: MetaStore,
    pub(crate) blocks: BlockStore,
    pub(crate) sessions: Arc<Sessions>,
    pub(crate) auth: Arc<crate::auth::AuthCache>,
    pub(crate) feed: Arc<Feed>,
    pub(crate) locks: crate::locks::LockManager,
    pub(crate) clock: Arc<dyn Clock>,
    /// Whether this server runs the background loops of the cluster.
    election: Arc<std::sync::Mutex<m::Election>>,
    /// Blocks written since the last sync of each; a durable commit syncs
    /// every one the file references before it commits.
    unsynced: Arc<std::sync::Mutex<std::collections::HashSet<m::BlockRef>>>,
    pub(crate) lease: Duration,
    pub(crate) app_grace: Duration,
    pub(crate) trash_retention: Duration,
    upload_grace: Duration,
    reserve: u64,
    /// The block channel, once it listens (`blockchan`).
    pub(crate) block_channel: std::sync::OnceLock<crate::blockchan::Endpoint>,
}

type Res<T> = Result<Response<T>, Status>;

/// Runs one metadata operation, answering its error as a status.
/// On SQLite a call is short (tens of microseconds) and runs in place:
/// `block_in_place` would hand this worker's other tasks to another
/// thread on every call, which cost more than the call (190 µs → 120 µs
/// per round trip, measured with `svol-sdk`'s `rpcbench` example). On
/// PostgreSQL a call waits on the network, so other tasks move away.
pub(crate) fn run_meta<T>(
    meta: &MetaStore,
    f: impl FnOnce(&MetaStore) -> m::Result<T>,
) -> Result<T, Status> {
    let start = std::time::Instant::now();
    let r = if meta.shared() {
        tokio::task::block_in_place(|| f(meta))
    } else {
        f(meta)
    };
    crate::metrics::meta_transaction(start.elapsed().as_secs_f64());
    r.map_err(status)
}

impl State {
    /// Stores a block the caller's workspace uploads (by `PutBlock` or
    /// the block channel): refused past the disk's usable space, checked
    /// against its hash, and remembered for the next durable commit.
    pub(crate) async fn store_block(
        &self,
        ws: m::WorkspaceId,
        hash: m::BlockId,
        data: bytes::Bytes,
    ) -> Result<(), Status> {
        let b = m::BlockRef {
            workspace: ws,
            hash,
        };
        let size = data.len() as u64;
        let (total, free) = self
            .blocks
            .capacity()
            .await
            .map_err(convert::blocks_status)?;
        if self.usable(total, free) < size {
            return Err(convert::blocks_status(svol_blocks::BlockError::NoSpace));
        }
        let written = self.upload(b, data, self.upload_grace).await?;
        if written {
            self.unsynced
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(b);
        }
        Ok(())
    }

    pub(crate) fn new(meta: MetaStore, blocks: BlockStore, cfg: &ServerConfig) -> m::Result<Self> {
        let head = meta.feed_head()?;
        let feed = Arc::new(Feed::new(head));
        let locks = crate::locks::LockManager::new(meta.clone(), feed.clone(), cfg.clock.clone());
        let election = Arc::new(std::sync::Mutex::new(meta.election()));
        Ok(Self {
            meta,
            blocks,
            sessions: Arc::new(Sessions::new(cfg.session_queue)),
            auth: Arc::default(),
            feed,
            locks,
            clock: cfg.clock.clone(),
            election,
            unsynced: Arc::default(),
            lease: cfg.lease,
            app_grace: cfg.app_grace,
            trash_retention: cfg.trash_retention,
            upload_grace: cfg.upload_grace,
            reserve: cfg.reserve,
            block_channel: std::sync::OnceLock::new(),
        })
    }

    /// Who makes a change, and when (the session's lease is checked in
    /// the change's transaction).
    pub(crate) fn cx<'a>(&self, c: &'a Caller) -> m::Cx<'a> {
        m::Cx::by(self.clock.now(), &c.session)
    }

    /// After a change: hands its freed blocks to the reaper, pushes it to
    /// this server's other sessions, and returns the touched inodes as the
    /// caller's reply carries them.
    /// Waits for the recalls of other mounts' listings the change makes
    /// (see `recall.rs`).
    pub(crate) async fn changed(&self, c: &Caller, ch: &m::ChangeSet) -> Vec<p::Attr> {
        self.reap(ch.freed.clone());
        let recalls = self.publish(&c.session, ch);
        crate::recall::wait(recalls, self.lease).await;
        ch.attrs.iter().map(attr).collect()
    }

    /// Does this server run the cluster's background loops now (always,
    /// when it is the store's only server)?
    pub(crate) fn leads(&self) -> bool {
        tokio::task::block_in_place(|| {
            self.election
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .leading()
        })
    }

    /// Runs a metadata operation on the blocking pool.
    pub(crate) async fn meta<T: Send + 'static>(
        &self,
        f: impl FnOnce(&MetaStore) -> m::Result<T> + Send,
    ) -> Result<T, Status> {
        run_meta(&self.meta, f)
    }

    /// Free bytes uploads may still use: what the disk has less the reserve
    /// kept for deleting (see `ServerConfig::reserve`).
    fn usable(&self, total: u64, free: u64) -> u64 {
        free.saturating_sub(self.reserve.min(total / 10))
    }

    /// Before a durable commit: makes every block the file will reference
    /// durable — those of this commit and those earlier non-durable commits
    /// (on close, every 128 MiB) left it pointing at — so an `fsync` covers
    /// all the data written before it, not just the last piece.
    async fn sync_file_blocks(&self, c: &Caller, ino: Ino, new: &[m::Chunk]) -> Result<(), Status> {
        let nothing_unsynced = self
            .unsynced
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty();
        if nothing_unsynced {
            return Ok(());
        }
        let vol = c.vol;
        let old = self.meta(move |m| m.chunks(vol, ino)).await?;
        let todo: Vec<m::BlockRef> = {
            let set = self.unsynced.lock().unwrap_or_else(|p| p.into_inner());
            new.iter()
                .chain(old.iter())
                .filter_map(|ch| match &ch.data {
                    m::ChunkData::Block(h) => Some(m::BlockRef {
                        workspace: c.ws,
                        hash: *h,
                    }),
                    _ => None,
                })
                .filter(|b| set.contains(b))
                .collect()
        };
        let keys: Vec<_> = todo.iter().map(block_key).collect();
        self.blocks
            .sync(&keys)
            .await
            .map_err(convert::blocks_status)?;
        let mut set = self.unsynced.lock().unwrap_or_else(|p| p.into_inner());
        for b in todo {
            set.remove(&b);
        }
        Ok(())
    }
}

/// Opens one `ReleaseMany` may end (a bound on one transaction's work).
const MAX_RELEASES: usize = 4096;

#[tonic::async_trait]
impl p::svol_server::Svol for State {
    async fn create_volume(&self, req: Request<p::CreateVolumeRequest>) -> Res<p::VolumeInfo> {
        Ok(Response::new(self.do_create_volume(req).await?))
    }

    async fn list_volumes(
        &self,
        req: Request<p::ListVolumesRequest>,
    ) -> Res<p::ListVolumesResponse> {
        let c = self.caller(&req, "").await?;
        let vs = self.meta(move |m| m.list_volumes(c.ws)).await?;
        let mut volumes = Vec::new();
        for v in vs {
            volumes.push(self.volume_info(v).await?);
        }
        Ok(Response::new(p::ListVolumesResponse { volumes }))
    }

    async fn get_volume(&self, req: Request<p::GetVolumeRequest>) -> Res<p::VolumeInfo> {
        let c = self.caller(&req, "").await?;
        let name = req.into_inner().name;
        let v = self.meta(move |m| m.volume(c.ws, &name)).await?;
        // Its counts include what mounts answered ahead of the server.
        // (Listing every volume does not recall: a dashboard refreshing
        // would take every mount's holds each time; there the counts may
        // trail a mount by one batch.)
        self.settle_root(v.root).await;
        Ok(Response::new(self.volume_info(v).await?))
    }

    async fn delete_volume(&self, req: Request<p::DeleteVolumeRequest>) -> Res<p::Empty> {
        Ok(Response::new(self.do_delete_volume(req).await?))
    }

    async fn rename_volume(&self, req: Request<p::RenameVolumeRequest>) -> Res<p::VolumeInfo> {
        let c = self.caller(&req, "").await?;
        let r = req.into_inner();
        let v = self
            .meta(move |m| m.rename_volume(c.ws, &r.name, &r.new_name))
            .await?;
        self.auth.forget_volumes();
        Ok(Response::new(self.volume_info(v).await?))
    }

    async fn persist_volume(&self, req: Request<p::PersistVolumeRequest>) -> Res<p::VolumeInfo> {
        Ok(Response::new(self.do_persist_volume(req).await?))
    }

    async fn create_workspace(
        &self,
        req: Request<p::CreateWorkspaceRequest>,
    ) -> Res<p::WorkspaceInfo> {
        Ok(Response::new(self.do_create_workspace(req).await?))
    }

    async fn list_workspaces(&self, req: Request<p::Empty>) -> Res<p::ListWorkspacesResponse> {
        Ok(Response::new(self.do_list_workspaces(req).await?))
    }

    async fn snapshot_volume(&self, req: Request<p::SnapshotRequest>) -> Res<p::VolumeInfo> {
        Ok(Response::new(self.do_snapshot_volume(req).await?))
    }

    async fn list_snapshots(
        &self,
        req: Request<p::GetVolumeRequest>,
    ) -> Res<p::ListVolumesResponse> {
        Ok(Response::new(self.do_list_snapshots(req).await?))
    }

    async fn restore_volume(&self, req: Request<p::RestoreRequest>) -> Res<p::VolumeInfo> {
        Ok(Response::new(self.do_restore_volume(req).await?))
    }

    async fn clone_volume(&self, req: Request<p::CloneRequest>) -> Res<p::VolumeInfo> {
        Ok(Response::new(self.do_clone_volume(req).await?))
    }

    async fn set_volume_quota(&self, req: Request<p::VolumeQuotaRequest>) -> Res<p::VolumeInfo> {
        Ok(Response::new(self.do_set_volume_quota(req).await?))
    }

    async fn set_workspace_quota(
        &self,
        req: Request<p::WorkspaceQuotaRequest>,
    ) -> Res<p::WorkspaceInfo> {
        Ok(Response::new(self.do_set_workspace_quota(req).await?))
    }

    async fn set_file_trash(&self, req: Request<p::FileTrashRequest>) -> Res<p::VolumeInfo> {
        Ok(Response::new(self.do_set_file_trash(req).await?))
    }

    async fn list_deleted_files(
        &self,
        req: Request<p::DeletedFilesSelection>,
    ) -> Res<p::ListDeletedFilesResponse> {
        Ok(Response::new(self.do_list_deleted_files(req).await?))
    }

    async fn restore_deleted_files(
        &self,
        req: Request<p::RestoreDeletedFilesRequest>,
    ) -> Res<p::RestoreDeletedFilesResponse> {
        Ok(Response::new(self.do_restore_deleted_files(req).await?))
    }

    async fn purge_deleted_files(
        &self,
        req: Request<p::DeletedFilesSelection>,
    ) -> Res<p::PurgeDeletedFilesResponse> {
        Ok(Response::new(self.do_purge_deleted_files(req).await?))
    }

    async fn list_trash(&self, req: Request<p::Empty>) -> Res<p::ListTrashResponse> {
        Ok(Response::new(self.do_list_trash(req).await?))
    }

    async fn restore_trash(&self, req: Request<p::RestoreTrashRequest>) -> Res<p::VolumeInfo> {
        Ok(Response::new(self.do_restore_trash(req).await?))
    }

    async fn purge_trash(&self, req: Request<p::PurgeTrashRequest>) -> Res<p::PurgeTrashResponse> {
        Ok(Response::new(self.do_purge_trash(req).await?))
    }

    async fn who_am_i(&self, req: Request<p::Empty>) -> Res<p::Identity> {
        Ok(Response::new(self.do_whoami(req).await?))
    }

    async fn list_sessions(
        &self,
        req: Request<p::ListSessionsRequest>,
    ) -> Res<p::ListSessionsResponse> {
        Ok(Response::new(self.do_list_sessions(req).await?))
    }

    async fn create_token(
        &self,
        req: Request<p::CreateTokenRequest>,
    ) -> Res<p::CreateTokenResponse> {
        Ok(Response::new(self.do_create_token(req).await?))
    }

    async fn list_tokens(&self, req: Request<p::Empty>) -> Res<p::ListTokensResponse> {
        Ok(Response::new(self.do_list_tokens(req).await?))
    }

    async fn revoke_token(&self, req: Request<p::RevokeTokenRequest>) -> Res<p::TokenInfo> {
        Ok(Response::new(self.do_revoke_token(req).await?))
    }

    async fn create_app(&self, req: Request<p::CreateAppRequest>) -> Res<p::AppInfo> {
        Ok(Response::new(self.do_create_app(req).await?))
    }

    async fn list_apps(&self, req: Request<p::Empty>) -> Res<p::ListAppsResponse> {
        Ok(Response::new(self.do_list_apps(req).await?))
    }

    async fn stop_app(&self, req: Request<p::AppRef>) -> Res<p::AppInfo> {
        Ok(Response::new(self.do_stop_app(req).await?))
    }

    type SessionStream = Pin<Box<dyn Stream<Item = Result<p::SessionDown, Status>> + Send>>;

    async fn session(&self, req: Request<Streaming<p::SessionUp>>) -> Res<Self::SessionStream> {
        let rx = self.open_session(req).await?;
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn lookup(&self, req: Request<p::LookupRequest>) -> Res<p::Attr> {
        let c = self.caller(&req, &req.get_ref().volume).await?;
        let r = req.into_inner();
        self.settle(&c, Some(&[r.parent])).await;
        let a = self
            .meta(move |m| m.lookup(c.vol, r.parent, &r.name))
            .await?;
        Ok(Response::new(attr(&a)))
    }

    async fn get_attr(&self, req: Request<p::InodeRequest>) -> Res<p::Attr> {
        let c = self.caller(&req, &req.get_ref().volume).await?;
        let ino = req.get_ref().ino;
        self.settle(&c, Some(&[ino])).await;
        let a = self.meta(move |m| m.getattr(c.vol, ino)).await?;
        Ok(Response::new(attr(&a)))
    }

    async fn set_attr(&self, req: Request<p::SetAttrRequest>) -> Res<p::Attr> {
        let c = self.caller(&req, &req.get_ref().volume).await?;
        let r = req.into_inner();
        self.settle(&c, Some(&[r.ino])).await;
        let set = m::SetAttr {
            kill_suidgid: r.kill_suidgid,
            mode: r.mode,
            uid: r.uid,
            gid: r.gid,
            size: r.size,
            atime: convert::time_set(&r.atime),
            mtime: convert::time_set(&r.mtime),
        };
        let cx = self.cx(&c).fenced(r.fence);
        let out = self.meta(|m| m.setattr(c.vol, r.ino, &set, &cx)).await?;
        self.changed(&c, &out.changes).await;
        Ok(Response::new(attr(&out.value)))
    }

    async fn create(&self, req: Request<p::CreateRequest>) -> Res<p::EntryReply> {
        let c = self.caller(&req, &req.get_ref().volume).await?;
        let r = req.into_inner();
        self.settle(&c, Some(&[r.parent])).await;
        let node = m::NewNode {
            kind: convert::from_kind(r.kind)?,
            mode: r.mode,
            uid: r.uid,
            gid: r.gid,
            rdev: r.rdev,
            target: r.symlink_target.to_vec(),
        };
        let cx = self.cx(&c);
        let out = self
            .meta(|m| m.create(c.vol, r.parent, &r.name, &node, r.exclusive, &cx))
            .await?;
        Ok(Response::new(p::EntryReply {
            attr: Some(attr(&out.value)),
            touched: self.changed(&c, &out.changes).await,
        }))
    }

    async fn create_open(&self, req: Request<p::CreateRequest>) -> Res<p::OpenResponse> {
        let c = self.caller(&req, &req.get_ref().volume).await?;
        let r = req.into_inner();
        self.settle(&c, Some(&[r.parent])).await;
        let node = m::NewNode {
            kind: m::FileKind::Regular,
            mode: r.mode,
            uid: r.uid,
            gid: r.gid,
            rdev: 0,
            target: Vec::new(),
        };
        let cx = self.cx(&c);
        let out = self
            .meta(|m| m.create_open(c.vol, r.parent, &r.name, &node, r.exclusive, &cx))
            .await?;
        let touched = self.changed(&c, &out.changes).await;
        let (a, chunks) = out.value;
        Ok(Response::new(p::OpenResponse {
            attr: Some(attr(&a)),
            chunks: chunks.into_iter().map(convert::chunk).collect(),
            touched,
            peeked: Vec::new(),
        }))
    }

    async fn link(&self, req: Request<p::LinkRequest>) -> Res<p::EntryReply> {
        let c = self.caller(&req, &req.get_ref().volume).await?;
        let r = req.into_inner();
        self.settle(&c, Some(&[r.ino, r.new_parent])).await;
        let cx = self.cx(&c);
        let out = self
            .meta(|m| m.link(c.vol, r.ino, r.new_parent, &r.new_name, &cx))
            .await?;
        Ok(Response::new(p::EntryReply {
            attr: Some(attr(&out.value)),
            touched: self.changed(&c, &out.changes).await,
        }))
    }

    async fn unlink(&self, req: Request<p::UnlinkRequest>) -> Res<p::Touched> {
        let c = self.caller(&req, &req.get_ref().volume).await?;
        let r = req.into_inner();
        self.settle(&c, Some(&[r.parent])).await;
        let cx = self.cx(&c);
        let out = self
            .meta(|m| m.unlink(c.vol, r.parent, &r.name, r.directory, &cx))
            .await?;
        Ok(Response::new(p::Touched {
            touched: self.changed(&c, &out.changes).await,
        }))
    }

    async fn rename(&self, req: Request<p::RenameRequest>) -> Res<p::Touched> {
        let c = self.caller(&req, &req.get_ref().volume).await?;
        let r = req.into_inner();
        self.settle(&c, Some(&[r.parent, r.new_parent])).await;
        let flags = m::RenameFlags {
            noreplace: r.flags & p::RENAME_NOREPLACE != 0,
            exchange: r.flags & p::RENAME_EXCHANGE != 0,
        };
        let cx = self.cx(&c);
        let out = self
            .meta(|m| {
                m.rename(
                    c.vol,
                    r.parent,
                    &r.name,
                    r.new_parent,
                    &r.new_name,
                    flags,
                    &cx,
                )
            })
            .await?;
        Ok(Response::new(p::Touched {
            touched: self.changed(&c, &out.changes).await,
        }))
    }

    async fn read_dir(&self, req: Request<p::ReadDirRequest>) -> Res<p::ReadDirResponse> {
        let c = self.caller(&req, &req.get_ref().volume).await?;
        let r = req.into_inner();
        self.settle(&c, Some(&[r.ino])).await;
        let limit = r.limit.clamp(1, 4096) as usize;
        // Watched before it is read: a change to its names that lands
        // after the read started recalls the listing rather than slipping
        // past it. Its entries are watched once read (see `seq`).
        let watch = r.watch && !c.session.is_empty() && !self.meta.shared();
        let started = watch && (r.after != 0 || self.sessions.watch(&c.session, r.ino));
        let (dir, after) = (r.ino, r.after);
        let es = self
            .meta(move |m| m.readdir(c.vol, dir, after, limit))
            .await?;
        let seq = if started {
            let inos: Vec<_> = es.iter().map(|e| e.attr.ino).collect();
            // After the read: every change this page may miss is at or
            // before it (see `sessions::Listed`).
            let read_at = self.meta(|m| m.feed_head()).await?;
            self.sessions.watch_entries(&c.session, dir, &inos, read_at)
        } else {
            None
        };
        let eof = es.len() < limit;
        let entries = es
            .into_iter()
            .map(|e| p::DirEntry {
                name: e.name.into(),
                cookie: e.cookie,
                attr: Some(attr(&e.attr)),
            })
            .collect();
        Ok(Response::new(p::ReadDirResponse {
            entries,
            eof,
            watching: seq.is_some(),
            seq: seq.unwrap_or(0),
        }))
    }

    async fn read_link(&self, req: Request<p::InodeRequest>) -> Res<p::ReadLinkResponse> {
        let c = self.caller(&req, &req.get_ref().volume).await?;
        let ino = req.get_ref().ino;
        self.settle(&c, Some(&[ino])).await;
        let t = self.meta(move |m| m.readlink(c.vol, ino)).await?;
        Ok(Response::new(p::ReadLinkResponse { target: t.into() }))
    }

    async fn open(&self, req: Request<p::OpenRequest>) -> Res<p::OpenResponse> {
        let c = self.caller(&req, &req.get_ref().volume).await?;
        let ino = req.get_ref().ino;
        self.settle_open(&c, ino).await?;
        let cx = self.cx(&c);
        let (a, chunks) = self.meta(|m| m.open(c.vol, ino, &cx)).await?;
        let peeked = self.peek(&c, ino, &req.get_ref().peek).await?;
        Ok(Response::new(p::OpenResponse {
            attr: Some(attr(&a)),
            chunks: chunks.into_iter().map(convert::chunk).collect(),
            touched: Vec::new(),
            peeked,
        }))
    }

    async fn release(&self, req: Request<p::InodeRequest>) -> Res<p::Empty> {
        let c = self.caller(&req, &req.get_ref().volume).await?;
        let ino = req.get_ref().ino;
        if c.session.is_empty() {
            return Ok(Response::new(p::Empty {}));
        }
        let out = self.meta(|m| m.release(c.vol, &c.session, ino)).await?;
        self.reap(out.changes.freed);
        Ok(Response::new(p::Empty {}))
    }

    async fn release_many(&self, req: Request<p::ReleaseManyRequest>) -> Res<p::Empty> {
        let c = self.caller(&req, &req.get_ref().volume).await?;
        let inos = req.into_inner().inos;
        if inos.len() > MAX_RELEASES {
            return Err(Status::invalid_argument(format!(
                "{} releases in one call; at most {MAX_RELEASES}",
                inos.len()
            )));
        }
        if c.session.is_empty() || inos.is_empty() {
            return Ok(Response::new(p::Empty {}));
        }
        let out = self
            .meta(|m| m.release_many(c.vol, &c.session, &inos))
            .await?;
        self.reap(out.changes.freed);
        Ok(Response::new(p::Empty {}))
    }

    async fn commit(&self, req: Request<p::CommitRequest>) -> Res<p::Attr> {
        let c = self.caller(&req, &req.get_ref().volume).await?;
        let r = req.into_inner();
        self.settle(&c, Some(&[r.ino])).await;
        let chunks = r
            .chunks
            .iter()
            .map(convert::from_chunk)
            .collect::<Result<Vec<_>, _>>()?;
        if r.durable {
            self.sync_file_blocks(&c, r.ino, &chunks).await?;
        }
        let mut cx = self.cx(&c).fenced(r.fence).killing_suidgid(r.kill_suidgid);
        // The time of the last write, as the writer's stat showed it.
        cx.now = crate::ahead::taken_time(&r.time, cx.now);
        let out = self
            .meta(|m| m.commit(c.vol, r.ino, &chunks, r.write_end, r.durable, &cx))
            .await?;
        self.changed(&c, &out.changes).await;
        Ok(Response::new(attr(&out.value)))
    }

    async fn sync(&self, req: Request<p::InodeRequest>) -> Res<p::Empty> {
        let c = self.caller(&req, &req.get_ref().volume).await?;
        let ino = req.get_ref().ino;
        self.settle(&c, Some(&[ino])).await;
        let vol = c.vol;
        let a = self.meta(move |m| m.getattr(vol, ino)).await?;
        if a.kind == m::FileKind::Regular {
            self.sync_file_blocks(&c, ino, &[]).await?;
        }
        self.meta(|m| m.sync()).await?;
        Ok(Response::new(p::Empty {}))
    }

    async fn get_xattr(&self, req: Request<p::XattrRequest>) -> Res<p::XattrValue> {
        let c = self.caller(&req, &req.get_ref().volume).await?;
        let r = req.into_inner();
        self.settle(&c, Some(&[r.ino])).await;
        let v = self
            .meta(move |m| m.get_xattr(c.vol, r.ino, &r.name))
            .await?;
        Ok(Response::new(p::XattrValue { value: v.into() }))
    }

    async fn set_xattr(&self, req: Request<p::XattrRequest>) -> Res<p::Empty> {
        let c = self.caller(&req, &req.get_ref().volume).await?;
        let r = req.into_inner();
        self.settle(&c, Some(&[r.ino])).await;
        let mode = match r.flags {
            0 => m::XattrMode::Any,
            1 => m::XattrMode::Create,
            2 => m::XattrMode::Replace,
            f => return Err(Status::invalid_argument(format!("xattr flags {f}"))),
        };
        let cx = self.cx(&c);
        let out = self
            .meta(|m| m.set_xattr(c.vol, r.ino, &r.name, &r.value, mode, &cx))
            .await?;
        self.changed(&c, &out.changes).await;
        Ok(Response::new(p::Empty {}))
    }

    async fn list_xattr(&self, req: Request<p::InodeRequest>) -> Res<p::XattrNames> {
        let c = self.caller(&req, &req.get_ref().volume).await?;
        let ino = req.get_ref().ino;
        self.settle(&c, Some(&[ino])).await;
        let names = self.meta(move |m| m.list_xattr(c.vol, ino)).await?;
        Ok(Response::new(p::XattrNames {
            names: names.into_iter().map(Into::into).collect(),
        }))
    }

    async fn remove_xattr(&self, req: Request<p::XattrRequest>) -> Res<p::Empty> {
        let c = self.caller(&req, &req.get_ref().volume).await?;
        let r = req.into_inner();
        self.settle(&c, Some(&[r.ino])).await;
        let cx = self.cx(&c);
        let out = self
            .meta(|m| m.remove_xattr(c.vol, r.ino, &r.name, &cx))
            .await?;
        self.changed(&c, &out.changes).await;
        Ok(Response::new(p::Empty {}))
    }

    async fn stat_fs(&self, req: Request<p::VolumeRef>) -> Res<p::StatFsResponse> {
        let c = self.caller(&req, &req.get_ref().volume).await?;
        let q = self.meta(move |m| m.quota_view(c.vol)).await?;
        let (disk, disk_free) = self
            .blocks
            .capacity()
            .await
            .map_err(convert::blocks_status)?;
        Ok(Response::new(statfs(
            &q,
            disk,
            self.usable(disk, disk_free),
        )))
    }

    async fn resolve(&self, req: Request<p::ResolveRequest>) -> Res<p::Attr> {
        let c = self.caller(&req, &req.get_ref().volume).await?;
        let path = req.into_inner().path;
        // A walk from the root may pass any held directory.
        self.settle(&c, None).await;
        if path.contains('\0') {
            return Err(Status::invalid_argument(format!(
                "path {path:?} contains NUL"
            )));
        }
        let a = self.meta(move |m| m.resolve(c.vol, &path)).await?;
        Ok(Response::new(attr(&a)))
    }

    async fn copy(&self, req: Request<p::CopyRequest>) -> Res<p::Attr> {
        let c = self.caller(&req, &req.get_ref().volume).await?;
        let r = req.into_inner();
        // A copy reads a whole tree, which may hold held directories.
        self.settle(&c, None).await;
        let cx = self.cx(&c);
        let out = self
            .meta(|m| m.copy(c.vol, r.src, r.dst_parent, &r.dst_name, &cx))
            .await?;
        self.changed(&c, &out.changes).await;
        Ok(Response::new(attr(&out.value)))
    }

    async fn lock(&self, req: Request<p::LockRequest>) -> Res<p::LockReply> {
        Ok(Response::new(self.do_lock(req).await?))
    }

    async fn hold(&self, req: Request<p::HoldRequest>) -> Res<p::HoldReply> {
        Ok(Response::new(self.do_hold(req).await?))
    }

    async fn apply(&self, req: Request<p::ApplyRequest>) -> Res<p::ApplyReply> {
        Ok(Response::new(self.do_apply(req).await?))
    }

    async fn missing_blocks(
        &self,
        req: Request<p::MissingBlocksRequest>,
    ) -> Res<p::MissingBlocksResponse> {
        let c = self.caller(&req, "").await?;
        let hashes = req
            .into_inner()
            .hashes
            .iter()
            .map(|h| convert::hash(h))
            .collect::<Result<Vec<_>, _>>()?;
        let missing = self.meta(move |m| m.missing_blocks(c.ws, &hashes)).await?;
        Ok(Response::new(p::MissingBlocksResponse {
            hashes: missing
                .into_iter()
                .map(|h| Bytes::copy_from_slice(&h))
                .collect(),
        }))
    }

    async fn put_block(&self, req: Request<p::PutBlockRequest>) -> Res<p::Empty> {
        let c = self.caller(&req, "").await?;
        let r = req.into_inner();
        self.store_block(c.ws, convert::hash(&r.hash)?, r.data)
            .await?;
        Ok(Response::new(p::Empty {}))
    }

    async fn get_block(&self, req: Request<p::GetBlockRequest>) -> Res<p::GetBlockResponse> {
        let c = self.caller(&req, "").await?;
        let h = convert::hash(&req.get_ref().hash)?;
        // Only the caller's own workspace is looked at: a hash another
        // workspace holds is as unknown as one nobody holds.
        if !self.meta(move |m| m.block_visible(c.ws, &h)).await? {
            return Err(Status::not_found(format!(
                "block {} not found",
                BlockHash(h)
            )));
        }
        let key = block_key(&m::BlockRef {
            workspace: c.ws,
            hash: h,
        });
        let data = self.blocks.get(key).await.map_err(convert::blocks_status)?;
        Ok(Response::new(p::GetBlockResponse { data }))
    }

    async fn block_channel(&self, req: Request<p::Empty>) -> Res<p::BlockChannelReply> {
        self.caller(&req, "").await?;
        Ok(Response::new(match self.block_channel.get() {
            Some(e) => p::BlockChannelReply {
                socket: e.path.to_string_lossy().into_owned(),
                instance: bytes::Bytes::copy_from_slice(&e.instance),
            },
            None => p::BlockChannelReply::default(),
        }))
    }
}

/// What `df` shows for a volume: with a byte quota (the volume's, or its
/// workspace's), the quota as the size and the usage after dedup as used,
/// never more free than the disk has; without, the disk. Likewise inodes.
pub(crate) fn statfs(q: &svol_meta::QuotaView, disk: u64, disk_free: u64) -> p::StatFsResponse {
    // The tightest limit: (size, used) of the volume or the workspace.
    let tightest = |own: (u64, u64), ws: (u64, u64)| -> Option<(u64, u64)> {
        let room =
            |(max, used): (u64, u64)| (max > 0).then(|| (max, used, max.saturating_sub(used)));
        match (room(own), room(ws)) {
            (Some(a), Some(b)) => Some(if a.2 <= b.2 { (a.0, a.1) } else { (b.0, b.1) }),
            (Some(a), None) | (None, Some(a)) => Some((a.0, a.1)),
            (None, None) => None,
        }
    };
    let (total_bytes, free_bytes) =
        match tightest((q.max_bytes, q.stored), (q.ws_max_bytes, q.ws_stored)) {
            Some((max, used)) => (max, max.saturating_sub(used).min(disk_free)),
            None => (disk, disk_free),
        };
    let (files, free_files) = match tightest((q.max_files, q.inodes), (q.ws_max_files, q.ws_inodes))
    {
        Some((max, used)) => (used.min(max), max.saturating_sub(used)),
        None => (q.inodes, 1 << 40),
    };
    p::StatFsResponse {
        total_bytes,
        free_bytes,
        used_bytes: q.stored,
        files,
        free_files,
    }
}
