//! svol's metadata: workspaces, tokens, apps, volumes and each volume's file tree
//! (inodes, directory entries, chunk maps, xattrs, open files, block
//! reference counts).
//!
//! Every method of [`MetaBackend`] is one whole file-system operation and one
//! transaction, so `rename`, `O_CREAT|O_EXCL`, `mkdir` and `link` are atomic
//! and exclusive for every client of the server. The crate owns the rules of
//! the tree (nlink, times, what may replace what); it does not store file
//! bytes (that is `svol-blocks`) and must not depend on any svol crate: block
//! hashes are plain `[u8; 32]` here.
//!
//! Callers use the concrete [`MetaStore`]; backends implement
//! [`MetaBackend`] and are all checked by the one conformance suite in
//! `tests/conformance.rs`.

mod backend;
mod error;
mod lifetimes;
mod sqlite;
mod types;

use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

pub use backend::MetaBackend;
pub use error::{MetaError, Result};
pub use lifetimes::*;
pub use types::*;

/// The metadata store. Cheap to clone; derefs to the backend's operations.
#[derive(Clone)]
pub struct MetaStore {
    backend: Arc<dyn MetaBackend>,
}

impl MetaStore {
    /// SQLite database at `path` (created and migrated if new).
    pub fn sqlite(path: &Path) -> Result<Self> {
        Ok(Self {
            backend: Arc::new(sqlite::Sqlite::open(path)?),
        })
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
