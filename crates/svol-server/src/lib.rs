//! The svol server: the one process that owns metadata and blocks.
//!
//! It serves the gRPC protocol of `svol-proto` on top of a `MetaStore` and a
//! `BlockStore` (over TLS beyond loopback), checks every call's token before
//! its body is read and against its workspace, bounds what one connection
//! or call may cost, keeps the streams of mounted clients' sessions (leases
//! up, invalidations down), tails the change feed, waits for locks, and
//! deletes blocks whose last reference is gone. Sessions, leases and locks
//! themselves live in the metadata store (docs/coordination.md), so a
//! restart loses none of them. It must not depend on the client or FUSE
//! crates.

mod ahead;
mod auth;
mod blockchan;
mod blocks;
mod clock;
mod control;
mod convert;
mod daemon;
mod dump;
mod feed;
mod file_trash;
mod fsck;
mod limits;
mod locks;
mod memory;
mod metrics;
mod migrate;
mod peek;
mod recall;
mod service;
mod sessions;
#[cfg(test)]
mod state_tests;
mod tls;

use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use svol_blocks::BlockStore;
use svol_meta::{MetaError, MetaStore};
use tokio::net::TcpListener;

pub use auth::hash_token;
pub use clock::{Clock, ManualClock, SystemClock};
pub use dump::{dump, load, DumpManifest};
pub use fsck::{fsck, FsckReport, MissingBlock};
pub use migrate::{migrate, Migrated};
pub use tls::{init_tls, TlsBundle, TlsFiles};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("metadata: {0}")]
    Meta(#[from] MetaError),
    #[error("blocks: {0}")]
    Blocks(#[from] svol_blocks::BlockError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("{0}")]
    DataDirInUse(String),
    /// A dump that cannot be written or loaded, and why.
    #[error("{0}")]
    BadDump(String),
    /// Plain HTTP/2 beyond loopback would put tokens and data on the wire
    /// in clear.
    #[error("refusing to listen on {0} without TLS: pass --tls-cert and --tls-key (make them with `svol server init-tls`), or --insecure on a network you trust")]
    Insecure(SocketAddr),
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServerError {
    let context = context.into();
    move |source| ServerError::Io { context, source }
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// A client that sends no heartbeat for this long loses its session.
    pub lease: Duration,
    /// How long an uploaded block may wait for the commit that uses it.
    pub upload_grace: Duration,
    /// An app none of whose clients has held a lease for this long stops
    /// (and its ephemeral volumes are deleted).
    pub app_grace: Duration,
    /// Serve TLS with these files. Required beyond loopback unless
    /// `insecure`.
    pub tls: Option<TlsFiles>,
    /// Allow plain HTTP/2 on a non-loopback address.
    pub insecure: bool,
    /// Longest a call may run (all but the session stream and lock waits).
    pub request_timeout: Duration,
    /// Free space kept back from block uploads (at most a tenth of the
    /// disk), so that a full volume can still delete: metadata writes and
    /// the bookkeeping of freeing blocks need room too.
    pub reserve: u64,
    /// What "now" is for leases and grace periods.
    pub clock: Arc<dyn Clock>,
    /// Keep blocks in this S3-compatible store (`s3://bucket[/prefix]`,
    /// endpoint and credentials from the `AWS_*` environment) instead of
    /// `DATA_DIR/blocks`.
    pub blocks: Option<String>,
    /// With blocks in the data directory: hand them to clients on this
    /// host as file descriptors over `DATA_DIR/blocks.sock` (the block
    /// channel), so their bytes skip gRPC.
    pub block_channel: bool,
    /// Invalidations a session may have queued before its client is told
    /// to drop all its caches instead.
    pub session_queue: usize,
    /// Metadata in PostgreSQL (`postgres://…`), shared with other servers;
    /// None: SQLite in the data directory.
    pub meta: Option<String>,
    /// Web routes served beside the gRPC service on the same port, with
    /// the same TLS (the dashboard): every path but the service's. The
    /// port then also speaks HTTP/1.1, for browsers.
    pub web: Option<axum::Router>,
    /// How long a deleted volume stays in its workspace's trash before it
    /// is dropped and its space freed (0: dropped at once).
    pub trash_retention: Duration,
}

impl ServerConfig {
    pub fn new(data_dir: PathBuf, listen: SocketAddr) -> Self {
        Self {
            data_dir,
            listen,
            lease: Duration::from_secs(15),
            upload_grace: Duration::from_secs(600),
            app_grace: Duration::from_secs(60),
            tls: None,
            insecure: false,
            request_timeout: Duration::from_secs(120),
            reserve: 64 << 20,
            clock: Arc::new(SystemClock),
            blocks: None,
            block_channel: true,
            session_queue: 4096,
            meta: None,
            web: None,
            trash_retention: Duration::from_secs(24 * 60 * 60),
        }
    }
}

/// What a client needs to reach this server: written to `DATA_DIR/client.toml`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ClientFile {
    pub server: String,
    pub token: String,
    /// The CA that signed the server's certificate, if clients need one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
}

/// Opens the stores, makes sure workspace `main` and its admin token exist,
/// writes `client.toml`, then serves until `shutdown` resolves. `ready` is
/// called with the bound address once connections are accepted.
pub async fn run(
    cfg: ServerConfig,
    ready: impl FnOnce(SocketAddr),
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    make_private(&cfg.data_dir).map_err(io(format!("securing {}", cfg.data_dir.display())))?;
    // Before anything in it is touched: a second server would rewrite
    // client.toml and serve the same SQLite file.
    let _lock = daemon::lock_data_dir(&cfg.data_dir)?;
    // The metadata store is synchronous (and PostgreSQL's client runs its
    // own little runtime): every call leaves the async workers.
    let meta = tokio::task::block_in_place(|| match &cfg.meta {
        Some(url) => MetaStore::open(url),
        None => MetaStore::sqlite(&cfg.data_dir.join("meta.db")),
    })?;
    let blocks = match &cfg.blocks {
        Some(url) => BlockStore::s3(url).await?,
        None => tokio::task::block_in_place(|| {
            let block_dir = cfg.data_dir.join("blocks");
            let adopted = svol_blocks::local::adopt_unowned(&block_dir, |h| {
                meta.block_owners(&h.0)
                    .map(|ws| ws.into_iter().map(|w| w as u64).collect())
                    .map_err(std::io::Error::other)
            })?;
            if adopted > 0 {
                tracing::info!("moved {adopted} blocks to their workspaces' directories");
            }
            BlockStore::local(&block_dir)
        })?,
    };
    if !cfg.listen.ip().is_loopback() && cfg.tls.is_none() && !cfg.insecure {
        return Err(ServerError::Insecure(cfg.listen));
    }
    let tls = cfg.tls.as_ref().map(TlsFiles::server_config).transpose()?;
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(io(format!("listening on {}", cfg.listen)))?;
    let addr = listener.local_addr().map_err(io("local address"))?;
    tokio::task::block_in_place(|| {
        bootstrap(&meta, &cfg, addr)?;
        // Calls that waited for a lock died with the previous process;
        // their clients ask again. A store shared with other servers holds
        // their waiters too: there a session's waits go when it resumes
        // (on any server) or expires.
        if !meta.shared() {
            meta.clear_lock_queue()?;
        }
        Ok::<_, ServerError>(())
    })?;
    let state = Arc::new(tokio::task::block_in_place(|| {
        service::State::new(meta, blocks, &cfg)
    })?);
    let _channel = if cfg.block_channel && cfg.blocks.is_none() {
        open_block_channel(&state, &cfg.data_dir)
    } else {
        None
    };
    feed::spawn_tailer(state.clone());
    sessions::spawn_reaper(state.clone());
    blocks::spawn_sweeper(state.clone());
    memory::spawn_trimmer();

    let svc = svol_proto::svol_server::SvolServer::from_arc(state.clone())
        .max_decoding_message_size(svol_proto::MAX_MESSAGE)
        .max_encoding_message_size(svol_proto::MAX_MESSAGE);
    // The token is checked on the headers, before any body is read.
    let svc =
        tonic::service::interceptor::InterceptedService::new(svc, auth::interceptor(state.clone()));
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(tls.timeout(Duration::from_secs(10)))?;
    }
    let builder = builder
        .tcp_nodelay(true)
        .initial_stream_window_size(Some(8 << 20))
        .initial_connection_window_size(Some(32 << 20))
        .http2_keepalive_interval(Some(Duration::from_secs(10)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        // One connection cannot hold more than this many calls at once.
        .max_concurrent_streams(Some(1024))
        .concurrency_limit_per_connection(1024)
        .http2_max_header_list_size(Some(64 << 10))
        .layer(metrics::RpcLayer)
        .layer(limits::DeadlineLayer(cfg.request_timeout));
    // Beside the service, on the same port: `GET /metrics` and the web
    // routes the caller gave (the dashboard). The port then also speaks
    // HTTP/1.1, which is what scrapers and browsers use.
    let scrape = state.clone();
    let mut web = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let s = scrape.clone();
            async move {
                (
                    [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    metrics::render(s).await,
                )
            }
        }),
    );
    if let Some(extra) = cfg.web.clone() {
        web = web.merge(extra);
    }
    let routes = tonic::service::Routes::new(svc)
        .into_axum_router()
        .merge(web);
    let router = builder
        .accept_http1(true)
        .add_routes(tonic::service::Routes::from(routes));
    // Nagle's algorithm with delayed ACKs stalls small RPCs by 40 ms.
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tracing::info!(%addr, tls = cfg.tls.is_some(), dashboard = cfg.web.is_some(), "serving");
    ready(addr);
    // Graceful, but bounded: every mount holds a connection open (its
    // watch stream) for as long as it lives, so waiting for all of them
    // would never end.
    let (stopping, stopped) = tokio::sync::oneshot::channel();
    let signal = async move {
        shutdown.await;
        tracing::info!(
            "stopping: no new connections; open calls get {:?}",
            daemon::SHUTDOWN_GRACE
        );
        let _ = stopping.send(());
    };
    let serve = router.serve_with_incoming_shutdown(incoming, signal);
    tokio::select! {
        r = serve => r?,
        () = daemon::deadline_after(stopped, daemon::SHUTDOWN_GRACE) => {
            tracing::info!("stopped; connections still open were closed");
        }
    }
    Ok(())
}

