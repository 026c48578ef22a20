//! `svol admin fsck` and `svol admin gc`: the metadata's block rows
//! against the block store's files, with the server stopped (the data
//! directory's lock is held throughout, so no upload is in flight).
//! A block the metadata needs but the store lacks is reported with the
//! files that read it (nothing can bring its bytes back); a block file no
//! row names is an orphan — left by a crash between write and register —
//! and is deleted when asked.

use std::collections::HashSet;
use std::path::Path;

use svol_blocks::{BlockHash, BlockKey, BlockStore};
use svol_meta::MetaStore;

use crate::ServerError;

/// A block the metadata needs that the store lacks.
#[derive(Debug)]
pub struct MissingBlock {
    pub workspace: i64,
    pub hash: String,
    /// Files that read it: (volume, path).
    pub files: Vec<(String, String)>,
}

/// What a check found.
#[derive(Debug, Default)]
pub struct FsckReport {
    pub blocks_in_metadata: usize,
    pub blocks_stored: usize,
    /// Referenced by metadata, absent from the store.
    pub missing: Vec<MissingBlock>,
    /// Stored, named by no row: (workspace, hash).
    pub orphans: Vec<(u64, String)>,
    /// Orphans deleted (with `repair`).
    pub removed: usize,
}

/// Checks the data directory `dir` (SQLite metadata and local blocks, the
/// default layout); with `repair`, deletes the orphan blocks.
pub async fn fsck(dir: &Path, repair: bool) -> Result<FsckReport, ServerError> {
    let _lock = crate::daemon::lock_data_dir(dir)?;
    let meta = tokio::task::block_in_place(|| MetaStore::sqlite(&dir.join("meta.db")))?;
    let blocks = tokio::task::block_in_place(|| BlockStore::local(&dir.join("blocks")))?;
    let rows = tokio::task::block_in_place(|| meta.all_blocks())?;
    let stored: HashSet<BlockKey> = blocks.list().await?.into_iter().collect();
    let mut report = FsckReport {
        blocks_in_metadata: rows.len(),
        blocks_stored: stored.len(),
        ..Default::default()
    };
    let mut named = HashSet::new();
    for (b, refs) in &rows {
        let key = BlockKey::new(b.workspace as u64, BlockHash(b.hash));
        named.insert(key);
        if *refs > 0 && !stored.contains(&key) {
            let users = tokio::task::block_in_place(|| meta.block_users(b, 20))?;
            report.missing.push(MissingBlock {
                workspace: b.workspace,
                hash: BlockHash(b.hash).to_hex(),
                files: users,
            });
        }
    }
    let mut orphans: Vec<BlockKey> = stored.difference(&named).copied().collect();
    orphans.sort();
    for k in &orphans {
        report.orphans.push((k.owner, k.hash.to_hex()));
        if repair {
            blocks.delete(*k).await?;
            report.removed += 1;
        }
    }
    Ok(report)
}
