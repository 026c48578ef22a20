//! The one place client errors become errno values.

use fuser::Errno;
use svol_sdk::{ClientError, FsErrno};

pub(crate) fn errno(e: &ClientError) -> Errno {
    let code = match e {
        ClientError::NotFound(_) => libc::ENOENT,
        ClientError::AlreadyExists(_) => libc::EEXIST,
        ClientError::Fs(k, _) => match k {
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
            FsErrno::Io => libc::EIO,
            FsErrno::Again => libc::EAGAIN,
            FsErrno::NoLocks => libc::ENOLCK,
            FsErrno::Fenced => libc::EIO,
        },
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
