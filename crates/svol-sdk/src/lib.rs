//! The svol Rust SDK: connects to a server with a token and speaks the wire
//! protocol for everyone else — Rust programs, the CLI (which is only a user
//! of this crate) and the FUSE mount. It owns configuration lookup, error
//! classification, apps and volume lifetimes, path-level file transfers,
//! and the types its callers see: nodes (`Attr`, `FileKind`, `Chunk`), what
//! they ask (`NewNode`, `SetAttr`, locks, operations made ahead) and a
//! mount's session stream; the wire's messages are converted here and go
//! no further. It must not depend on FUSE or on any server-side crate.
//!
//! ```no_run
//! # async fn demo() -> svol_sdk::Result<()> {
//! use svol_sdk::{App, Client, ClientConfig, Volume};
//! let client = Client::connect(&ClientConfig::resolve(None, None)?).await?;
//! let app = App::create(&client, "train").await?;
//! let scratch = Volume::ephemeral(&app).await?;          // gone when the app stops
//! scratch.write_file("/data/x.bin", vec![1u8; 1000]).await?;
//! let cache = Volume::from_name(&client, "model-cache", true).await?;
//! cache.batch_upload(false).put_file("./weights", "/weights").commit().await?;
//! println!("{:?}", cache.listdir("/").await?);
//! app.stop().await?;
//! # Ok(()) }
//! ```

/// Calls RPC `$method` with message `$msg` on the server in use; when
/// that server stops answering and the client knows others, moves on and
/// calls again (always for a `Retry::Idempotent` call, for `Retry::Unsent`
/// only if the call never reached the server). Evaluates to the reply.
macro_rules! call {
    ($client:expr, $retry:ident, $method:ident, $msg:expr) => {{
        let client: &$crate::Client = &$client;
        let msg = $msg;
        let mut tries = 0u32;
        loop {
            let epoch = client.epoch();
            match client.rpc().$method(client.req(msg.clone())).await {
                Ok(r) => break Ok::<_, $crate::ClientError>(r.into_inner()),
                Err(s) if client.should_retry(&s, $crate::Retry::$retry, tries) => {
                    tries += 1;
                    client.fail_over(epoch).await;
                }
                Err(s) => break Err($crate::ClientError::from(s)),
            }
        }
    }};
}

mod app;
mod blockchan;
mod config;
mod control;
mod download;
mod error;
mod node;
mod ops;
mod paths;
mod records;
mod servers;
mod session;
mod transfer;
mod utc;
mod volume;

use std::sync::{Arc, RwLock};
use svol_proto as p;
use svol_proto::svol_client::SvolClient;
use tonic::transport::Channel;

pub(crate) use servers::Retry;

pub use app::App;
pub use config::{default_data_dir, ClientConfig, TlsConfig};
pub use control::{DeletedFile, DeletedPick};
pub use download::DownloadOptions;
pub use error::{ClientError, FsErrno, Result};
pub use node::{
    Attr, Chunk, DirEntry, DirPage, EntryReply, FileKind, Opened, Peeked, TimeSet, Timespec,
};
pub use ops::{
    Held, LockKind, LockReply, LockRequest, NewNode, QueuedCommit, QueuedCreate, QueuedOp,
    QueuedRename, QueuedSetAttr, QueuedUnlink, SetAttr, StatFs,
};
pub use paths::{BatchUpload, Entry};
pub use records::{
    AppInfo, ClientInfo, Identity, NewToken, TokenInfo, Trash, TrashedVolume, VolumeInfo,
    WorkspaceInfo,
};
pub use session::{Invalidation, SessionDown, SessionStream, SessionUp, Welcome};
/// Constants of the protocol a caller's data must fit: the chunk a file is
/// cut into, the largest chunk kept inline, how many files an open may
/// peek at, and `rename`'s flags (Linux's values).
pub use svol_proto::{CHUNK_SIZE, INLINE_MAX, MAX_PEEK, RENAME_EXCHANGE, RENAME_NOREPLACE};
pub use transfer::{hash_chunks, Progress};
pub use utc::UtcTime;
pub use volume::{check_remote_path, check_volume_name, check_volume_ref, Commit, Volume};

