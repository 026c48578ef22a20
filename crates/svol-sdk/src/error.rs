use svol_proto as p;
use tonic::Code;

/// What went wrong, in terms a caller can act on. File-system variants
/// carry the errno the server named; the FUSE client maps them back.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    #[error("{0}: not found")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{1}")]
    Fs(FsErrno, String),
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("authentication failed: {0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("block must be uploaded again: {0}")]
    MissingBlock(String),
    #[error("out of space: {0}")]
    NoSpace(String),
    #[error("{0}")]
    Io(String),
    #[error("server error: {0}")]
    Internal(String),
}

/// POSIX errors the server reports that have no variant of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsErrno {
    NotEmpty,
    NotDirectory,
    IsDirectory,
    NameTooLong,
    NoData,
    TooBig,
    /// Past the largest file size (EFBIG).
    FileTooLarge,
    TooManyLinks,
    Stale,
    Perm,
    Io,
    /// A lock is held by someone else (EAGAIN).
    Again,
    /// Too many locks (ENOLCK).
    NoLocks,
    /// The mount's lease ran out (it was frozen or cut off past it), so
    /// its locks and open files are gone and the write was refused.
    Fenced,
    /// A snapshot (read-only volume) was asked to change (EROFS).
    ReadOnly,
    /// Refused while in use, e.g. restoring a mounted volume (EBUSY).
    Busy,
    /// Past a volume's or workspace's byte or inode quota (EDQUOT).
    Quota,
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

impl FsErrno {
    /// The POSIX error number (what the FUSE mount answers, what the
    /// Python package's exceptions carry).
    pub fn errno(self) -> i32 {
        match self {
            FsErrno::NotEmpty => libc::ENOTEMPTY,
            FsErrno::NotDirectory => libc::ENOTDIR,
            FsErrno::IsDirectory => libc::EISDIR,
            FsErrno::NameTooLong => libc::ENAMETOOLONG,
            FsErrno::NoData => libc::ENODATA,
            FsErrno::TooBig => libc::E2BIG,
            FsErrno::FileTooLarge => libc::EFBIG,
            FsErrno::TooManyLinks => libc::EMLINK,
            FsErrno::Stale => libc::ESTALE,
            FsErrno::Perm => libc::EPERM,
            FsErrno::Io | FsErrno::Fenced => libc::EIO,
            FsErrno::Again => libc::EAGAIN,
            FsErrno::NoLocks => libc::ENOLCK,
            FsErrno::ReadOnly => libc::EROFS,
            FsErrno::Busy => libc::EBUSY,
            FsErrno::Quota => libc::EDQUOT,
        }
    }
}

impl ClientError {
    /// Prefixes the message with what was being worked on.
    pub fn context(self, what: &str) -> Self {
        use ClientError::*;
        // Said already (a lower layer named the same thing): once is enough.
        let said = |m: &str| !what.is_empty() && m.starts_with(what);
        match self {
            NotFound(m) if said(&m) => NotFound(m),
            Fs(k, m) if said(&m) => Fs(k, m),
            PermissionDenied(m) if said(&m) => PermissionDenied(m),
            InvalidArgument(m) if said(&m) => InvalidArgument(m),
            NotFound(m) if m.is_empty() || m.starts_with("not found") => NotFound(what.into()),
            NotFound(m) => NotFound(format!("{what}: {m}")),
            AlreadyExists(m) => {
                let hint = m.find(" (use").map(|i| &m[i..]).unwrap_or("");
                AlreadyExists(format!("{what} already exists{hint}"))
            }
            Fs(k, m) => Fs(k, format!("{what}: {m}")),
            PermissionDenied(m) => PermissionDenied(format!("{what}: {m}")),
            InvalidArgument(m) => InvalidArgument(format!("{what}: {m}")),
            e => e,
        }
    }
}

pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}

/// The error a POSIX error name (as in the `svol-errno` header) stands for.
pub(crate) fn from_errno(errno: &str, msg: String) -> ClientError {
    let mut s = tonic::Status::new(Code::Unknown, msg);
    if let Ok(v) = errno.parse() {
        s.metadata_mut().insert(p::ERRNO_HEADER, v);
    }
    match ClientError::from(s) {
        ClientError::Unavailable(m) => ClientError::Internal(m),
        e => e,
    }
}

impl From<tonic::Status> for ClientError {
    fn from(s: tonic::Status) -> Self {
        let errno = s
            .metadata()
            .get(p::ERRNO_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let msg = s.message().to_string();
        let fs = |k| ClientError::Fs(k, msg.clone());
        match errno.as_str() {
            "ENOENT" => return ClientError::NotFound(msg),
            "EEXIST" => return ClientError::AlreadyExists(msg),
            "ENOTEMPTY" => return fs(FsErrno::NotEmpty),
            "ENOTDIR" => return fs(FsErrno::NotDirectory),
            "EISDIR" => return fs(FsErrno::IsDirectory),
            "ENAMETOOLONG" => return fs(FsErrno::NameTooLong),
            "ENODATA" => return fs(FsErrno::NoData),
            "E2BIG" => return fs(FsErrno::TooBig),
            "EFBIG" => return fs(FsErrno::FileTooLarge),
            "EMLINK" => return fs(FsErrno::TooManyLinks),
            "ESTALE" => return fs(FsErrno::Stale),
            "EPERM" => return fs(FsErrno::Perm),
            "EINVAL" => return ClientError::InvalidArgument(msg),
            "EMISSINGBLOCK" => return ClientError::MissingBlock(msg),
            "ENOSPC" => return ClientError::NoSpace(msg),
            "EIO" => return fs(FsErrno::Io),
            "ENOLCK" => return fs(FsErrno::NoLocks),
            "EFENCED" => return fs(FsErrno::Fenced),
            "EROFS" => return fs(FsErrno::ReadOnly),
            "EBUSY" => return fs(FsErrno::Busy),
            "EDQUOT" => return fs(FsErrno::Quota),
            _ => {}
        }
        match s.code() {
            Code::NotFound => ClientError::NotFound(msg),
            Code::AlreadyExists => ClientError::AlreadyExists(msg),
            Code::PermissionDenied => ClientError::PermissionDenied(msg),
            Code::Unauthenticated => ClientError::Unauthenticated(msg),
            Code::InvalidArgument => ClientError::InvalidArgument(msg),
            Code::ResourceExhausted => ClientError::NoSpace(msg),
            Code::Unavailable | Code::Cancelled | Code::DeadlineExceeded | Code::Unknown => {
                ClientError::Unavailable(format!(
                    "svol server unavailable: {}",
                    if msg.is_empty() { chain(&s) } else { msg }
                ))
            }
            _ => ClientError::Internal(msg),
        }
    }
}

impl From<std::io::Error> for ClientError {
    fn from(e: std::io::Error) -> Self {
        ClientError::Io(e.to_string())
    }
}
