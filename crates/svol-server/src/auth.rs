//! Tokens: random secrets handed to users, stored only as BLAKE3 hashes.

use svol_meta::{Ino, MetaError, WorkspaceId};
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

impl State {
    /// Checks the token and, if `volume` is not empty, that the volume
    /// belongs to the token's workspace.
    pub(crate) async fn caller<T>(&self, req: &Request<T>, volume: &str) -> Result<Caller, Status> {
        let token = bearer(req)?;
        let session = req
            .metadata()
            .get(svol_proto::SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let volume = volume.to_string();
        let meta = self.meta.clone();
        tokio::task::spawn_blocking(move || {
            let ws = meta
                .authenticate(&hash_token(&token))
                .map_err(|e| match e {
                    MetaError::PermissionDenied(_) => {
                        Status::unauthenticated("invalid or revoked token")
                    }
                    e => crate::convert::status(e),
                })?;
            let vol = if volume.is_empty() {
                0
            } else {
                meta.volume(ws, &volume)
                    .map_err(crate::convert::status)?
                    .root
            };
            Ok(Caller { ws, vol, session })
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
    }
}
