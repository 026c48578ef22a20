//! The one place client errors become errno values.

use fuser::Errno;
use svol_sdk::ClientError;

pub(crate) fn errno(e: &ClientError) -> Errno {
    let code = match e {
        ClientError::NotFound(_) => libc::ENOENT,
        ClientError::AlreadyExists(_) => libc::EEXIST,
        ClientError::Fs(k, _) => k.errno(),
        ClientError::PermissionDenied(_) | ClientError::Unauthenticated(_) => libc::EACCES,
        ClientError::InvalidArgument(_) => libc::EINVAL,
        ClientError::NoSpace(_) => libc::ENOSPC,
        ClientError::Unavailable(_)
        | ClientError::MissingBlock(_)
        | ClientError::Io(_)
        | ClientError::Internal(_) => libc::EIO,
    };
    if code == libc::EIO {
        tracing::warn!("I/O error: {e}");
    }
    Errno::from_i32(code)
}
