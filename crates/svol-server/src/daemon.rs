//! Running as a daemon: one server per data directory (a lock file naming
//! the holder's pid), and a shutdown that does not wait forever for
//! mounts, which keep their connections open for as long as they live.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;

use crate::ServerError;

/// How long a stopping server lets open calls finish before it closes
/// the connections that are left (mounts reconnect to its successor).
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Held while the server runs: the lock on `DIR/server.lock` (released by
/// the kernel when the process ends, however it ends).
pub(crate) struct DataDirLock {
    _file: File,
}

/// Takes the data directory for this process, or says who has it.
pub(crate) fn lock_data_dir(dir: &Path) -> Result<DataDirLock, ServerError> {
    let path = dir.join("server.lock");
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(crate::io(format!("opening {}", path.display())))?;
    // flock (not File::try_lock: newer than our MSRV); a lock on an open
    // file description, dropped with it.
    // SAFETY: flock on a descriptor this function owns.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(crate::io(format!("locking {}", path.display()))(e));
        }
        let mut holder = String::new();
        let _ = f.read_to_string(&mut holder);
        let holder = holder.trim();
        let who = if holder.is_empty() {
            "another svol server".to_string()
        } else {
            format!("another svol server (pid {holder})")
        };
        return Err(ServerError::DataDirInUse(format!(
            "{who} is using the data directory {}; stop it first, or give this one \
             its own --data-dir",
            dir.display()
        )));
    }
    let pid = std::process::id().to_string();
    let written = f
        .set_len(0)
        .and_then(|()| f.rewind())
        .and_then(|()| f.write_all(pid.as_bytes()));
    written.map_err(crate::io(format!("writing {}", path.display())))?;
    Ok(DataDirLock { _file: f })
}

/// Resolves once `shutdown` has and then `grace` has passed: the point at
/// which a graceful stop gives up on the connections still open.
pub(crate) async fn deadline_after(shutdown: tokio::sync::oneshot::Receiver<()>, grace: Duration) {
    if shutdown.await.is_err() {
        // The server ended on its own: never.
        std::future::pending::<()>().await;
    }
    tokio::time::sleep(grace).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_names_the_holder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let held = lock_data_dir(dir.path()).expect("first");
        let err = lock_data_dir(dir.path()).err().expect("second refused");
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("pid {}", std::process::id()))
                && msg.contains(&dir.path().display().to_string()),
            "{msg}"
        );
        drop(held);
        lock_data_dir(dir.path()).expect("free again once dropped");
    }
}
