/// Why a metadata operation failed. Variants are what callers match on; the
/// server maps them to gRPC status codes and the FUSE client to errno.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("already exists: {0}")]
    AlreadyExists(String),
    #[error("directory not empty")]
    NotEmpty,
    #[error("not a directory")]
    NotDirectory,
    #[error("is a directory")]
    IsDirectory,
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("name too long")]
    NameTooLong,
    #[error("no such attribute")]
    NoData,
    #[error("value too large: {0}")]
    TooBig(String),
    /// Past the largest file size (`MAX_FILE_SIZE`).
    #[error("file too large: {0}")]
    FileTooLarge(String),
    /// The metadata store's disk is full.
    #[error("metadata store is out of space")]
    NoSpace,
    #[error("too many links")]
    TooManyLinks,
    #[error("stale: {0}")]
    Stale(String),
    /// The writer's lease or lock is gone (it was frozen or cut off past
    /// its lease and someone else may hold the lock now): nothing written.
    #[error("fenced: {0}")]
    Fenced(String),
    /// Too many locks or lock waiters on one file.
    #[error("no locks available: {0}")]
    NoLocks(String),
    #[error("block {} is not stored; upload it again", hex::encode(.0))]
    MissingBlock([u8; 32]),
    /// A change to a snapshot (or another read-only volume).
    #[error("read-only: {0}")]
    ReadOnly(String),
    /// Past a volume's or workspace's byte or inode quota (EDQUOT).
    #[error("quota exceeded: {0}")]
    Quota(String),
    /// Refused while something uses it (a volume mounted, …).
    #[error("busy: {0}")]
    Busy(String),
    #[error("metadata backend: {0}")]
    Backend(String),
}

pub type Result<T, E = MetaError> = std::result::Result<T, E>;

impl From<rusqlite::Error> for MetaError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            // A full disk must reach the writer as ENOSPC, not EIO.
            Some(rusqlite::ErrorCode::DiskFull) => MetaError::NoSpace,
            _ => MetaError::Backend(e.to_string()),
        }
    }
}
