//! `svol volume warmup`: fetches the blocks of files into a cache
//! directory ahead of a job, so that a mount with `--cache-dir` on it reads
//! them from local disk (each checked against its hash first).

use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use futures::StreamExt;
use svol_fuse::DiskCache;
use svol_sdk::Volume;

/// Regular files at `path` and below it: (path, inode).
async fn files(vol: &Volume, path: &str) -> Result<Vec<(String, u64)>> {
    let top = vol.stat(path).await?;
    if !top.is_dir() {
        return Ok(vec![(path.to_string(), top.ino)]);
    }
    let mut out = Vec::new();
    let mut todo = vec![path.trim_end_matches('/').to_string()];
    while let Some(dir) = todo.pop() {
        for e in vol.listdir(if dir.is_empty() { "/" } else { &dir }).await? {
            let p = format!("{dir}/{}", e.name);
            if e.is_dir() {
                todo.push(p);
            } else if e.kind() == "file" {
                out.push((p, e.attr.ino));
            }
        }
    }
    Ok(out)
}

pub(crate) async fn warmup(vol: &Volume, paths: &[String], dir: &Path, size: u64) -> Result<i32> {
    let cache = DiskCache::open(dir, &vol.info().id, size)
        .with_context(|| format!("cache dir {}", dir.display()))?;
    let cache = Arc::new(Mutex::new(cache));
    let mut hashes = Vec::new();
    let mut nfiles = 0usize;
    for p in paths {
        for (_, ino) in files(vol, p).await? {
            nfiles += 1;
            let (_, chunks) = vol.chunks_of(ino).await?;
            hashes.extend(
                chunks
                    .into_iter()
                    .flatten()
                    .map(|c| c.hash)
                    .filter(|h| !h.is_empty()),
            );
        }
    }
    hashes.sort();
    hashes.dedup();
    let wanted = hashes.len();
    let missing: Vec<_> = {
        let c = cache.lock().unwrap_or_else(|p| p.into_inner());
        hashes.into_iter().filter(|h| !c.contains(h)).collect()
    };
    let already = wanted - missing.len();
    let fetched = futures::stream::iter(missing.into_iter().map(|h| {
        let (vol, cache) = (vol.clone(), cache.clone());
        async move {
            let data = vol.get_block(h.clone()).await?;
            let n = data.len() as u64;
            tokio::task::spawn_blocking(move || {
                cache
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .put(&h, &data)
            })
            .await?;
            anyhow::Ok(n)
        }
    }))
    .buffer_unordered(4)
    .collect::<Vec<_>>()
    .await;
    let mut bytes = 0u64;
    for r in fetched {
        bytes += r?;
    }
    let (held, held_bytes) = cache.lock().unwrap_or_else(|p| p.into_inner()).usage();
    eprintln!(
        "{nfiles} files: {} blocks fetched ({}), {already} already cached; {} holds {held} blocks ({})",
        wanted - already,
        crate::table::size(bytes),
        dir.display(),
        crate::table::size(held_bytes)
    );
    if held < wanted {
        eprintln!("note: --cache-size is too small to hold them all; the oldest went first");
    }
    Ok(0)
}
