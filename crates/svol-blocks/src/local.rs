//! Blocks as files in a local directory: `DIR/ab/cdef…` (two-level fan-out
//! keeps directories small). Writes go to `DIR/tmp` first and are renamed
//! into place, so a crash of the process never leaves a torn block under its
//! final name. Writes are not fsynced one by one: `sync` (on a client's
//! `fsync`) flushes exactly the blocks that commit needs, and opening the
//! store flushes whatever an earlier process left unsynced.

use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use crate::{BlockBackend, BlockError, BlockHash, Result};

pub(crate) struct LocalDir {
    root: PathBuf,
    seq: AtomicU64,
}

impl LocalDir {
    pub(crate) fn open(root: &Path) -> Result<Self> {
        fs::create_dir_all(root.join("tmp"))?;
        // Leftovers of writes a crash interrupted.
        for e in fs::read_dir(root.join("tmp"))?.flatten() {
            let _ = fs::remove_file(e.path());
        }
        // Blocks an earlier process wrote but never synced.
        let d = File::open(root)?;
        // SAFETY: syncfs on a valid open descriptor.
        if unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&d)) } != 0 {
            return Err(BlockError::Io(std::io::Error::last_os_error()));
        }
        Ok(Self {
            root: root.to_path_buf(),
            seq: AtomicU64::new(0),
        })
    }

    fn path(&self, h: BlockHash) -> PathBuf {
        let hex = h.to_hex();
        self.root.join(&hex[..2]).join(&hex[2..])
    }
}

fn io_err(e: std::io::Error) -> BlockError {
    if e.raw_os_error() == Some(libc::ENOSPC) {
        BlockError::NoSpace
    } else {
        BlockError::Io(e)
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BlockError::Io(std::io::Error::other(e)))?
}

#[async_trait::async_trait]
impl BlockBackend for LocalDir {
    async fn put(&self, hash: BlockHash, data: Bytes) -> Result<()> {
        let dest = self.path(hash);
        let tmp = self.root.join("tmp").join(format!(
            "{}.{}.{}",
            hash.to_hex(),
            std::process::id(),
            self.seq.fetch_add(1, Ordering::Relaxed)
        ));
        blocking(move || {
            let dir = dest
                .parent()
                .ok_or_else(|| BlockError::InvalidHash(hash.to_hex()))?;
            let fresh_dir = !dir.exists();
            if fresh_dir {
                fs::create_dir_all(dir).map_err(io_err)?;
            }
            let res = (|| {
                let mut f = File::create(&tmp)?;
                f.write_all(&data)?;
                fs::rename(&tmp, &dest)
            })();
            if let Err(e) = res {
                let _ = fs::remove_file(&tmp);
                return Err(io_err(e));
            }
            Ok(())
        })
        .await
    }

    async fn sync(&self, hashes: &[BlockHash]) -> Result<()> {
        let paths: Vec<PathBuf> = hashes.iter().map(|h| self.path(*h)).collect();
        blocking(move || {
            let mut dirs = std::collections::BTreeSet::new();
            for p in &paths {
                File::open(p).and_then(|f| f.sync_data()).map_err(io_err)?;
                if let Some(d) = p.parent() {
                    dirs.insert(d.to_path_buf());
                }
            }
            for d in dirs {
                File::open(&d).and_then(|f| f.sync_all()).map_err(io_err)?;
            }
            Ok(())
        })
        .await
    }

    async fn get(&self, hash: BlockHash) -> Result<Bytes> {
        let p = self.path(hash);
        blocking(move || match fs::read(&p) {
            Ok(v) => Ok(Bytes::from(v)),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(BlockError::NotFound(hash)),
            Err(e) => Err(BlockError::Io(e)),
        })
        .await
    }

    async fn contains(&self, hash: BlockHash) -> Result<bool> {
        let p = self.path(hash);
        blocking(move || Ok(p.exists())).await
    }

    async fn delete(&self, hash: BlockHash) -> Result<()> {
        let p = self.path(hash);
        blocking(move || match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(BlockError::Io(e)),
        })
        .await
    }

    async fn capacity(&self) -> Result<(u64, u64)> {
        let root = self.root.clone();
        blocking(move || {
            use std::os::unix::ffi::OsStrExt;
            let c = std::ffi::CString::new(root.as_os_str().as_bytes())
                .map_err(|e| BlockError::Io(std::io::Error::other(e)))?;
            let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
            // SAFETY: c is a valid NUL-terminated path and st a valid out-pointer.
            if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
                return Err(BlockError::Io(std::io::Error::last_os_error()));
            }
            let frsize = st.f_frsize;
            Ok((st.f_blocks * frsize, st.f_bavail * frsize))
        })
        .await
    }
}