/// A connection to a server (one of several of a cluster, failing over
/// between them) as one workspace. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    servers: Arc<servers::Servers>,
    auth: tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
    session: Arc<RwLock<String>>,
    /// Block bytes this client (and its clones) sent to the server.
    uploaded: Arc<std::sync::atomic::AtomicU64>,
    /// The token itself, for the block channel's greeting.
    token: Arc<str>,
    /// The server's block channel, once asked for (None if turned off).
    channel: Option<Arc<blockchan::ChannelSlot>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("server", &self.servers.server())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to the first server of `cfg.server` (one address, or
    /// several separated by commas) that answers.
    pub async fn connect(cfg: &ClientConfig) -> Result<Self> {
        let servers = servers::Servers::connect(cfg).await?;
        let auth = format!("Bearer {}", cfg.token).parse().map_err(|_| {
            ClientError::InvalidArgument("token contains characters not allowed in a header".into())
        })?;
        Ok(Self {
            servers: Arc::new(servers),
            auth,
            session: Arc::new(RwLock::new(String::new())),
            uploaded: Arc::default(),
            token: Arc::from(cfg.token.as_str()),
            channel: blockchan::enabled().then(Arc::default),
        })
    }

    /// Runs `f` (blocking) on the block channel of the server in use:
    /// None if there is no channel this process can reach, or `f` says the
    /// channel does not serve this block (the caller then goes by gRPC). A
    /// broken channel is left alone for a while.
    pub(crate) async fn through_channel<T: Send + 'static>(
        &self,
        f: impl FnOnce(&blockchan::BlockChannel) -> std::io::Result<Option<T>> + Send + 'static,
    ) -> Option<T> {
        let ch = self.block_channel().await?;
        match tokio::task::spawn_blocking(move || f(&ch)).await {
            Ok(Ok(got)) => got,
            Ok(Err(e)) => {
                tracing::debug!("block channel failed, using gRPC: {e}");
                if let Some(slot) = &self.channel {
                    slot.failed(self.epoch());
                }
                None
            }
            Err(e) => {
                tracing::debug!("block channel call died: {e}");
                None
            }
        }
    }

    /// The block channel of the server in use, if it has one this process
    /// can reach (see `blockchan`).
    async fn block_channel(&self) -> Option<Arc<blockchan::BlockChannel>> {
        let slot = self.channel.as_ref()?;
        slot.get(self.epoch(), || async {
            let r = call!(self, Idempotent, block_channel, p::Empty {}).ok()?;
            let instance =
                <[u8; svol_proto::blockchan::INSTANCE_LEN]>::try_from(&r.instance[..]).ok()?;
            (!r.socket.is_empty()).then(|| {
                blockchan::BlockChannel::new(r.socket.into(), instance, self.token.to_string())
            })
        })
        .await
    }

    /// The server in use now.
    pub fn server(&self) -> String {
        self.servers.server()
    }

    /// Every server this client may use.
    pub fn servers(&self) -> Vec<String> {
        self.servers.all()
    }

    /// Counts server switches (see `fail_over`).
    pub fn epoch(&self) -> u64 {
        self.servers.epoch()
    }

    /// Moves to another server of the list, unless some caller already did
    /// since `epoch`; with a single server it only pauses briefly.
    pub async fn fail_over(&self, epoch: u64) {
        self.servers.fail_over(epoch).await
    }

    pub(crate) fn should_retry(&self, s: &tonic::Status, retry: Retry, tries: u32) -> bool {
        self.servers.should_retry(s, retry, tries)
    }

    /// Block bytes uploaded so far: what deduplication did not save.
    pub fn bytes_uploaded(&self) -> u64 {
        self.uploaded.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn count_uploaded(&self, n: u64) {
        self.uploaded
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// Wraps a message with the token and the session id.
    pub(crate) fn req<T>(&self, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        r.metadata_mut().insert("authorization", self.auth.clone());
        let s = self.session.read().unwrap_or_else(|p| p.into_inner());
        if !s.is_empty() {
            if let Ok(v) = s.parse() {
                r.metadata_mut().insert(p::SESSION_HEADER, v);
            }
        }
        r
    }

    pub(crate) fn rpc(&self) -> SvolClient<Channel> {
        self.servers.rpc()
    }

    /// This client with a session slot of its own: the same connection,
    /// but [`Client::set_session`] on it leaves the original's calls alone.
    /// Every mount of a process is its own session (`svol run` mounts
    /// several volumes with one client); sharing one slot sent each mount's
    /// calls with the session of whichever mounted last, which the server
    /// refuses for another volume.
    pub fn with_own_session(&self) -> Client {
        Client {
            session: Arc::new(RwLock::new(String::new())),
            ..self.clone()
        }
    }

    /// Makes later calls carry this session id (set by the mount's session).
    pub fn set_session(&self, id: &str) {
        *self.session.write().unwrap_or_else(|p| p.into_inner()) = id.to_string();
    }
}
