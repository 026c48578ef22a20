use bytes::Bytes;

use crate::{BlockHash, Result};

/// What a place that keeps blocks must do. Implementations trust their
/// caller: `BlockStore` has already checked hashes and sizes.
#[async_trait::async_trait]
pub trait BlockBackend: Send + Sync + 'static {
    /// Stores a block. It survives a crash of the process at once, and a
    /// power loss once `sync` has returned for it.
    async fn put(&self, hash: BlockHash, data: Bytes) -> Result<()>;
    /// Makes the given blocks durable on stable storage.
    async fn sync(&self, hashes: &[BlockHash]) -> Result<()>;
    async fn get(&self, hash: BlockHash) -> Result<Bytes>;
    async fn contains(&self, hash: BlockHash) -> Result<bool>;
    async fn delete(&self, hash: BlockHash) -> Result<()>;
    async fn capacity(&self) -> Result<(u64, u64)>;
}
