//! Between metadata types and wire messages, and errors to gRPC status.

use svol_meta as m;
use svol_proto as p;
use tonic::{Code, Status};

/// Maps a metadata error to a status whose `svol-errno` header names the
/// POSIX error, so the FUSE client can return exactly that errno.
pub(crate) fn status(e: m::MetaError) -> Status {
    let (code, errno) = code_and_errno(&e);
    let mut s = Status::new(code, e.to_string());
    if let Ok(v) = errno.parse() {
        s.metadata_mut().insert(p::ERRNO_HEADER, v);
    }
    s
}

/// The gRPC code and the POSIX error name of a metadata error.
pub(crate) fn code_and_errno(e: &m::MetaError) -> (Code, &'static str) {
    use m::MetaError::*;
    match e {
        NotFound(_) => (Code::NotFound, "ENOENT"),
        AlreadyExists(_) => (Code::AlreadyExists, "EEXIST"),
        NotEmpty => (Code::FailedPrecondition, "ENOTEMPTY"),
        NotDirectory => (Code::FailedPrecondition, "ENOTDIR"),
        IsDirectory => (Code::FailedPrecondition, "EISDIR"),
        PermissionDenied(_) => (Code::PermissionDenied, "EPERM"),
        InvalidArgument(_) => (Code::InvalidArgument, "EINVAL"),
        NameTooLong => (Code::InvalidArgument, "ENAMETOOLONG"),
        NoData => (Code::NotFound, "ENODATA"),
        TooBig(_) => (Code::InvalidArgument, "E2BIG"),
        TooManyLinks => (Code::FailedPrecondition, "EMLINK"),
        FileTooLarge(_) => (Code::InvalidArgument, "EFBIG"),
        NoSpace => (Code::ResourceExhausted, "ENOSPC"),
        Stale(_) => (Code::FailedPrecondition, "ESTALE"),
        Fenced(_) => (Code::FailedPrecondition, "EFENCED"),
        NoLocks(_) => (Code::ResourceExhausted, "ENOLCK"),
        MissingBlock(_) => (Code::FailedPrecondition, "EMISSINGBLOCK"),
        ReadOnly(_) => (Code::FailedPrecondition, "EROFS"),
        Busy(_) => (Code::FailedPrecondition, "EBUSY"),
        Quota(_) => (Code::ResourceExhausted, "EDQUOT"),
        Backend(_) => (Code::Internal, "EIO"),
    }
}

pub(crate) fn ts(t: m::Timespec) -> p::Timespec {
    p::Timespec {
        sec: t.sec,
        nsec: t.nsec,
    }
}

pub(crate) fn from_ts(t: &p::Timespec) -> m::Timespec {
    m::Timespec {
        sec: t.sec,
        nsec: t.nsec.min(999_999_999),
    }
}

pub(crate) fn kind(k: m::FileKind) -> p::FileKind {
    match k {
        m::FileKind::Regular => p::FileKind::Regular,
        m::FileKind::Directory => p::FileKind::Directory,
        m::FileKind::Symlink => p::FileKind::Symlink,
        m::FileKind::Fifo => p::FileKind::Fifo,
        m::FileKind::Socket => p::FileKind::Socket,
        m::FileKind::CharDevice => p::FileKind::CharDevice,
        m::FileKind::BlockDevice => p::FileKind::BlockDevice,
    }
}

pub(crate) fn from_kind(k: i32) -> Result<m::FileKind, Status> {
    m::FileKind::from_i64(k as i64)
        .ok_or_else(|| Status::invalid_argument(format!("unknown file kind {k}")))
}

pub(crate) fn attr(a: &m::Attr) -> p::Attr {
    p::Attr {
        ino: a.ino,
        kind: kind(a.kind) as i32,
        mode: a.mode,
        uid: a.uid,
        gid: a.gid,
        nlink: a.nlink,
        size: a.size,
        atime: Some(ts(a.atime)),
        mtime: Some(ts(a.mtime)),
        ctime: Some(ts(a.ctime)),
        rdev: a.rdev,
        version: a.version,
    }
}

pub(crate) fn chunk(c: m::Chunk) -> p::Chunk {
    let (hash, inline_data) = match c.data {
        m::ChunkData::Block(h) => (h.to_vec().into(), Default::default()),
        m::ChunkData::Inline(d) => (Default::default(), d.into()),
    };
    p::Chunk {
        index: c.index,
        len: c.len,
        hash,
        inline_data,
    }
}

pub(crate) fn hash(b: &[u8]) -> Result<m::BlockId, Status> {
    b.try_into()
        .map_err(|_| Status::invalid_argument(format!("block hash of {} bytes, want 32", b.len())))
}

pub(crate) fn from_chunk(c: &p::Chunk) -> Result<m::Chunk, Status> {
    let data = if c.hash.is_empty() {
        m::ChunkData::Inline(c.inline_data.to_vec())
    } else {
        m::ChunkData::Block(hash(&c.hash)?)
    };
    Ok(m::Chunk {
        index: c.index,
        len: c.len,
        data,
    })
}

pub(crate) fn time_set(t: &Option<p::TimeSet>) -> Option<m::TimeSet> {
    match t.as_ref()?.set.as_ref()? {
        p::time_set::Set::Now(_) => Some(m::TimeSet::Now),
        p::time_set::Set::At(ts) => Some(m::TimeSet::At(from_ts(ts))),
    }
}

pub(crate) fn blocks_status(e: svol_blocks::BlockError) -> Status {
    use svol_blocks::BlockError::*;
    match e {
        NotFound(k) => Status::not_found(format!("block {} not found", k.hash)),
        // The client reports EIO; the server has logged which block.
        Corrupt(k) => Status::data_loss(format!("block {} is corrupt on the server", k.hash)),
        HashMismatch(_) | TooLarge(_) | InvalidHash(_) => Status::invalid_argument(e.to_string()),
        NoSpace => {
            let mut s = Status::resource_exhausted("server block store is out of space");
            if let Ok(v) = "ENOSPC".parse() {
                s.metadata_mut().insert(p::ERRNO_HEADER, v);
            }
            s
        }
        Io(e) => Status::internal(format!("block store: {e}")),
    }
}
