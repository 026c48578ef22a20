//! Tokens: random secrets handed to users, stored only as BLAKE3 hashes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use svol_meta::{Grant, Ino, MetaError, WorkspaceId};
use tonic::{Request, Status};

use crate::service::State;

pub fn hash_token(token: &str) -> [u8; 32] {
    *blake3::hash(token.as_bytes()).as_bytes()
}

pub(crate) fn new_token() -> String {
    let b: [u8; 24] = rand::random();
    format!("svol_{}", hex::encode(b))
}

/// Who is calling and on which volume.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub ws: WorkspaceId,
    /// May act on workspaces and tokens beyond its own.
    pub admin: bool,
    /// BLAKE3 of the caller's token, to re-check it on a long-lived stream.
    pub token: [u8; 32],
    /// Root inode of the volume named in the request (0 if none).
    pub vol: Ino,
    /// The caller's session id ("" for one-shot clients such as the CLI).
    pub session: String,
}

fn bearer<T>(req: &Request<T>) -> Result<String, Status> {
    let v = req
        .metadata()
        .get("authorization")
        .ok_or_else(|| Status::unauthenticated("no token: set SVOL_TOKEN or pass --token"))?;
    let s = v
        .to_str()
        .map_err(|_| Status::unauthenticated("malformed authorization header"))?;
    s.strip_prefix("Bearer ")
        .map(str::to_string)
        .ok_or_else(|| Status::unauthenticated("authorization header is not a Bearer token"))
}

/// Recent answers to "whose token is this" and "which volume is that", so
/// a file-system call costs no extra database round trip. Entries live one
/// second: a token revoked or a volume deleted through another server
/// process stops working within that time; through this process, at once
/// (`forget_volumes`, `forget_tokens`).
#[derive(Default)]
pub(crate) struct AuthCache {
    tokens: Mutex<HashMap<[u8; 32], (Grant, Instant)>>,
    volumes: Mutex<HashMap<(WorkspaceId, String), (Ino, Instant)>>,
}

const FRESH: Duration = Duration::from_secs(1);

fn cached<K: std::hash::Hash + Eq, V: Copy>(
    m: &Mutex<HashMap<K, (V, Instant)>>,
    k: &K,
) -> Option<V> {
    let m = m.lock().unwrap_or_else(|p| p.into_inner());
    m.get(k)
        .filter(|(_, at)| at.elapsed() < FRESH)
        .map(|(v, _)| *v)
}

fn remember<K: std::hash::Hash + Eq, V>(m: &Mutex<HashMap<K, (V, Instant)>>, k: K, v: V) {
    let mut m = m.lock().unwrap_or_else(|p| p.into_inner());
    if m.len() > 10_000 {
        m.retain(|_, (_, at)| at.elapsed() < FRESH);
    }
    m.insert(k, (v, Instant::now()));
}

impl AuthCache {
    /// After a revocation: every token is checked again on its next call.
    pub(crate) fn forget_tokens(&self) {
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    pub(crate) fn forget_volumes(&self) {
        self.volumes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

/// What the interceptor found out about a request's token.
#[derive(Clone, Copy)]
struct Authenticated {
    token: [u8; 32],
    grant: Grant,
}

fn refused(e: MetaError) -> Status {
    match e {
        MetaError::PermissionDenied(_) => Status::unauthenticated("invalid or revoked token"),
        e => crate::convert::status(e),
    }
}

/// Checks every request's token on its headers, before tonic reads (and
/// buffers) its body: a caller without a valid token costs the server a
/// hash and, at most once a second per token, one indexed lookup.
pub(crate) fn interceptor(
    state: Arc<State>,
) -> impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone + Send + Sync + 'static {
    move |mut req: Request<()>| {
        let token = hash_token(&bearer(&req)?);
        let grant = state.grant(token)?;
        req.extensions_mut().insert(Authenticated { token, grant });
        Ok(req)
    }
}

impl State {
    /// The request's token and what it grants (from the interceptor, or
    /// looked up here for calls that did not pass through it).
    fn authenticated<T>(&self, req: &Request<T>) -> Result<([u8; 32], Grant), Status> {
        if let Some(a) = req.extensions().get::<Authenticated>() {
            return Ok((a.token, a.grant));
        }
        let token = hash_token(&bearer(req)?);
        Ok((token, self.grant(token)?))
    }

    /// Checks the token and, if `volume` is not empty, that the volume
    /// belongs to the token's workspace.
    pub(crate) async fn caller<T>(&self, req: &Request<T>, volume: &str) -> Result<Caller, Status> {
        let (token, grant) = self.authenticated(req)?;
        let session = req
            .metadata()
            .get(svol_proto::SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let ws = grant.workspace;
        if volume.is_empty() {
            // Control-plane and block calls do not act through a session
            // (a client may still carry the header of one that ended).
            return Ok(Caller {
                ws,
                admin: grant.admin,
                token,
                vol: 0,
                session: String::new(),
            });
        }
        let key = (ws, volume.to_string());
        let vol = match cached(&self.auth.volumes, &key) {
            Some(v) => v,
            None => {
                let meta = self.meta.clone();
                let name = key.1.clone();
                let v = tokio::task::spawn_blocking(move || meta.volume(ws, &name))
                    .await
                    .map_err(|e| Status::internal(e.to_string()))?
                    .map_err(crate::convert::status)?
                    .root;
                remember(&self.auth.volumes, key, v);
                v
            }
        };
        if !session.is_empty() {
            let owner = svol_meta::SessionOwner {
                workspace: ws,
                token,
            };
            self.check_session(&session, owner, vol).await?;
        }
        Ok(Caller {
            ws,
            admin: grant.admin,
            token,
            vol,
            session,
        })
    }

    /// What the token (by hash) may do; `Unauthenticated` if nothing.
    /// Called from the interceptor (not async), so the rare lookup runs in
    /// place, as every metadata call does (`State::meta`).
    pub(crate) fn grant(&self, token: [u8; 32]) -> Result<Grant, Status> {
        if let Some(g) = cached(&self.auth.tokens, &token) {
            return Ok(g);
        }
        let g = tokio::task::block_in_place(|| self.meta.authenticate(&token)).map_err(refused)?;
        remember(&self.auth.tokens, token, g);
        Ok(g)
    }
}
