//! SDK errors become the exception classes of `svol.exceptions`, carrying
//! the server's message (and an errno where the file system named one).

use pyo3::prelude::*;
use pyo3::types::PyTuple;
use svol_sdk::{ClientError, FsErrno};

/// The `svol.exceptions` class for `e`, and the errno it stands for.
fn class_of(e: &ClientError) -> (&'static str, i32) {
    match e {
        ClientError::NotFound(_) => ("NotFoundError", libc::ENOENT),
        ClientError::AlreadyExists(_) => ("AlreadyExistsError", libc::EEXIST),
        ClientError::PermissionDenied(_) => ("PermissionDeniedError", libc::EACCES),
        ClientError::InvalidArgument(_) => ("InvalidArgumentError", libc::EINVAL),
        ClientError::Unauthenticated(_) => ("AuthenticationError", libc::EACCES),
        ClientError::Unavailable(_) => ("ConnectionError", libc::ECONNREFUSED),
        ClientError::NoSpace(_) => ("NoSpaceError", libc::ENOSPC),
        ClientError::MissingBlock(_) | ClientError::Io(_) | ClientError::Internal(_) => {
            ("Error", libc::EIO)
        }
        ClientError::Fs(k, _) => {
            let errno = k.errno();
            match k {
                FsErrno::IsDirectory => ("IsADirectoryError", errno),
                FsErrno::NotDirectory => ("NotADirectoryError", errno),
                FsErrno::NameTooLong => ("InvalidArgumentError", errno),
                FsErrno::Perm => ("PermissionDeniedError", errno),
                FsErrno::Quota => ("NoSpaceError", errno),
                _ => ("FileSystemError", errno),
            }
        }
    }
}

/// The Python exception for `e`.
pub(crate) fn to_py(e: ClientError) -> PyErr {
    let (class, errno) = class_of(&e);
    let message = e.to_string();
    Python::attach(|py| {
        let made = (|| -> PyResult<PyErr> {
            let module = py.import("svol.exceptions")?;
            let cls = module.getattr(class)?;
            let args = PyTuple::new(
                py,
                [
                    errno.into_pyobject(py)?.into_any(),
                    message.clone().into_pyobject(py)?.into_any(),
                ],
            )?;
            let exc = cls.call1(args)?;
            Ok(PyErr::from_value(exc))
        })();
        made.unwrap_or_else(|err| err)
    })
}
