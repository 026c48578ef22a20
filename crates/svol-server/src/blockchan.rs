//! The server's end of the block channel (`svol_proto::blockchan`): a Unix
//! socket in the data directory through which a client on this host gets
//! blocks as open file descriptors and hands in blocks as memfds. Same
//! checks as `GetBlock` and `PutBlock`: a valid token (checked again on
//! every request, so a revocation bites within the auth cache's second);
//! a read only of a block its workspace holds (a hash of another
//! workspace is as unknown as one nobody holds); a write copied out of
//! the memfd first, then stored exactly as `PutBlock` stores it (space,
//! quota, hash).
//!
//! One thread per connection: a mount keeps a few connections for its
//! lifetime, and blocking code here keeps the descriptor passing out of
//! the async runtime; a write's storing runs on the runtime.

use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use svol_meta::{BlockId, BlockRef, WorkspaceId};
use svol_proto::blockchan as chan;

use crate::auth::hash_token;
use crate::service::State;

/// Where clients find the channel, as told by the `BlockChannel` RPC.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub path: PathBuf,
    pub instance: [u8; chan::INSTANCE_LEN],
}

/// The listening channel; dropping it stops accepting and removes the
/// socket.
pub(crate) struct Listening {
    endpoint: Endpoint,
    stop: Arc<AtomicBool>,
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which then sees `stop`.
        let _ = UnixStream::connect(&self.endpoint.path);
        let _ = std::fs::remove_file(&self.endpoint.path);
    }
}

impl Listening {
    pub(crate) fn endpoint(&self) -> Endpoint {
        self.endpoint.clone()
    }
}

/// Serves the channel at `path` (a stale socket a previous process left is
/// replaced: the data directory's lock says none other is running).
pub(crate) fn listen(state: Arc<State>, path: &Path) -> std::io::Result<Listening> {
    let runtime = tokio::runtime::Handle::current();
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    let stop = Arc::new(AtomicBool::new(false));
    let instance: [u8; chan::INSTANCE_LEN] = rand::random();
    let stopped = stop.clone();
    std::thread::Builder::new()
        .name("svol-blockchan".into())
        .spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let state = state.clone();
                let stopped = stopped.clone();
                let runtime = runtime.clone();
                let spawned = std::thread::Builder::new()
                    .name("svol-blockchan-conn".into())
                    .spawn(move || {
                        if let Err(e) = serve(&state, &runtime, &conn, &instance, &stopped) {
                            if e.kind() != std::io::ErrorKind::UnexpectedEof {
                                tracing::debug!("block channel connection ended: {e}");
                            }
                        }
                    });
                if let Err(e) = spawned {
                    tracing::warn!("block channel: no thread for a connection: {e}");
                }
            }
        })?;
    Ok(Listening {
        endpoint: Endpoint {
            path: path.to_path_buf(),
            instance,
        },
        stop,
    })
}

fn serve(
    state: &Arc<State>,
    runtime: &tokio::runtime::Handle,
    conn: &UnixStream,
    instance: &[u8; chan::INSTANCE_LEN],
    stop: &AtomicBool,
) -> std::io::Result<()> {
    chan::write_greeting(conn, instance)?;
    let token = hash_token(&chan::read_token(conn)?);
    let ws = match state.grant(token) {
        Ok(g) => g.workspace,
        Err(e) => {
            return chan::send_reply(conn, chan::REFUSED, e.message().as_bytes(), None);
        }
    };
    chan::send_reply(conn, chan::OK, &[], None)?;
    loop {
        let req = chan::recv_request(conn)?;
        if stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        // The token may have been revoked since the greeting.
        if let Err(e) = state.grant(token) {
            return chan::send_reply(conn, chan::REFUSED, e.message().as_bytes(), None);
        }
        match req.kind {
            chan::PUT => put(state, runtime, conn, ws, req)?,
            _ => get(state, conn, ws, req.hash)?,
        }
    }
}

fn get(state: &State, conn: &UnixStream, ws: WorkspaceId, hash: BlockId) -> std::io::Result<()> {
    let not_found = || format!("block {} not found", svol_blocks::BlockHash(hash));
    match state.meta.block_visible(ws, &hash) {
        Ok(true) => {}
        Ok(false) => return chan::send_reply(conn, chan::NOT_FOUND, not_found().as_bytes(), None),
        Err(e) => return chan::send_reply(conn, chan::FAILED, e.to_string().as_bytes(), None),
    }
    let key = crate::blocks::block_key(&BlockRef {
        workspace: ws,
        hash,
    });
    match state.blocks.open_file(key) {
        Ok(Some((file, len))) => {
            chan::send_reply(conn, chan::OK, &len.to_be_bytes(), Some(file.as_fd()))?;
            crate::metrics::block_fd_sent();
            Ok(())
        }
        // Blocks that are not files here: the client asks by gRPC.
        Ok(None) => chan::send_reply(conn, chan::FAILED, b"blocks are not local files", None),
        Err(svol_blocks::BlockError::NotFound(_)) => {
            chan::send_reply(conn, chan::NOT_FOUND, not_found().as_bytes(), None)
        }
        Err(e) => chan::send_reply(conn, chan::FAILED, e.to_string().as_bytes(), None),
    }
}

/// Copies the block out of the client's memfd (a file of any other kind
/// could block this thread or change under it) and stores it as
/// `PutBlock` does.
fn put(
    state: &Arc<State>,
    runtime: &tokio::runtime::Handle,
    conn: &UnixStream,
    ws: WorkspaceId,
    req: chan::Request,
) -> std::io::Result<()> {
    let refuse = |m: &str| chan::send_reply(conn, chan::FAILED, m.as_bytes(), None);
    let Some(fd) = req.fd else {
        return refuse("a block to store comes with a memfd");
    };
    if !chan::is_memfd(fd.as_fd()) {
        return refuse("a block to store comes in a memfd, not another kind of file");
    }
    if req.len > svol_blocks::MAX_BLOCK as u64 {
        return refuse(&svol_blocks::BlockError::TooLarge(req.len as usize).to_string());
    }
    let data = match chan::read_whole(&std::fs::File::from(fd), req.len) {
        Ok(d) => d,
        Err(e) => return refuse(&format!("reading the memfd: {e}")),
    };
    let stored = runtime.block_on({
        let state = state.clone();
        runtime.spawn(async move { state.store_block(ws, req.hash, data).await })
    });
    match stored {
        Ok(Ok(())) => {
            crate::metrics::block_fd_received();
            chan::send_reply(conn, chan::OK, &[], None)
        }
        Ok(Err(status)) => refuse(status.message()),
        Err(e) => refuse(&e.to_string()),
    }
}
