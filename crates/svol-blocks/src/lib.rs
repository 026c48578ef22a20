//! Block storage: immutable, content-addressed blobs of file data.
//!
//! A block is named by the BLAKE3 hash of its bytes, so a block never changes
//! once written and never needs invalidating in a cache. This crate owns how
//! blocks are kept (a local directory today, an object store later) and
//! checks every block against its name on the way in. It knows nothing about
//! files, volumes or reference counts: the metadata store decides when a
//! block may be deleted. It must not depend on any other svol crate.

mod backend;
mod hash;
mod local;

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

pub use backend::BlockBackend;
pub use hash::BlockHash;

/// Largest block accepted.
pub const MAX_BLOCK: usize = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("block {0} not found")]
    NotFound(BlockHash),
    #[error("block data does not match its hash {0}")]
    HashMismatch(BlockHash),
    #[error("block of {0} bytes is larger than the {MAX_BLOCK} byte limit")]
    TooLarge(usize),
    #[error("invalid block hash: {0}")]
    InvalidHash(String),
    #[error("block store is out of space")]
    NoSpace,
    #[error("block store I/O error: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = BlockError> = std::result::Result<T, E>;

/// The block store every svol component talks to. Cheap to clone.
#[derive(Clone)]
pub struct BlockStore {
    backend: Arc<dyn BlockBackend>,
}

impl std::fmt::Debug for BlockStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockStore").finish_non_exhaustive()
    }
}

impl BlockStore {
    /// Blocks as files under `dir` (created if missing).
    pub fn local(dir: &Path) -> Result<Self> {
        Ok(Self::from_backend(Arc::new(local::LocalDir::open(dir)?)))
    }

    pub fn from_backend(backend: Arc<dyn BlockBackend>) -> Self {
        Self { backend }
    }

    /// Stores `data` under `hash` after checking that the hash is right.
    /// Storing a block that already exists is a cheap no-op. Returns whether
    /// the bytes were written now (and so may still need a `sync`).
    pub async fn put(&self, hash: BlockHash, data: Bytes) -> Result<bool> {
        if data.len() > MAX_BLOCK {
            return Err(BlockError::TooLarge(data.len()));
        }
        let check = data.clone();
        let actual = tokio::task::spawn_blocking(move || BlockHash::of(&check))
            .await
            .map_err(|e| BlockError::Io(std::io::Error::other(e)))?;
        if actual != hash {
            return Err(BlockError::HashMismatch(hash));
        }
        if self.backend.contains(hash).await? {
            return Ok(false);
        }
        self.backend.put(hash, data).await?;
        Ok(true)
    }

    /// Makes blocks durable (see `BlockBackend::sync`).
    pub async fn sync(&self, hashes: &[BlockHash]) -> Result<()> {
        if hashes.is_empty() {
            return Ok(());
        }
        self.backend.sync(hashes).await
    }

    pub async fn get(&self, hash: BlockHash) -> Result<Bytes> {
        self.backend.get(hash).await
    }

    pub async fn contains(&self, hash: BlockHash) -> Result<bool> {
        self.backend.contains(hash).await
    }

    /// Deletes a block; deleting a missing block is not an error.
    pub async fn delete(&self, hash: BlockHash) -> Result<()> {
        self.backend.delete(hash).await
    }

    /// Space (total, free) of the medium under the store, in bytes.
    pub async fn capacity(&self) -> Result<(u64, u64)> {
        self.backend.capacity().await
    }
}
