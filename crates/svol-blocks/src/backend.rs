use bytes::Bytes;

use crate::{BlockKey, Result};

/// What a place that keeps blocks must do. Implementations trust their
/// caller: `BlockStore` has already checked hashes and sizes, and verifies
/// what `get` returns.
#[async_trait::async_trait]
pub trait BlockBackend: Send + Sync + 'static {
    /// Stores a block. It survives a crash of the process at once, and a
    /// power loss once `sync` has returned for it.
    async fn put(&self, key: BlockKey, data: Bytes) -> Result<()>;
    /// Makes the given blocks durable on stable storage.
    async fn sync(&self, keys: &[BlockKey]) -> Result<()>;
    async fn get(&self, key: BlockKey) -> Result<Bytes>;
    /// Length of the stored block, if there is one.
    async fn size(&self, key: BlockKey) -> Result<Option<u64>>;
    async fn delete(&self, key: BlockKey) -> Result<()>;
    async fn capacity(&self) -> Result<(u64, u64)>;
    /// Every block stored, of every owner: a scan of the whole store, for
    /// a consistency check against the metadata (never for deciding what
    /// to delete while uploads run).
    async fn list(&self) -> Result<Vec<BlockKey>>;
    /// The stored block as a read-only open file and its length, for a
    /// client on this host to read itself; None where blocks are not
    /// files. Blocking (a metadata lookup and an `open`).
    fn open_file(&self, _key: BlockKey) -> Result<Option<(std::fs::File, u64)>> {
        Ok(None)
    }
}
