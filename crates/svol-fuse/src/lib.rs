//! The FUSE client behind `svol mount`: serves one volume (or a sub-path of
//! it) at a mountpoint. Kernel callbacks are handed to tokio tasks at once;
//! all state lives in [`files`] (write buffers, chunk maps), [`cache`]
//! (blocks, immutable so never stale) and [`session`] (the lease and the
//! server's invalidations, replayed into the kernel's caches). It talks to
//! the server only through `svol-sdk` and its types, and must not depend on
//! `svol-proto` or on server-side crates.

mod ahead;
mod attr;
mod budget;
mod cache;
mod direct;
pub mod disk_cache;
mod errno;
mod files;
mod fs;
mod lease;
mod listings;
mod locks;
pub mod metrics;
mod peeks;
mod readahead;
mod releases;
mod session;

use std::path::{Path, PathBuf};

use fuser::{Config, MountOption, SessionACL};
use svol_sdk::{ClientError, Volume};

pub use cache::BlockCache;
pub use disk_cache::{DiskCache, DEFAULT_CACHE_SIZE};
pub use session::host_name;

/// Blocks a mount keeps in memory by default. The kernel's page cache
/// already holds what a process read; this serves the rest (partial reads
/// of a block, a block shared by files, the read-ahead's 32 MiB). 128 MiB
/// read a cold 2 GiB file as fast as 256 MiB did (1.09–1.24 against
/// 0.90–1.15 GB/s), and four cold 512 MiB files at once as well (0.83–1.06
/// against 0.87–1.00 GB/s), with 130–180 MB less memory per mount; 64 MiB
/// cost a fifth of the single read.
pub const DEFAULT_MEMORY_CACHE: u64 = 128 << 20;

