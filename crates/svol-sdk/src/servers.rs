//! The servers a client knows and the one it talks to. A client may be
//! given several servers of one cluster (`--server a,b,c`, or a list in
//! `client.toml`): it uses the first that answers and, when that one stops
//! answering, moves on to the next. Servers keep no state of their own (it
//! is all in the shared metadata store), so a mount's session resumes on
//! whichever server it reaches while its lease lasts.

use std::sync::RwLock;
use std::time::Duration;

use svol_proto as p;
use svol_proto::svol_client::SvolClient;
use tonic::transport::{Channel, Endpoint};

use crate::error::chain;
use crate::{config, ClientConfig, ClientError, Result};

/// How long a failover waits for one server to accept a connection.
const CONNECT: Duration = Duration::from_secs(2);

/// Whether a call may be sent again to another server after its server
/// stopped answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Doing it twice is doing it once (reads, commits of the same chunks,
    /// uploads of content-addressed blocks): always.
    Idempotent,
    /// Only if it never reached a server (the connection was refused).
    Unsent,
}

struct Current {
    index: usize,
    /// Rises with every switch, so callers that saw one failure switch
    /// once between them.
    epoch: u64,
    rpc: SvolClient<Channel>,
}

pub(crate) struct Servers {
    endpoints: Vec<(String, Endpoint)>,
    current: RwLock<Current>,
    switching: tokio::sync::Mutex<()>,
}

fn rpc_of(channel: Channel) -> SvolClient<Channel> {
    SvolClient::new(channel)
        .max_decoding_message_size(p::MAX_MESSAGE)
        .max_encoding_message_size(p::MAX_MESSAGE)
}

/// The addresses in `cfg.server`: one, or several separated by commas.
fn addresses(cfg: &ClientConfig) -> Vec<String> {
    cfg.server
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            if s.contains("://") {
                s.to_string()
            } else {
                format!("http://{s}")
            }
        })
        .collect()
}

fn endpoint(cfg: &ClientConfig, server: &str) -> Result<Endpoint> {
    let mut ep = Endpoint::from_shared(server.to_string())
        .map_err(|e| ClientError::InvalidArgument(format!("bad server address {server:?}: {e}")))?;
    if server.starts_with("https://") {
        ep = ep.tls_config(config::client_tls(&cfg.tls)?).map_err(|e| {
            ClientError::Unavailable(format!(
                "cannot reach svol server at {server}: {}",
                chain(&e)
            ))
        })?;
    }
    Ok(ep
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .initial_stream_window_size(Some(8 << 20))
        .initial_connection_window_size(Some(32 << 20))
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_while_idle(true))
}

impl Servers {
    /// Connects to the first of `cfg`'s servers that answers.
    pub(crate) async fn connect(cfg: &ClientConfig) -> Result<Self> {
        let list = addresses(cfg);
        if list.is_empty() {
            return Err(ClientError::InvalidArgument(
                "no server address given".into(),
            ));
        }
        let endpoints = list
            .iter()
            .map(|s| Ok((s.clone(), endpoint(cfg, s)?)))
            .collect::<Result<Vec<_>>>()?;
        let mut failures = Vec::new();
        for (index, (name, ep)) in endpoints.iter().enumerate() {
            match ep.connect().await {
                Ok(ch) => {
                    return Ok(Self {
                        current: RwLock::new(Current {
                            index,
                            epoch: 0,
                            rpc: rpc_of(ch),
                        }),
                        endpoints,
                        switching: tokio::sync::Mutex::new(()),
                    })
                }
                Err(e) => failures.push(format!("{name}: {}", chain(&e))),
            }
        }
        Err(ClientError::Unavailable(format!(
            "cannot reach svol server at {}",
            failures.join("; ")
        )))
    }

    pub(crate) fn rpc(&self) -> SvolClient<Channel> {
        self.read().rpc.clone()
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.read().epoch
    }

    /// The server in use.
    pub(crate) fn server(&self) -> String {
        let i = self.read().index;
        self.endpoints[i].0.clone()
    }

    /// Every server this client knows.
    pub(crate) fn all(&self) -> Vec<String> {
        self.endpoints.iter().map(|(s, _)| s.clone()).collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Current> {
        self.current.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Should a call that failed with `s` go to another server?
    pub(crate) fn should_retry(&self, s: &tonic::Status, retry: Retry, tries: u32) -> bool {
        if self.endpoints.len() < 2 || tries >= 3 * self.endpoints.len() as u32 {
            return false;
        }
        if s.code() != tonic::Code::Unavailable {
            return false;
        }
        retry == Retry::Idempotent || never_sent(s)
    }

    /// Moves to the next server that accepts a connection, unless another
    /// caller already moved on since `epoch`. With one server, or none
    /// answering, it stays (after a short pause, so callers do not spin).
    pub(crate) async fn fail_over(&self, epoch: u64) {
        let _one_at_a_time = self.switching.lock().await;
        let start = {
            let c = self.read();
            if c.epoch != epoch {
                return;
            }
            c.index
        };
        let n = self.endpoints.len();
        for step in 1..=n {
            if n == 1 {
                break;
            }
            let index = (start + step) % n;
            let (name, ep) = &self.endpoints[index];
            match tokio::time::timeout(CONNECT, ep.connect()).await {
                Ok(Ok(ch)) => {
                    tracing::warn!(
                        "svol server {} stopped answering; now using {name}",
                        self.endpoints[start].0
                    );
                    let mut c = self.current.write().unwrap_or_else(|p| p.into_inner());
                    *c = Current {
                        index,
                        epoch: epoch + 1,
                        rpc: rpc_of(ch),
                    };
                    return;
                }
                Ok(Err(e)) => tracing::debug!("failover to {name}: {}", chain(&e)),
                Err(_) => tracing::debug!("failover to {name}: no answer in {CONNECT:?}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Did the call fail before anything was sent (no connection)?
fn never_sent(s: &tonic::Status) -> bool {
    let text = chain(s);
    text.contains("tcp connect error")
        || text.contains("Connection refused")
        || text.contains("client error (Connect)")
}
