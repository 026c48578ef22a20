//! Blocks as files in a local directory: `DIR/w<owner>/ab/cdef…` (one
//! directory per owner, then a two-level fan-out that keeps directories
//! small). Writes go to `DIR/tmp` first and are renamed into place, so a
//! crash of the process never leaves a torn block under its final name.
//! Block files bypass the page cache where the file system allows
//! (`direct.rs`). Writes are not fsynced one by one: `sync` (on a client's `fsync`) flushes
//! exactly the blocks that commit needs, and opening the store flushes
//! whatever an earlier process left unsynced. Directories are 0700 and
//! files 0600: only the server's user may read block data.

use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use crate::{BlockBackend, BlockError, BlockHash, BlockKey, Result};

pub(crate) struct LocalDir {
    root: PathBuf,
    seq: AtomicU64,
}

fn private_dir(p: &Path) -> std::io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(p)?;
    fs::set_permissions(p, fs::Permissions::from_mode(0o700))
}

impl LocalDir {
    pub(crate) fn open(root: &Path) -> Result<Self> {
        private_dir(root)?;
        private_dir(&root.join("tmp"))?;
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

    fn path(&self, k: BlockKey) -> PathBuf {
        let hex = k.hash.to_hex();
        self.root
            .join(format!("w{}", k.owner))
            .join(&hex[..2])
            .join(&hex[2..])
    }
}

/// Moves blocks of the first layout (`DIR/ab/cdef…`, shared by every
/// workspace) to their owners' directories. `owners` names the owners that
/// reference a hash; a block nobody references is dropped. If `owners`
/// fails, nothing more is moved or removed. Returns how many blocks were
/// moved. Run once, before the store is opened.
pub fn adopt_unowned(
    root: &Path,
    owners: impl Fn(BlockHash) -> std::io::Result<Vec<u64>>,
) -> Result<usize> {
    let mut moved = 0;
    let Ok(top) = fs::read_dir(root) else {
        return Ok(0);
    };
    for fan in top.flatten() {
        let name = fan.file_name().to_string_lossy().into_owned();
        let legacy = name.len() == 2 && name.bytes().all(|b| b.is_ascii_hexdigit());
        if !legacy || !fan.path().is_dir() {
            continue;
        }
        for f in fs::read_dir(fan.path())?.flatten() {
            let rest = f.file_name().to_string_lossy().into_owned();
            let Some(hash) = hex::decode(format!("{name}{rest}"))
                .ok()
                .and_then(|b| BlockHash::from_slice(&b).ok())
            else {
                continue;
            };
            for owner in owners(hash)? {
                let dest = root.join(format!("w{owner}")).join(&name).join(&rest);
                private_dir(dest.parent().unwrap_or(root))?;
                match fs::hard_link(f.path(), &dest) {
                    Ok(()) => moved += 1,
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(io_err(e)),
                }
            }
            fs::remove_file(f.path()).map_err(io_err)?;
        }
        let _ = fs::remove_dir(fan.path());
    }
    if moved > 0 {
        let d = File::open(root)?;
        // SAFETY: syncfs on a valid open descriptor.
        unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&d)) };
    }
    Ok(moved)
}

fn io_err(e: std::io::Error) -> BlockError {
    if e.raw_os_error() == Some(libc::ENOSPC) || e.raw_os_error() == Some(libc::EDQUOT) {
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
    async fn put(&self, key: BlockKey, data: Bytes) -> Result<()> {
        let dest = self.path(key);
        let tmp = self.root.join("tmp").join(format!(
            "{}.{}.{}",
            key.hash.to_hex(),
            std::process::id(),
            self.seq.fetch_add(1, Ordering::Relaxed)
        ));
        blocking(move || {
            let dir = dest
                .parent()
                .ok_or_else(|| BlockError::InvalidHash(key.hash.to_hex()))?;
            if !dir.exists() {
                private_dir(dir).map_err(io_err)?;
            }
            let res = (|| {
                if !crate::direct::write_new(&tmp, &data)? {
                    let mut f = fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .open(&tmp)?;
                    f.write_all(&data)?;
                }
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

    async fn sync(&self, keys: &[BlockKey]) -> Result<()> {
        let paths: Vec<PathBuf> = keys.iter().map(|k| self.path(*k)).collect();
        blocking(move || {
            let mut dirs = std::collections::BTreeSet::new();
            for p in &paths {
                File::open(p).and_then(|f| f.sync_data()).map_err(io_err)?;
                // The fan-out directory and the owner's directory above it
                // may be new too.
                let mut d = p.parent();
                for _ in 0..2 {
                    if let Some(dir) = d {
                        dirs.insert(dir.to_path_buf());
                        d = dir.parent();
                    }
                }
            }
            for d in dirs {
                File::open(&d).and_then(|f| f.sync_all()).map_err(io_err)?;
            }
            Ok(())
        })
        .await
    }

    fn open_file(&self, key: BlockKey) -> Result<Option<(File, u64)>> {
        match crate::direct::open(&self.path(key)) {
            Ok(f) => {
                let len = f.metadata().map_err(io_err)?.len();
                Ok(Some((f, len)))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Err(BlockError::NotFound(key)),
            Err(e) => Err(io_err(e)),
        }
    }

    async fn get(&self, key: BlockKey) -> Result<Bytes> {
        let p = self.path(key);
        blocking(move || {
            let read = match crate::direct::read(&p) {
                Ok(Some(b)) => Ok(b),
                Ok(None) => fs::read(&p).map(Bytes::from),
                Err(e) => Err(e),
            };
            match read {
                Ok(b) => Ok(b),
                Err(e) if e.kind() == ErrorKind::NotFound => Err(BlockError::NotFound(key)),
                Err(e) => Err(BlockError::Io(e)),
            }
        })
        .await
    }

    async fn size(&self, key: BlockKey) -> Result<Option<u64>> {
        let p = self.path(key);
        blocking(move || match fs::metadata(&p) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(BlockError::Io(e)),
        })
        .await
    }

    async fn delete(&self, key: BlockKey) -> Result<()> {
        let p = self.path(key);
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

    async fn list(&self) -> Result<Vec<BlockKey>> {
        let root = self.root.clone();
        blocking(move || {
            let names = |d: &Path| -> Result<Vec<String>> {
                let mut out = Vec::new();
                for e in fs::read_dir(d)? {
                    out.push(e?.file_name().to_string_lossy().into_owned());
                }
                Ok(out)
            };
            let mut keys = Vec::new();
            for owner in names(&root)?.into_iter().filter(|n| n.starts_with('w')) {
                let od = root.join(&owner);
                if !od.is_dir() {
                    continue;
                }
                for sub in names(&od)?.into_iter().filter(|n| n.len() == 2) {
                    for f in names(&od.join(&sub))? {
                        // Temporary files of writes in flight are not blocks.
                        if let Some(k) = BlockKey::from_name(&format!("{owner}/{sub}/{f}")) {
                            keys.push(k);
                        }
                    }
                }
            }
            Ok(keys)
        })
        .await
    }
}
