//! svol's metadata: workspaces, tokens, apps, volumes and each volume's file tree
//! (inodes, directory entries, chunk maps, xattrs, open files, block
//! reference counts), and the coordination state of every server: sessions
//! and their leases, locks with fencing tokens, and the change feed.
//!
//! Every method of [`MetaBackend`] is one whole file-system operation and one
//! transaction, so `rename`, `O_CREAT|O_EXCL`, `mkdir` and `link` are atomic
//! and exclusive for every client of the server. A change checks the acting
//! session's lease (and a presented fencing token) in its own transaction,
//! returns what it changed (`ChangeSet`) and appends it to the feed. The
//! crate owns the rules of the tree (nlink, times, what may replace what);
//! it does not store file
//! bytes (that is `svol-blocks`) and must not depend on any svol crate: block
//! hashes are plain `[u8; 32]` here.
//!
//! Callers use the concrete [`MetaStore`]; backends implement
//! [`MetaBackend`] and are all checked by the one conformance suite, the
//! `conformance` module (feature `conformance`), which every backend's tests
//! run through `meta_conformance!` with one `#[test]` per case.

mod backend;
#[cfg(feature = "conformance")]
pub mod conformance;
mod error;
mod lifetimes;
mod postgres;
mod sql;
mod sqlite;
mod tree;
mod types;

use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

pub use backend::{MetaBackend, STALE_MARK_MS};
pub use error::{MetaError, Result};
pub use lifetimes::*;
pub use postgres::{Doorbell, Leadership};
pub use sql::Copied;
pub use types::*;

static TRANSACTION_RETRIES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Transactions this process ran again because they lost a race with a
/// concurrent one (PostgreSQL's serialization failures; SQLite has one
/// writer and never retries).
pub fn transaction_retries() -> u64 {
    TRANSACTION_RETRIES.load(std::sync::atomic::Ordering::Relaxed)
}

/// The metadata store. Cheap to clone; derefs to the backend's operations.
#[derive(Clone)]
pub struct MetaStore {
    backend: Arc<dyn MetaBackend>,
    /// The same store when it is PostgreSQL: shared with other servers,
    /// with a doorbell and a leader election.
    postgres: Option<Arc<sql::SqlStore<postgres::Postgres>>>,
}

impl MetaStore {
    /// SQLite database at `path` (created and migrated if new).
    pub fn sqlite(path: &Path) -> Result<Self> {
        Ok(Self {
            backend: Arc::new(sql::SqlStore {
                engine: sqlite::Sqlite::open(path)?,
            }),
            postgres: None,
        })
    }
}

impl MetaStore {
    /// PostgreSQL at `url` (`postgres://user:password@host:port/db`): the
    /// schema is created if the database is empty. Any number of servers
    /// may share it.
    pub fn postgres(url: &str) -> Result<Self> {
        let pg = Arc::new(sql::SqlStore {
            engine: postgres::Postgres::open(url)?,
        });
        Ok(Self {
            postgres: Some(pg.clone()),
            backend: pg,
        })
    }

    /// The store named by `spec`: a `postgres://` (or `postgresql://`) URL,
    /// else the path of a SQLite file.
    pub fn open(spec: &str) -> Result<Self> {
        if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
            Self::postgres(spec)
        } else {
            Self::sqlite(Path::new(spec.strip_prefix("sqlite://").unwrap_or(spec)))
        }
    }

    /// The lead of the background loops among the servers sharing the
    /// store (a store only this process uses: always led).
    pub fn election(&self) -> Election {
        Election(self.postgres.as_ref().map(|pg| pg.engine.leadership()))
    }

    /// Is the store shared with other servers (PostgreSQL)?
    pub fn shared(&self) -> bool {
        self.postgres.is_some()
    }

    /// A doorbell that rings when any server appends to the change feed,
    /// for stores shared by several servers (None: only this process
    /// writes, and it knows when it does).
    pub fn doorbell(&self) -> Result<Option<Doorbell>> {
        match &self.postgres {
            Some(pg) => Ok(Some(pg.engine.doorbell()?)),
            None => Ok(None),
        }
    }
}

/// Copies every workspace, token, app, volume and file tree (and the
/// sessions, open files and locks that hold them) from the store `from` to
/// the empty store `to` (each a `postgres://` URL or a SQLite path, as for
/// [`MetaStore::open`]). Nothing may use either store meanwhile: stop the
/// servers first. Block bytes are not metadata: copy them separately.
pub fn copy_store(from: &str, to: &str) -> Result<Copied> {
    fn is_pg(s: &str) -> bool {
        s.starts_with("postgres://") || s.starts_with("postgresql://")
    }
    fn lite(s: &str) -> Result<sqlite::Sqlite> {
        let p = Path::new(s.strip_prefix("sqlite://").unwrap_or(s));
        if !p.exists() {
            return Err(MetaError::NotFound(format!("SQLite store {}", p.display())));
        }
        sqlite::Sqlite::open(p)
    }
    match (is_pg(from), is_pg(to)) {
        (false, true) => sql::copy_all(&lite(from)?, &postgres::Postgres::open(to)?),
        (true, false) => sql::copy_all(
            &postgres::Postgres::open(from)?,
            &sqlite::Sqlite::open(Path::new(to))?,
        ),
        (true, true) => sql::copy_all(
            &postgres::Postgres::open(from)?,
            &postgres::Postgres::open(to)?,
        ),
        (false, false) => sql::copy_all(&lite(from)?, &sqlite::Sqlite::open(Path::new(to))?),
    }
}

/// Whether this server runs the background loops (see [`Leadership`]).
pub struct Election(Option<Leadership>);

impl Election {
    /// Blocks on the database for a moment: call off the async workers.
    pub fn leading(&mut self) -> bool {
        self.0.as_mut().is_none_or(Leadership::leading)
    }
}

impl Deref for MetaStore {
    type Target = dyn MetaBackend;
    fn deref(&self) -> &Self::Target {
        &*self.backend
    }
}

impl std::fmt::Debug for MetaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaStore").finish_non_exhaustive()
    }
}

/// Runs the whole [`conformance`] suite against a backend, one `#[test]` per
/// case. `$make` is an expression giving `(MetaStore, guard)` for a fresh,
/// empty store; the guard (a temporary directory, a server) lives as long
/// as the case.
#[cfg(feature = "conformance")]
#[macro_export]
macro_rules! meta_conformance {
    ($make:expr) => {
        $crate::meta_conformance!(@cases $make;
            tokens_and_volumes,
            apps_and_lifetimes,
            create_lookup_and_exclusive,
            unlink_rmdir_and_links,
            unlinked_but_open,
            create_open_and_batched_release,
            queued_creates,
            queued_unlinks_and_renames,
            changes_carry_small_contents,
            rename_rules,
            readdir_paging,
            contents_truncate_and_block_refs,
            attributes_and_xattrs,
            concurrent_exclusive_create,
            sessions_leases_and_generations,
            locks_queue_and_fencing,
            changes_and_the_feed,
            store_stats,
            usage_and_live_sessions,
            snapshots_restore_and_clone,
            trash_keeps_restores_and_purges,
            file_trash_keeps_removed_files,
            quotas_count_and_refuse,
            privileges_go_with_changes,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let (store, _guard) = $make;
                $crate::conformance::$case(&store);
            }
        )*
    };
}
