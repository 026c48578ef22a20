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
    #[error("too many links")]
    TooManyLinks,
    #[error("stale: {0}")]
    Stale(String),
    #[error("block {} is not stored; upload it again", hex::encode(.0))]
    MissingBlock([u8; 32]),
    #[error("metadata backend: {0}")]
    Backend(String),
}

pub type Result<T, E = MetaError> = std::result::Result<T, E>;

impl From<rusqlite::Error> for MetaError {
    fn from(e: rusqlite::Error) -> Self {
        MetaError::Backend(e.to_string())
    }
}
