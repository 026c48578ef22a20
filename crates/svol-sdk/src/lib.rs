//! The svol Rust SDK: connects to a server with a token and speaks the wire
//! protocol for everyone else — Rust programs, the CLI (which is only a user
//! of this crate) and the FUSE mount. It owns configuration lookup, error
//! classification, apps and volume lifetimes, and path-level file transfers.
//! It must not depend on FUSE or on any server-side crate.
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

mod app;
mod config;
mod control;
mod download;
mod error;
mod paths;
mod transfer;
mod volume;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use svol_proto as p;
use svol_proto::svol_client::SvolClient;
use tonic::transport::{Channel, Endpoint};

pub use app::App;
pub use config::{default_data_dir, ClientConfig, TlsConfig};
pub use download::DownloadOptions;
pub use error::{ClientError, FsErrno, Result};
pub use paths::{BatchUpload, Entry};
pub use transfer::{hash_chunks, Progress};
pub use volume::{check_remote_path, check_volume_name, Volume};

/// A connection to one server as one workspace. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    rpc: SvolClient<Channel>,
    auth: tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
    session: Arc<RwLock<String>>,
    server: String,
    /// Block bytes this client (and its clones) sent to the server.
    uploaded: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub async fn connect(cfg: &ClientConfig) -> Result<Self> {
        let server = if cfg.server.contains("://") {
            cfg.server.clone()
        } else {
            format!("http://{}", cfg.server)
        };
        let unreachable = |e: &dyn std::fmt::Display| {
            ClientError::Unavailable(format!("cannot reach svol server at {server}: {e}"))
        };
        let mut ep = Endpoint::from_shared(server.clone()).map_err(|e| {
            ClientError::InvalidArgument(format!("bad server address {server:?}: {e}"))
        })?;
        if server.starts_with("https://") {
            ep = ep
                .tls_config(config::client_tls(&cfg.tls)?)
                .map_err(|e| unreachable(&error::chain(&e)))?;
        }
        let ep = ep
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .initial_stream_window_size(Some(8 << 20))
            .initial_connection_window_size(Some(32 << 20))
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_while_idle(true);
        let channel = ep
            .connect()
            .await
            .map_err(|e| unreachable(&error::chain(&e)))?;
        let auth = format!("Bearer {}", cfg.token).parse().map_err(|_| {
            ClientError::InvalidArgument("token contains characters not allowed in a header".into())
        })?;
        let rpc = SvolClient::new(channel)
            .max_decoding_message_size(p::MAX_MESSAGE)
            .max_encoding_message_size(p::MAX_MESSAGE);
        Ok(Self {
            rpc,
            auth,
            session: Arc::new(RwLock::new(String::new())),
            server,
            uploaded: Arc::default(),
        })
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    /// Block bytes uploaded so far: what deduplication did not save.
    pub fn bytes_uploaded(&self) -> u64 {
        self.uploaded.load(std::sync::atomic::Ordering::Relaxed)
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
        self.rpc.clone()
    }

    /// Makes later calls carry this session id (set by the mount's session).
    pub fn set_session(&self, id: &str) {
        *self.session.write().unwrap_or_else(|p| p.into_inner()) = id.to_string();
    }

    /// Opens the session stream of a mount: `up` carries Hello and heartbeats.
    pub async fn session(
        &self,
        up: impl futures::Stream<Item = p::SessionUp> + Send + 'static,
    ) -> Result<tonic::Streaming<p::SessionDown>> {
        Ok(self.rpc().session(self.req(up)).await?.into_inner())
    }
}
