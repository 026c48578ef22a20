//! Moving an embedded deployment (SQLite and a block directory under one
//! data directory) to the stores of a cluster: its metadata into an empty
//! PostgreSQL database, and its block bytes into an S3 bucket (or any
//! other block store). The old server must be stopped; its data directory
//! is only read, so it stays a complete fallback until the cluster runs.

use std::path::Path;

use svol_blocks::BlockStore;
use svol_meta::{BlockRef, MetaStore};

use crate::blocks::block_key;
use crate::ServerError;

/// What a migration copied.
#[derive(Debug, Clone, Default)]
pub struct Migrated {
    pub rows: u64,
    pub blocks: u64,
    pub bytes: u64,
}

/// Copies `data_dir`'s metadata into the empty store `to_meta` and, if
/// `to_blocks` is given, every block it holds into that store (a block's
/// bytes are checked against its hash on the way).
pub async fn migrate(
    data_dir: &Path,
    to_meta: &str,
    to_blocks: Option<&str>,
) -> Result<Migrated, ServerError> {
    let db = data_dir.join("meta.db");
    let (from, to) = (db.to_string_lossy().into_owned(), to_meta.to_string());
    let copied = tokio::task::spawn_blocking(move || svol_meta::copy_store(&from, &to))
        .await
        .map_err(|e| crate::io("copying the metadata")(std::io::Error::other(e)))??;
    let mut out = Migrated {
        rows: copied.rows(),
        ..Default::default()
    };
    let Some(url) = to_blocks else {
        return Ok(out);
    };
    let source = BlockStore::local(&data_dir.join("blocks"))?;
    let target = if url.starts_with("s3://") {
        BlockStore::s3(url).await?
    } else {
        BlockStore::local(Path::new(url))?
    };
    let meta = tokio::task::block_in_place(|| MetaStore::sqlite(&db))?;
    let mut after: Option<BlockRef> = None;
    loop {
        let page = tokio::task::block_in_place(|| meta.list_blocks(after.as_ref(), 1000))?;
        let Some(last) = page.last().cloned() else {
            break;
        };
        for b in page {
            let key = block_key(&b);
            let data = match source.get(key).await {
                Ok(d) => d,
                // A block being deleted has no bytes any more: its row is
                // marked and the cluster's sweeper finishes the deletion.
                Err(svol_blocks::BlockError::NotFound(_)) => continue,
                Err(e) => return Err(e.into()),
            };
            out.bytes += data.len() as u64;
            target.put(key, data).await?;
            out.blocks += 1;
        }
        after = Some(last);
    }
    Ok(out)
}