/// The block channel on `DATA_DIR/blocks.sock`, if it can listen there
/// (the path fits a socket address and the directory takes a socket):
/// without it, clients get every block by gRPC, which is merely slower.
fn open_block_channel(
    state: &Arc<service::State>,
    dir: &std::path::Path,
) -> Option<blockchan::Listening> {
    let path = dir.join("blocks.sock");
    match blockchan::listen(state.clone(), &path) {
        Ok(l) => {
            let _ = state.block_channel.set(l.endpoint());
            Some(l)
        }
        Err(e) => {
            tracing::warn!(
                "no block channel at {}: {e}; blocks go by gRPC only",
                path.display()
            );
            None
        }
    }
}

/// Where a client on this host reaches a server bound to `addr`: a server
/// on every address through loopback.
pub fn local_address(addr: SocketAddr) -> SocketAddr {
    let mut reach = addr;
    if reach.ip().is_unspecified() {
        reach.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    reach
}

/// First start: workspace `main` with an admin token. Every start:
/// `client.toml` names this server's address and a token that works.
fn bootstrap(meta: &MetaStore, cfg: &ServerConfig, addr: SocketAddr) -> Result<(), ServerError> {
    let dir = &cfg.data_dir;
    let ws = match meta.workspace("main") {
        Ok(ws) => ws,
        // Servers of a cluster starting together race for it.
        Err(MetaError::NotFound(_)) => match meta.create_workspace("main") {
            Err(MetaError::AlreadyExists(_)) => meta.workspace("main")?,
            made => made?,
        },
        Err(e) => return Err(e.into()),
    };
    let path = dir.join("client.toml");
    let existing: Option<ClientFile> = std::fs::read_to_string(&path)
        .ok()
        .and_then(|s| toml::from_str(&s).ok());
    let token = match existing {
        Some(c) if meta.authenticate(&hash_token(&c.token)).is_ok() => c.token,
        _ => {
            let t = auth::new_token();
            meta.add_token(ws.id, &hash_token(&t), "admin", true)?;
            t
        }
    };
    let reach = local_address(addr);
    let file = ClientFile {
        server: match cfg.tls {
            Some(_) => format!("https://{reach}"),
            None => format!("http://{reach}"),
        },
        token,
        ca: cfg.tls.as_ref().and_then(|t| t.ca_for_clients.clone()),
    };
    let text = toml::to_string(&file).map_err(|e| io("client.toml")(std::io::Error::other(e)))?;
    let tmp = dir.join("client.toml.tmp");
    write_private(&tmp, text.as_bytes()).map_err(io(format!("writing {}", tmp.display())))?;
    std::fs::rename(&tmp, &path).map_err(io(format!("writing {}", path.display())))?;
    Ok(())
}

/// The data directory holds every workspace's data and the admin token:
/// 0700, and the database files 0600 (SQLite gives its WAL and shared-memory
/// files the database file's mode, so it is created 0600 before SQLite
/// opens it). Applied on every start, so an older, looser directory is
/// tightened too.
pub(crate) fn make_private(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(dir.join("meta.db"))?;
    for f in ["meta.db", "meta.db-wal", "meta.db-shm", "client.toml"] {
        match std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(0o600)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)?;
    f.sync_all()
}
