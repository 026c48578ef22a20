//! Block storage: immutable, content-addressed blobs of file data.
//!
//! A block is named by the BLAKE3 hash of its bytes, so a block never changes
//! once written and never needs invalidating in a cache. Every block also
//! has an owner (the workspace that uploaded it): identical bytes of two
//! owners are stored twice, so knowing a hash never gives access to another
//! owner's data. This crate owns how blocks are kept (a local directory
//! or an S3-compatible object store) and checks every block against its name on
//! the way in and on the way out. It knows nothing about files, volumes or
//! reference counts: the metadata store decides when a block may be
//! deleted. It must not depend on any other svol crate.

mod backend;
mod direct;
mod hash;
pub mod local;
pub mod s3;

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

pub use backend::BlockBackend;
pub use hash::{BlockHash, BlockKey};

/// Largest block accepted.
pub const MAX_BLOCK: usize = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("block {0} not found")]
    NotFound(BlockKey),
    #[error("block data does not match its hash {0}")]
    HashMismatch(BlockHash),
    /// The stored bytes no longer match the block's hash (bit rot, a torn
    /// write after power loss, tampering): never handed out as data.
    #[error("block {0} is corrupt: its bytes do not match its hash")]
    Corrupt(BlockKey),
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

    /// Blocks as objects of an S3-compatible store (`s3://bucket[/prefix]`;
    /// endpoint and credentials from the `AWS_*` environment). Fails, naming
    /// the URL, if the store cannot be reached, the bucket is missing or the
    /// credentials are refused.
    pub async fn s3(url: &str) -> Result<Self> {
        let store = s3::S3Blocks::from_url(url)?;
        store.check().await.map_err(|e| {
            BlockError::Io(std::io::Error::other(format!(
                "block store {url} cannot be used: {e}"
            )))
        })?;
        Ok(Self::from_backend(Arc::new(store)))
    }

    pub fn from_backend(backend: Arc<dyn BlockBackend>) -> Self {
        Self { backend }
    }

    /// Stores `data` under `key` after checking that the hash is right.
    /// Storing a block that already exists whole is a cheap no-op; one of
    /// the wrong length (torn by a power cut before it was synced) is
    /// written again. Returns whether the bytes were written now (and so
    /// may still need a `sync`).
    pub async fn put(&self, key: BlockKey, data: Bytes) -> Result<bool> {
        if data.len() > MAX_BLOCK {
            return Err(BlockError::TooLarge(data.len()));
        }
        if hash_of(data.clone()).await? != key.hash {
            return Err(BlockError::HashMismatch(key.hash));
        }
        if self.backend.size(key).await? == Some(data.len() as u64) {
            return Ok(false);
        }
        self.backend.put(key, data).await?;
        Ok(true)
    }

    /// Makes blocks durable (see `BlockBackend::sync`).
    pub async fn sync(&self, keys: &[BlockKey]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        self.backend.sync(keys).await
    }

    /// The block's bytes, checked against its hash: a block whose bytes
    /// changed on the medium is `Corrupt`, never wrong data.
    pub async fn get(&self, key: BlockKey) -> Result<Bytes> {
        let data = self.backend.get(key).await?;
        if hash_of(data.clone()).await? != key.hash {
            tracing::error!("block {key} is corrupt: stored bytes do not match its hash");
            return Err(BlockError::Corrupt(key));
        }
        Ok(data)
    }

    /// The stored block as a read-only open file and its length, for
    /// handing to a client on this host (see the server's block channel);
    /// None where blocks are not local files. The bytes are not checked
    /// here: whoever reads them checks them against the hash. Blocking.
    pub fn open_file(&self, key: BlockKey) -> Result<Option<(std::fs::File, u64)>> {
        self.backend.open_file(key)
    }

    pub async fn contains(&self, key: BlockKey) -> Result<bool> {
        Ok(self.backend.size(key).await?.is_some())
    }

    /// Deletes a block; deleting a missing block is not an error.
    pub async fn delete(&self, key: BlockKey) -> Result<()> {
        self.backend.delete(key).await
    }

    /// Space (total, free) of the medium under the store, in bytes.
    pub async fn capacity(&self) -> Result<(u64, u64)> {
        self.backend.capacity().await
    }

    /// Every block stored (see `BlockBackend::list`).
    pub async fn list(&self) -> Result<Vec<BlockKey>> {
        self.backend.list().await
    }
}

/// BLAKE3 of a block, off the async threads (a 4 MiB block takes a few ms).
async fn hash_of(data: Bytes) -> Result<BlockHash> {
    tokio::task::spawn_blocking(move || BlockHash::of(&data))
        .await
        .map_err(|e| BlockError::Io(std::io::Error::other(e)))
}
