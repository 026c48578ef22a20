use bytes::Bytes;

use crate::{BlockHash, Result};

/// What a place that keeps blocks must do. Implementations trust their
/// caller: `BlockStore` has already checked hashes and sizes.
#[async_trait::async_trait]
pub trait BlockBackend: Send + Sync + 'static {
    /// Stores a block durably; returns once it survives a crash.
    async fn put(&self, hash: BlockHash, data: Bytes) -> Result<()>;
    async fn get(&self, hash: BlockHash) -> Result<Bytes>;
    async fn contains(&self, hash: BlockHash) -> Result<bool>;
    async fn delete(&self, hash: BlockHash) -> Result<()>;
    async fn capacity(&self) -> Result<(u64, u64)>;
}
