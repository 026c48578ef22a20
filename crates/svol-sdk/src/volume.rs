//! File-system calls on one volume: thin, typed wrappers over the RPCs.

use bytes::Bytes;
use svol_proto as p;

use crate::node::{self, Attr, Chunk, DirEntry, DirPage, EntryReply, Opened, Timespec};
use crate::ops::{Held, LockReply, LockRequest, NewNode, QueuedOp, SetAttr, StatFs};
use crate::{Client, ClientError, Result, VolumeInfo};

/// A volume, or a snapshot of one: `NAME` or `NAME@SNAPSHOT`.
pub fn check_volume_ref(name: &str) -> Result<()> {
    match name.split_once('@') {
        Some((v, s)) => check_volume_name(v).and_then(|_| check_volume_name(s)),
        None => check_volume_name(name),
    }
}

pub fn check_volume_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ClientError::InvalidArgument(format!(
            "invalid volume name {name:?}: use 1 to 64 of A-Z a-z 0-9 . _ -"
        )))
    }
}

/// Refuses remote paths that could escape or confuse: `..` components, NUL.
pub fn check_remote_path(path: &str) -> Result<()> {
    if path.contains('\0') {
        return Err(ClientError::InvalidArgument(format!(
            "remote path {path:?} contains a NUL byte"
        )));
    }
    if path.split('/').any(|c| c == "..") {
        return Err(ClientError::InvalidArgument(format!(
            "remote path {path:?} contains '..'"
        )));
    }
    if path.split('/').any(|c| c.len() > 255) {
        return Err(ClientError::InvalidArgument(format!(
            "remote path {path:?} has a component over 255 bytes"
        )));
    }
    Ok(())
}

/// A volume, for file operations. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Volume {
    pub(crate) client: Client,
    pub(crate) info: VolumeInfo,
}

impl Volume {
    pub(crate) fn new(client: Client, info: VolumeInfo) -> Self {
        Self { client, info }
    }

    pub fn info(&self) -> &VolumeInfo {
        &self.info
    }

