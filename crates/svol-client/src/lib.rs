//! The svol client library: connects to a server with a token and speaks
//! the wire protocol for everyone else — the CLI's volume commands, the FUSE
//! mount and, later, the public SDK. It owns configuration lookup, error
//! classification and whole-file transfers; it must not depend on FUSE or on
//! any server-side crate.

mod config;
mod error;
mod transfer;
mod volume;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use svol_proto as p;
use svol_proto::svol_client::SvolClient;
use tonic::transport::{Channel, Endpoint};

pub use config::{default_data_dir, ClientConfig};
pub use error::{ClientError, FsErrno, Result};
pub use transfer::{hash_chunks, Progress};
pub use volume::{check_remote_path, check_volume_name, Volume};

/// A connection to one server as one workspace. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    rpc: SvolClient<Channel>,
    auth: tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
    session: Arc<RwLock<String>>,
    server: String,
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
        let ep = Endpoint::from_shared(server.clone())
            .map_err(|e| {
                ClientError::InvalidArgument(format!("bad server address {server:?}: {e}"))
            })?
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
        })
    }

    pub fn server(&self) -> &str {
        &self.server
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

    pub async fn create_volume(&self, name: &str) -> Result<p::VolumeInfo> {
        check_volume_name(name)?;
        let r = self
            .rpc()
            .create_volume(self.req(p::CreateVolumeRequest { name: name.into() }))
            .await;
        Ok(
            r.map_err(|e| ClientError::from(e).context(&format!("volume {name}")))?
                .into_inner(),
        )
    }

    pub async fn list_volumes(&self) -> Result<Vec<p::VolumeInfo>> {
        Ok(self
            .rpc()
            .list_volumes(self.req(p::ListVolumesRequest {}))
            .await?
            .into_inner()
            .volumes)
    }

    pub async fn volume_info(&self, name: &str) -> Result<p::VolumeInfo> {
        check_volume_name(name)?;
        let r = self
            .rpc()
            .get_volume(self.req(p::GetVolumeRequest { name: name.into() }))
            .await;
        Ok(
            r.map_err(|e| ClientError::from(e).context(&format!("volume {name}")))?
                .into_inner(),
        )
    }

    pub async fn delete_volume(&self, name: &str) -> Result<()> {
        check_volume_name(name)?;
        let r = self
            .rpc()
            .delete_volume(self.req(p::GetVolumeRequest { name: name.into() }))
            .await;
        r.map_err(|e| ClientError::from(e).context(&format!("volume {name}")))?;
        Ok(())
    }

    pub async fn rename_volume(&self, name: &str, new_name: &str) -> Result<p::VolumeInfo> {
        check_volume_name(name)?;
        check_volume_name(new_name)?;
        let req = p::RenameVolumeRequest {
            name: name.into(),
            new_name: new_name.into(),
        };
        let r = self.rpc().rename_volume(self.req(req)).await;
        Ok(
            r.map_err(|e| ClientError::from(e).context(&format!("volume {name}")))?
                .into_inner(),
        )
    }

    pub async fn create_token(&self, label: &str) -> Result<String> {
        let r = self
            .rpc()
            .create_token(self.req(p::CreateTokenRequest { name: label.into() }))
            .await?;
        Ok(r.into_inner().token)
    }

    /// A handle on a volume for file operations (checks that it exists).
    pub async fn volume(&self, name: &str) -> Result<Volume> {
        let info = self.volume_info(name).await?;
        Ok(Volume::new(self.clone(), info))
    }
}
