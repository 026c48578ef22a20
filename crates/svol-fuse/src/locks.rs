//! fcntl and flock locks, granted by the server so they hold across
//! mounts. A lock also orders data: before unlocking, this mount commits
//! what it wrote to the file; after a grant, it applies every invalidation
//! the server sent before the grant and drops its cached view of the file
//! if another mount changed it — so whoever takes a lock next, anywhere,
//! reads what the last holder wrote (what databases on shared volumes need).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use svol_sdk::{ClientError, FsErrno, LockKind, LockRequest, Result};

use crate::fs::Inner;

/// Lock bookkeeping shared by the file system and the invalidation thread.
#[derive(Default)]
pub(crate) struct LockState {
    /// Highest invalidation sequence number applied to the kernel.
    pub(crate) applied: AtomicU64,
    /// The same, for the session stream to acknowledge to the server.
    pub(crate) applied_watch: tokio::sync::watch::Sender<u64>,
    /// For dropping the kernel's page cache of a file after a grant.
    pub(crate) notifier: OnceLock<fuser::Notifier>,
    /// (inode, owner) pairs that may hold locks, so close only asks the
    /// server to unlock when there can be something to unlock.
    held: Mutex<HashSet<(u64, u64)>>,
}

fn guard<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The kernel's lock type (F_RDLCK, F_WRLCK, F_UNLCK) on the wire.
fn kind_of(typ: i32) -> Result<LockKind> {
    match typ {
        libc::F_RDLCK => Ok(LockKind::Read),
        libc::F_WRLCK => Ok(LockKind::Write),
        libc::F_UNLCK => Ok(LockKind::Unlock),
        _ => Err(ClientError::InvalidArgument(format!("lock type {typ}"))),
    }
}

fn typ_of(k: LockKind) -> i32 {
    match k {
        LockKind::Read => libc::F_RDLCK,
        LockKind::Write => libc::F_WRLCK,
        LockKind::Unlock => libc::F_UNLCK,
    }
}

/// A conflicting lock: (start, end, type, pid), as `getlk` replies.
pub(crate) type Conflict = (u64, u64, i32, u32);

/// A lock request as the kernel states it: `typ` is F_RDLCK, F_WRLCK or
/// F_UNLCK over bytes `start..=end` of `ino`, for lock owner `owner`.
pub(crate) struct LockSpec {
    pub ino: u64,
    pub owner: u64,
    pub start: u64,
    pub end: u64,
    pub typ: i32,
    pub pid: u32,
}

impl LockSpec {
    fn request(&self, kind: LockKind) -> LockRequest {
        LockRequest {
            ino: self.ino,
            owner: self.owner,
            kind,
            start: self.start,
            end: self.end,
            pid: self.pid,
            wait: false,
            test: false,
        }
    }
}

impl Inner {
    pub(crate) async fn getlk(&self, l: &LockSpec) -> Result<Conflict> {
        let r = LockRequest {
            test: true,
            ..l.request(kind_of(l.typ)?)
        };
        self.ahead.settle().await?;
        let a = self.vol.lock(r).await?;
        if a.granted {
            return Ok((l.start, l.end, libc::F_UNLCK, 0));
        }
        Ok((a.start, a.end, typ_of(a.kind), a.pid))
    }

    pub(crate) async fn setlk(&self, l: &LockSpec, wait: bool) -> Result<()> {
        let kind = kind_of(l.typ)?;
        if kind == LockKind::Unlock {
            return self.unlock(l).await;
        }
        self.ahead.settle().await?;
        guard(&self.locks.held).insert((l.ino, l.owner));
        let a = self
            .vol
            .lock(LockRequest {
                wait,
                ..l.request(kind)
            })
            .await?;
        if !a.granted {
            return Err(ClientError::Fs(
                FsErrno::Again,
                "locked by another owner".into(),
            ));
        }
        self.lease.granted(l.ino, a.fence);
        self.catch_up(l.ino, a.version, a.invalidation_seq).await;
        Ok(())
    }

    /// Commits this mount's writes to the file, then unlocks.
    /// Does `owner` hold any lock on `ino` through this mount?
    pub(crate) fn holds_any(&self, ino: u64, owner: u64) -> bool {
        guard(&self.locks.held).contains(&(ino, owner))
    }

    async fn unlock(&self, l: &LockSpec) -> Result<()> {
        if !guard(&self.locks.held).contains(&(l.ino, l.owner)) {
            return Ok(());
        }
        self.flush(l.ino, false).await?;
        let a = self.vol.lock(l.request(LockKind::Unlock)).await?;
        self.lease.still_held(l.ino, a.fence);
        if l.start == 0 && l.end == u64::MAX {
            guard(&self.locks.held).remove(&(l.ino, l.owner));
        }
        Ok(())
    }

    /// On close (POSIX: any close by the process; flock: the last close of
    /// the open file): everything `owner` holds on the file goes.
    pub(crate) async fn unlock_all(&self, ino: u64, owner: u64) -> Result<()> {
        self.unlock(&LockSpec {
            ino,
            owner,
            start: 0,
            end: u64::MAX,
            typ: libc::F_UNLCK,
            pid: 0,
        })
        .await
    }

    /// After a grant: apply the invalidations sent before it, and if the
    /// file changed elsewhere, re-read its chunk map and drop the kernel's
    /// cached pages and attributes.
    async fn catch_up(&self, ino: u64, version: u64, seq: u64) {
        let start = Instant::now();
        // A lost stream would never deliver them; the version check below
        // still catches a changed file.
        while self.locks.applied.load(Ordering::Acquire) < seq
            && start.elapsed() < Duration::from_secs(2)
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let Some(f) = self.file(ino) else { return };
        let mut st = f.lock().await;
        if st.version == version {
            return;
        }
        let _ = self.refetch(ino, &mut st).await;
        drop(st);
        self.forget_seen(ino);
        if let Some(n) = self.locks.notifier.get().cloned() {
            let k = fuser::INodeNo(if ino == self.root { 1 } else { ino });
            let _ = tokio::task::spawn_blocking(move || n.inval_inode(k, 0, 0)).await;
        }
    }
}