    pub fn root(&self) -> u64 {
        self.info.root_ino
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// This volume through a client with its own session slot (see
    /// [`Client::with_own_session`]).
    pub fn with_own_session(&self) -> Volume {
        Volume::new(self.client.with_own_session(), self.info.clone())
    }

    fn id(&self) -> String {
        self.info.id.clone()
    }

    pub async fn lookup(&self, parent: u64, name: &[u8]) -> Result<Attr> {
        let r = p::LookupRequest {
            volume: self.id(),
            parent,
            name: Bytes::copy_from_slice(name),
        };
        Ok(call!(self.client, Idempotent, lookup, r)?.into())
    }

    pub async fn getattr(&self, ino: u64) -> Result<Attr> {
        let r = p::InodeRequest {
            volume: self.id(),
            ino,
        };
        Ok(call!(self.client, Idempotent, get_attr, r)?.into())
    }

    pub async fn setattr(&self, ino: u64, s: SetAttr) -> Result<Attr> {
        let r = s.wire(self.id(), ino);
        Ok(call!(self.client, Idempotent, set_attr, r)?.into())
    }

    pub async fn create(&self, n: NewNode) -> Result<Attr> {
        Ok(self.create_entry(n).await?.attr)
    }

    /// Like `create`, with the attributes of the directory it changed.
    pub async fn create_entry(&self, n: NewNode) -> Result<EntryReply> {
        let r = n.wire(self.id());
        Ok(call!(self.client, Unsent, create, r)?.into())
    }

    /// Creates (or finds, if not exclusive) a regular file and opens it.
    pub async fn create_open(&self, n: NewNode) -> Result<Opened> {
        let r = n.wire(self.id());
        Ok(call!(self.client, Unsent, create_open, r)?.into())
    }

    pub async fn link(&self, ino: u64, new_parent: u64, new_name: &[u8]) -> Result<EntryReply> {
        let r = p::LinkRequest {
            volume: self.id(),
            ino,
            new_parent,
            new_name: Bytes::copy_from_slice(new_name),
        };
        Ok(call!(self.client, Unsent, link, r)?.into())
    }

    /// Returns the attributes of the inodes the removal changed.
    pub async fn unlink(&self, parent: u64, name: &[u8], directory: bool) -> Result<Vec<Attr>> {
        let r = p::UnlinkRequest {
            volume: self.id(),
            parent,
            name: Bytes::copy_from_slice(name),
            directory,
        };
        Ok(node::attrs(call!(self.client, Unsent, unlink, r)?.touched))
    }

    pub async fn rename(
        &self,
        parent: u64,
        name: &[u8],
        new_parent: u64,
        new_name: &[u8],
        flags: u32,
    ) -> Result<Vec<Attr>> {
        let r = p::RenameRequest {
            volume: self.id(),
            parent,
            name: Bytes::copy_from_slice(name),
            new_parent,
            new_name: Bytes::copy_from_slice(new_name),
            flags,
        };
        Ok(node::attrs(call!(self.client, Unsent, rename, r)?.touched))
    }

    pub async fn readdir(&self, ino: u64, after: u64, limit: u32) -> Result<DirPage> {
        let r = p::ReadDirRequest {
            volume: self.id(),
            ino,
            after,
            limit,
            watch: false,
        };
        Ok(call!(self.client, Idempotent, read_dir, r)?.into())
    }

    /// A page of a directory, watched for this session: the listing is
    /// recalled before another client's change to it returns (see
    /// `ReadDirRequest.watch`).
    pub async fn readdir_watched(&self, ino: u64, after: u64, limit: u32) -> Result<DirPage> {
        let r = p::ReadDirRequest {
            volume: self.id(),
            ino,
            after,
            limit,
            watch: true,
        };
        Ok(call!(self.client, Idempotent, read_dir, r)?.into())
    }

    /// Every entry of a directory.
    pub async fn readdir_all(&self, ino: u64) -> Result<Vec<DirEntry>> {
        let mut out = Vec::new();
        let mut after = 0;
        loop {
            let page = self.readdir(ino, after, 1024).await?;
            if let Some(last) = page.entries.last() {
                after = last.cookie;
            }
            let eof = page.eof || page.entries.is_empty();
            out.extend(page.entries);
            if eof {
                return Ok(out);
            }
        }
    }

    pub async fn readlink(&self, ino: u64) -> Result<Bytes> {
        let r = p::InodeRequest {
            volume: self.id(),
            ino,
        };
        Ok(call!(self.client, Idempotent, read_link, r)?.target)
    }

    pub async fn open(&self, ino: u64) -> Result<Opened> {
        self.open_peeking(ino, Vec::new()).await
    }

    /// Opens `ino` and peeks at the small files among `peek` (at most
    /// [`p::MAX_PEEK`]): their whole contents come back in `peeked`,
    /// without opening them.
    pub async fn open_peeking(&self, ino: u64, peek: Vec<u64>) -> Result<Opened> {
        let r = p::OpenRequest {
            volume: self.id(),
            ino,
            peek,
        };
        Ok(call!(self.client, Unsent, open, r)?.into())
    }

    /// Releases several opens (an inode once per open) in one call.
    /// Asks to hold directory `dir` (0: none, numbers only) and for `inos`
    /// inode numbers to create with ahead of the server; see the `Hold`
    /// call in svol.proto.
    pub async fn hold(&self, dir: u64, inos: u32) -> Result<Held> {
        let r = p::HoldRequest {
            volume: self.id(),
            dir,
            inos,
        };
        let h = call!(self.client, Unsent, hold, r)?;
        Ok(Held {
            held: h.held,
            inos: h.inos,
        })
    }

    /// Lands what was done ahead; one result per operation, in order, and
    /// the attributes of every inode the batch changed, as it left them.
    pub async fn apply(&self, ops: Vec<QueuedOp>) -> Result<(Vec<Result<Attr>>, Vec<Attr>)> {
        let r = p::ApplyRequest {
            volume: self.id(),
            ops: ops.into_iter().map(p::QueuedOp::from).collect(),
        };
        let reply: p::ApplyReply = call!(self.client, Unsent, apply, r)?;
        let touched = node::attrs(reply.touched);
        let results = reply
            .results
            .into_iter()
            .map(|res| match res.attr {
                Some(a) if res.errno.is_empty() => Ok(a.into()),
                _ => Err(crate::error::from_errno(&res.errno, res.message)),
            })
            .collect();
        Ok((results, touched))
    }

    pub async fn release_many(&self, inos: Vec<u64>) -> Result<()> {
        let r = p::ReleaseManyRequest {
            volume: self.id(),
            inos,
        };
        call!(self.client, Unsent, release_many, r)?;
        Ok(())
    }

    pub async fn release(&self, ino: u64) -> Result<()> {
        let r = p::InodeRequest {
            volume: self.id(),
            ino,
        };
        call!(self.client, Unsent, release, r)?;
        Ok(())
    }

    /// Commits a file's writes (see [`Commit`]). The server refuses it if
    /// `fence` names a write lock that is gone; `kill_suidgid` clears the
    /// file's set-ID bits.
    pub async fn commit(&self, ino: u64, c: Commit) -> Result<Attr> {
        let r = p::CommitRequest {
            volume: self.id(),
            ino,
            chunks: node::wire_chunks(c.chunks),
            write_end: c.write_end,
            durable: c.durable,
            fence: c.fence,
            kill_suidgid: c.kill_suidgid,
            time: c.time.map(Into::into),
        };
        Ok(call!(self.client, Idempotent, commit, r)?.into())
    }

    /// Makes `ino`'s data and all committed metadata durable (fsync with
    /// nothing to commit).
    pub async fn sync(&self, ino: u64) -> Result<()> {
        let r = p::InodeRequest {
            volume: self.id(),
            ino,
        };
        call!(self.client, Idempotent, sync, r)?;
        Ok(())
    }

    pub async fn get_xattr(&self, ino: u64, name: &[u8]) -> Result<Bytes> {
        let r = p::XattrRequest {
            volume: self.id(),
            ino,
            name: Bytes::copy_from_slice(name),
            ..Default::default()
        };
        Ok(call!(self.client, Idempotent, get_xattr, r)?.value)
    }

    pub async fn set_xattr(&self, ino: u64, name: &[u8], value: &[u8], flags: u32) -> Result<()> {
        let r = p::XattrRequest {
            volume: self.id(),
            ino,
            name: Bytes::copy_from_slice(name),
            value: Bytes::copy_from_slice(value),
            flags,
        };
        call!(self.client, Unsent, set_xattr, r)?;
        Ok(())
    }

    pub async fn list_xattr(&self, ino: u64) -> Result<Vec<Bytes>> {
        let r = p::InodeRequest {
            volume: self.id(),
            ino,
        };
        Ok(call!(self.client, Idempotent, list_xattr, r)?.names)
    }

    pub async fn remove_xattr(&self, ino: u64, name: &[u8]) -> Result<()> {
        let r = p::XattrRequest {
            volume: self.id(),
            ino,
            name: Bytes::copy_from_slice(name),
            ..Default::default()
        };
        call!(self.client, Unsent, remove_xattr, r)?;
        Ok(())
    }

    pub async fn statfs(&self) -> Result<StatFs> {
        let r = p::VolumeRef { volume: self.id() };
        let s = call!(self.client, Idempotent, stat_fs, r)?;
        Ok(StatFs {
            total_bytes: s.total_bytes,
            free_bytes: s.free_bytes,
            used_bytes: s.used_bytes,
            files: s.files,
            free_files: s.free_files,
        })
    }

    /// The inode at a `/`-separated path inside the volume.
    pub async fn resolve(&self, path: &str) -> Result<Attr> {
        check_remote_path(path)?;
        let r = p::ResolveRequest {
            volume: self.id(),
            path: path.into(),
        };
        call!(self.client, Idempotent, resolve, r)
            .map(Attr::from)
            .map_err(|e| e.context(&format!("{}:{path}", self.info.name)))
    }

    /// Takes, tests or releases a byte-range lock (the session header names
    /// the holder). With `wait` it returns once granted.
    pub async fn lock(&self, l: LockRequest) -> Result<LockReply> {
        let r = l.wire(self.id());
        Ok(call!(self.client, Idempotent, lock, r)?.into())
    }

    pub async fn copy(&self, src: u64, dst_parent: u64, dst_name: &[u8]) -> Result<Attr> {
        let r = p::CopyRequest {
            volume: self.id(),
            src,
            dst_parent,
            dst_name: Bytes::copy_from_slice(dst_name),
        };
        Ok(call!(self.client, Unsent, copy, r)?.into())
    }

    pub async fn missing_blocks(&self, hashes: Vec<Bytes>) -> Result<Vec<Bytes>> {
        let r = p::MissingBlocksRequest { hashes };
        Ok(call!(self.client, Idempotent, missing_blocks, r)?.hashes)
    }

    /// Stores a block: through the server's block channel when this
    /// process is on the server's host, otherwise (or if the channel does
    /// not store it) by `PutBlock`.
    pub async fn put_block(&self, hash: Bytes, data: Bytes) -> Result<()> {
        let len = data.len() as u64;
        let (h, d) = (hash.clone(), data.clone());
        if let Some(()) = self
            .client
            .through_channel(move |ch| ch.store(&h, &d))
            .await
        {
            self.client.count_uploaded(len);
            return Ok(());
        }
        let r = p::PutBlockRequest { hash, data };
        call!(self.client, Idempotent, put_block, r)?;
        self.client.count_uploaded(len);
        Ok(())
    }

    /// A block's bytes, checked against its hash: from the disk through the
    /// server's block channel when this process is on the server's host,
    /// otherwise (or if the channel cannot serve it) by `GetBlock`.
    pub async fn get_block(&self, hash: Bytes) -> Result<Bytes> {
        let h = hash.clone();
        if let Some(data) = self.client.through_channel(move |ch| ch.fetch(&h)).await {
            return Ok(data);
        }
        let r = p::GetBlockRequest { hash };
        Ok(call!(self.client, Idempotent, get_block, r)?.data)
    }
}

/// What a commit of a file's writes carries (see `Volume::commit`).
#[derive(Clone, Debug, Default)]
pub struct Commit {
    /// The chunks written, each stored or inline.
    pub chunks: Vec<Chunk>,
    /// The file is at least this long afterwards.
    pub write_end: u64,
    /// fsync: return only once on stable storage.
    pub durable: bool,
    /// The fencing token of the write lock held on the file (0: none).
    pub fence: u64,
    /// The writer may not keep the file's set-ID bits.
    pub kill_suidgid: bool,
    /// When the last write was made, as the writer's stat showed it (the
    /// file's new mtime; None: the server's time).
    pub time: Option<Timespec>,
}
