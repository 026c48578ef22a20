//! The client's end of the block channel (`svol_proto::blockchan`): on the
//! server's own host, a block to read comes as an open file that this
//! process reads straight from the disk, and a block to write goes as a
//! memfd the server copies from, instead of as bytes through gRPC. Every
//! block read this way is checked against its hash (and the server checks
//! every block written). Anything the channel cannot answer (no channel,
//! a refusal, a missing or corrupt block, a full disk, a broken socket)
//! goes by `GetBlock` / `PutBlock`, whose answer is the canonical one.
//!
//! `SVOL_BLOCK_CHANNEL=off` in the environment turns the channel off.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, FromRawFd};
use std::os::unix::fs::FileExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use svol_proto::blockchan as chan;

/// Connections kept open between requests (a mount reads ahead and
/// uploads a few blocks at once; a read holds a connection for a few µs,
/// a write while the server stores the block).
const IDLE_MAX: usize = 8;
/// Memfds kept for the next writes: rewriting one in place reuses its
/// pages, where a fresh one would have the kernel zero 4 MiB first. At
/// most this many blocks' worth of shared memory stays with the process.
const MEMFDS_MAX: usize = 4;
/// After the channel failed, blocks go by gRPC this long before the
/// server is asked again where its channel is (it may have restarted).
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// A server's block channel, as told by its `BlockChannel` RPC.
pub(crate) struct BlockChannel {
    path: PathBuf,
    instance: [u8; chan::INSTANCE_LEN],
    token: String,
    idle: Mutex<Vec<UnixStream>>,
    memfds: Mutex<Vec<File>>,
}

impl BlockChannel {
    pub(crate) fn new(path: PathBuf, instance: [u8; chan::INSTANCE_LEN], token: String) -> Self {
        Self {
            path,
            instance,
            token,
            idle: Mutex::default(),
            memfds: Mutex::default(),
        }
    }

    /// Blocking. `Ok(Some)`: the block's bytes, checked. `Ok(None)`: the
    /// channel does not serve this block; ask by gRPC. `Err`: the channel
    /// is broken.
    pub(crate) fn fetch(&self, hash: &[u8]) -> io::Result<Option<Bytes>> {
        let Ok(hash) = <&[u8; chan::HASH_LEN]>::try_from(hash) else {
            return Ok(None);
        };
        let conn = self.connection()?;
        chan::send_request(&conn, hash, None)?;
        let reply = chan::recv_reply(&conn)?;
        let message = reply.message();
        let data = match (reply.code, reply.fd) {
            (chan::OK, Some(fd)) => {
                let len = <[u8; 8]>::try_from(&reply.body[..])
                    .map(u64::from_be_bytes)
                    .map_err(|_| io::Error::other("malformed block length"))?;
                let data = chan::read_whole(&File::from(fd), len)?;
                // A descriptor is a shortcut to the bytes, not a reason to
                // trust them: a mismatch goes by gRPC, which says Corrupt.
                (blake3::hash(&data).as_bytes() == hash).then_some(data)
            }
            // The server hangs up after a refusal.
            (chan::REFUSED, _) => return Err(io::Error::other(format!("refused: {message}"))),
            _ => None,
        };
        self.give_back(conn);
        Ok(data)
    }

    /// Blocking. Stores a block through a memfd. `Ok(Some)`: stored, as
    /// `PutBlock` would have; `Ok(None)`: not stored (quota, full disk,
    /// a bad hash…); ask by gRPC for the answer. `Err`: the channel is
    /// broken.
    pub(crate) fn store(&self, hash: &[u8], data: &[u8]) -> io::Result<Option<()>> {
        let Ok(hash) = <&[u8; chan::HASH_LEN]>::try_from(hash) else {
            return Ok(None);
        };
        let memfd = match self.memfds.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            Some(f) => f,
            None => new_memfd()?,
        };
        // Only the first `len` bytes count: a longer memfd keeps its pages.
        memfd.write_all_at(data, 0)?;
        if memfd.metadata()?.len() < data.len() as u64 {
            memfd.set_len(data.len() as u64)?;
        }
        let conn = self.connection()?;
        chan::send_request(&conn, hash, Some((data.len() as u64, memfd.as_fd())))?;
        let reply = chan::recv_reply(&conn)?;
        let mut memfds = self.memfds.lock().unwrap_or_else(|p| p.into_inner());
        if memfds.len() < MEMFDS_MAX {
            memfds.push(memfd);
        }
        drop(memfds);
        if reply.code == chan::REFUSED {
            return Err(io::Error::other(format!("refused: {}", reply.message())));
        }
        self.give_back(conn);
        Ok((reply.code == chan::OK).then_some(()))
    }

    fn connection(&self) -> io::Result<UnixStream> {
        if let Some(c) = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            return Ok(c);
        }
        let c = UnixStream::connect(&self.path)?;
        // Not ours to talk to: our token goes nowhere else.
        if chan::read_greeting(&c)? != self.instance {
            return Err(io::Error::other("another server's block channel"));
        }
        chan::write_token(&c, &self.token)?;
        let r = chan::recv_reply(&c)?;
        if r.code != chan::OK {
            return Err(io::Error::other(format!("refused: {}", r.message())));
        }
        Ok(c)
    }

    fn give_back(&self, c: UnixStream) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < IDLE_MAX {
            idle.push(c);
        }
    }
}

/// The channel (None: there is none, or it failed), when that was learnt,
/// and the client's server epoch then.
type Known = (Option<Arc<BlockChannel>>, Instant, u64);

/// What a client knows of its server's channel.
#[derive(Default)]
pub(crate) struct ChannelSlot {
    /// The channel (None: there is none, or it failed), when that was
    /// learnt, and the client's server epoch then.
    known: Mutex<Option<Known>>,
}

impl ChannelSlot {
    /// The channel to use now; `None` to go by gRPC. `resolve` asks the
    /// server, when what is known is stale.
    pub(crate) async fn get<F, Fut>(&self, epoch: u64, resolve: F) -> Option<Arc<BlockChannel>>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Option<BlockChannel>>,
    {
        {
            let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((ch, at, e)) = &*known {
                if *e == epoch && (ch.is_some() || at.elapsed() < RETRY_AFTER) {
                    return ch.clone();
                }
            }
        }
        let ch = resolve().await.map(Arc::new);
        *self.known.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((ch.clone(), Instant::now(), epoch));
        ch
    }

    /// The channel broke: gRPC for a while.
    pub(crate) fn failed(&self, epoch: u64) {
        *self.known.lock().unwrap_or_else(|p| p.into_inner()) = Some((None, Instant::now(), epoch));
    }
}

fn new_memfd() -> io::Result<File> {
    // SAFETY: memfd_create with a static NUL-terminated name; the new
    // descriptor is owned by the File from here on.
    let fd = unsafe { libc::memfd_create(c"svol-block".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Whether this process may use block channels at all.
pub(crate) fn enabled() -> bool {
    std::env::var("SVOL_BLOCK_CHANNEL").map_or(true, |v| v != "off" && v != "0")
}