#[derive(Debug, Clone, Default)]
pub struct MountOptions {
    pub read_only: bool,
    /// Serve this directory of the volume as the mount's root.
    pub sub_path: Option<String>,
    /// Keep fetched blocks here too (in addition to memory), across mounts.
    pub cache_dir: Option<PathBuf>,
    /// Bytes the cache directory may hold for the volume (0: 10 GiB).
    pub cache_size: u64,
    /// Bytes of blocks kept in memory (0: `DEFAULT_MEMORY_CACHE`).
    pub memory_cache: u64,
    /// The app this mount works for: its lease keeps that app running.
    /// Empty: the app that owns the volume.
    pub app: String,
    /// Let users other than the one who mounted use the mount (FUSE's
    /// `allow_other`). Off by default: a volume's files are then reachable
    /// only by the mounting user (and root).
    pub allow_other: bool,
    /// Honour set-user-id bits and device nodes found on the volume. Off by
    /// default (`nosuid,nodev`): anybody with a token of the workspace can
    /// store such files, so they must not gain power on a client host.
    pub suid: bool,
    pub dev: bool,
    /// Bytes of written, uncommitted data the mount may buffer before
    /// writers wait for commits (0: 512 MiB).
    pub max_dirty: u64,
    /// What this mount is for, as the server lists it among a volume's
    /// live clients (`run python train.py`). Empty: `mount <mountpoint>`.
    pub purpose: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("sub-path {0:?} is not a directory of the volume")]
    SubPath(String),
    #[error("mounting at {path}: {source}")]
    Mount {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A live mount. Dropping it does not unmount; call [`Mount::run`].
pub struct Mount {
    session: fuser::Session<fs::SvolFs>,
    mountpoint: PathBuf,
    lease: session::Lease,
    ahead: std::sync::Arc<ahead::Ahead>,
    rt: tokio::runtime::Handle,
}

impl Mount {
    /// Mounts `vol` at `mountpoint` and returns once the kernel has the
    /// file system (so `-d` can report readiness). Must be called inside a
    /// tokio runtime.
    pub async fn new(
        vol: Volume,
        mountpoint: &Path,
        opts: MountOptions,
    ) -> Result<Self, MountError> {
        // A snapshot is read-only: the kernel refuses writes before they
        // reach the server (which refuses them too).
        let mut opts = opts;
        opts.read_only |= !vol.info().snapshot_of.is_empty();
        // The mount's calls carry its own session, whoever else in this
        // process uses the client.
        let vol = vol.with_own_session();
        let root = match &opts.sub_path {
            Some(p) if !p.trim_matches('/').is_empty() => {
                let a = vol.resolve(p).await?;
                if !a.is_dir() {
                    return Err(MountError::SubPath(p.clone()));
                }
                a.ino
            }
            _ => vol.root(),
        };
        let cache = BlockCache::new(
            vol.clone(),
            if opts.memory_cache == 0 {
                DEFAULT_MEMORY_CACHE
            } else {
                opts.memory_cache
            },
            opts.cache_dir.clone(),
            if opts.cache_size == 0 {
                DEFAULT_CACHE_SIZE
            } else {
                opts.cache_size
            },
        )?;
        let locks = std::sync::Arc::new(locks::LockState::default());
        let listings = std::sync::Arc::new(listings::Listings::default());
        let peeks = std::sync::Arc::new(peeks::Peeks::default());
        let ahead_slot = std::sync::Arc::new(std::sync::OnceLock::new());
        let purpose = if opts.purpose.is_empty() {
            format!("mount {}", mountpoint.display())
        } else {
            opts.purpose.clone()
        };
        let (session_id, lease, lease_state, invalidations) = session::start(
            vol.clone(),
            session::Describe {
                app: opts.app.clone(),
                purpose,
            },
            locks.applied_watch.subscribe(),
            listings.clone(),
            peeks.clone(),
            ahead_slot.clone(),
        )
        .await?;
        let ahead = ahead::Ahead::start(vol.clone(), listings.clone(), lease_state.clone());
        let _ = ahead_slot.set(ahead.clone());
        tracing::debug!("session opened");
        drop(session_id);
        let fs = fs::SvolFs::new(
            vol.clone(),
            root,
            opts.read_only,
            cache,
            tokio::runtime::Handle::current(),
            locks.clone(),
            lease_state,
            listings.clone(),
            peeks,
            ahead.clone(),
            if opts.max_dirty == 0 {
                512 << 20
            } else {
                opts.max_dirty
            },
        );
        let forget = fs.forget_version();
        let mut cfg = Config::default();
        cfg.mount_options = vec![
            MountOption::FSName(format!("svol:{}", vol.info().name)),
            MountOption::Subtype("svol".into()),
            MountOption::DefaultPermissions,
            MountOption::AutoUnmount,
            if opts.read_only {
                MountOption::RO
            } else {
                MountOption::RW
            },
            if opts.suid {
                MountOption::Suid
            } else {
                MountOption::NoSuid
            },
            if opts.dev {
                MountOption::Dev
            } else {
                MountOption::NoDev
            },
        ];
        // Auto-unmount needs more than `Owner`; root may always reach the
        // mount anyway.
        cfg.acl = if opts.allow_other {
            SessionACL::All
        } else {
            SessionACL::RootAndOwner
        };
        cfg.n_threads = Some(2);
        let mp = mountpoint.to_path_buf();
        let session = tokio::task::spawn_blocking(move || fuser::Session::new(fs, &mp, &cfg))
            .await
            .map_err(|e| MountError::Mount {
                path: mountpoint.into(),
                source: std::io::Error::other(e),
            })?
            .map_err(|source| MountError::Mount {
                path: mountpoint.into(),
                source,
            })?;
        let _ = locks.notifier.set(session.notifier());
        listings.attach(session.notifier(), root);
        session::spawn_invalidator(session.notifier(), invalidations, root, forget, locks);
        Ok(Self {
            session,
            mountpoint: mountpoint.to_path_buf(),
            lease,
            ahead,
            rt: tokio::runtime::Handle::current(),
        })
    }

    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// A handle that unmounts from another thread (on a signal, say).
    pub fn unmounter(&mut self) -> fuser::SessionUnmounter {
        self.session.unmount_callable()
    }

    /// Serves requests until the file system is unmounted, then ends the
    /// lease. Blocks: call it off the async threads (`spawn_blocking`).
    pub fn run(self) -> std::io::Result<()> {
        // Waits in its own thread for the INIT this loop is about to answer.
        let mp = self.mountpoint.clone();
        std::thread::spawn(move || readahead::widen(&mp, readahead::WINDOW_KIB));
        let res = self.session.run();
        self.rt.block_on(async {
            // Creates made ahead land before the lease ends.
            if let Err(e) = self.ahead.settle().await {
                tracing::error!("creates made ahead were lost at unmount: {e}");
            }
            self.lease.close().await
        });
        res
    }
}
