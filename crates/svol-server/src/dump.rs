//! `svol admin dump` and `svol admin load`: a whole data directory
//! (metadata and every block it names) as one tar stream, and back into a
//! new data directory. The server must be stopped: the dump holds the data
//! directory's lock, so no upload, commit or deletion runs under it.
//!
//! The stream, in order: `svol-dump/format` (the format version, so a
//! stranger's tar is refused at its first entry), `svol-dump/meta.db` (a
//! fresh SQLite copy of the metadata, made by the same row copy a
//! migration uses), `svol-dump/blocks/w<ws>/ab/cdef…` for each block a file
//! reads, and `svol-dump/manifest.json` last with the counts — a stream cut
//! short has no manifest and is refused. Secrets stay out: tokens are in
//! the metadata only as hashes, and `client.toml` (which holds a token in
//! clear) is not dumped; the loaded server writes a new one at its first
//! start, and every token that worked before works again.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::Path;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use svol_blocks::{BlockHash, BlockKey, BlockStore};
use svol_meta::MetaStore;

use crate::{io, ServerError};

const FORMAT: &str = "svol-dump 1\n";
const PREFIX: &str = "svol-dump/";

/// What a dump wrote or a load read.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct DumpManifest {
    pub metadata_rows: u64,
    pub blocks: u64,
    pub block_bytes: u64,
}

fn bad(what: impl Into<String>) -> ServerError {
    ServerError::BadDump(what.into())
}

fn block_entry(k: &BlockKey) -> String {
    let h = k.hash.to_hex();
    format!("{PREFIX}blocks/w{}/{}/{}", k.owner, &h[..2], &h[2..])
}

fn append(tar: &mut tar::Builder<impl Write>, name: &str, data: &[u8]) -> Result<(), ServerError> {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o600);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    tar.append_data(&mut h, name, data)
        .map_err(io(format!("writing {name} to the dump")))
}

/// Writes data directory `dir` (SQLite metadata and local blocks, the
/// default layout) to `out` as a tar stream.
pub async fn dump(dir: &Path, out: impl Write) -> Result<DumpManifest, ServerError> {
    let _lock = crate::daemon::lock_data_dir(dir)?;
    let db = dir.join("meta.db");
    if !db.exists() {
        return Err(bad(format!(
            "{} holds no svol server data (no meta.db)",
            dir.display()
        )));
    }
    let tmp = tempfile::tempdir().map_err(io("making a temporary directory"))?;
    let copy = tmp.path().join("meta.db");
    let (from, to) = (
        db.to_string_lossy().into_owned(),
        copy.to_string_lossy().into_owned(),
    );
    let copied = tokio::task::spawn_blocking(move || svol_meta::copy_store(&from, &to))
        .await
        .map_err(|e| io("copying the metadata")(std::io::Error::other(e)))??;
    let mut manifest = DumpManifest {
        metadata_rows: copied.rows(),
        ..Default::default()
    };
    let meta = tokio::task::block_in_place(|| MetaStore::sqlite(&db))?;
    let blocks = BlockStore::local(&dir.join("blocks"))?;
    let rows = tokio::task::block_in_place(|| meta.all_blocks())?;
    let mut tar = tar::Builder::new(out);
    tokio::task::block_in_place(|| -> Result<(), ServerError> {
        append(&mut tar, &format!("{PREFIX}format"), FORMAT.as_bytes())?;
        let mut f =
            std::fs::File::open(&copy).map_err(io(format!("reading {}", copy.display())))?;
        tar.append_file(format!("{PREFIX}meta.db"), &mut f)
            .map_err(io("writing the metadata to the dump".to_string()))
    })?;
    for (b, refs) in rows {
        // A row at zero references is a deletion under way: its bytes may
        // be gone already, and nothing reads it.
        if refs <= 0 {
            continue;
        }
        let key = BlockKey::new(b.workspace as u64, BlockHash(b.hash));
        let data = match blocks.get(key).await {
            Ok(d) => d,
            Err(svol_blocks::BlockError::NotFound(_)) => {
                return Err(bad(format!(
                    "block {key} is named by the metadata but missing from {}; \
                     `svol admin fsck` lists the files it belongs to",
                    dir.join("blocks").display()
                )))
            }
            Err(e) => return Err(e.into()),
        };
        manifest.blocks += 1;
        manifest.block_bytes += data.len() as u64;
        tokio::task::block_in_place(|| append(&mut tar, &block_entry(&key), &data))?;
    }
    let text = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| io("writing the manifest")(std::io::Error::other(e)))?;
    tokio::task::block_in_place(|| -> Result<(), ServerError> {
        append(&mut tar, &format!("{PREFIX}manifest.json"), &text)?;
        let mut out = tar
            .into_inner()
            .map_err(io("finishing the dump".to_string()))?;
        out.flush().map_err(io("finishing the dump".to_string()))
    })?;
    Ok(manifest)
}

/// Makes `dir` (absent or empty) a data directory holding the dump read
/// from `input`. On any error the directory is left empty again, so no
/// server starts on half a load.
pub async fn load(dir: &Path, input: impl Read) -> Result<DumpManifest, ServerError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(bad(format!(
                    "{} is not empty: load into a new data directory",
                    dir.display()
                )));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(format!("reading {}", dir.display()))(e)),
    }
    crate::make_private(dir).map_err(io(format!("making {}", dir.display())))?;
    // make_private leaves an empty meta.db; it must only appear whole.
    let _ = std::fs::remove_file(dir.join("meta.db"));
    let _lock = crate::daemon::lock_data_dir(dir)?;
    let staged = dir.join("meta.db.loading");
    let result = read_stream(dir, &staged, input).await;
    match result {
        Ok(m) => {
            std::fs::rename(&staged, dir.join("meta.db"))
                .map_err(io(format!("placing {}", dir.join("meta.db").display())))?;
            Ok(m)
        }
        Err(e) => {
            // The directory was empty: take back everything written to it.
            let _ = std::fs::remove_dir_all(dir.join("blocks"));
            let _ = std::fs::remove_file(&staged);
            let _ = std::fs::remove_file(dir.join("server.lock"));
            Err(e)
        }
    }
}

async fn read_stream(
    dir: &Path,
    staged: &Path,
    input: impl Read,
) -> Result<DumpManifest, ServerError> {
    let blocks = BlockStore::local(&dir.join("blocks"))?;
    let mut archive = tar::Archive::new(input);
    let cut = |e: std::io::Error| {
        bad(format!(
            "the dump is cut short or damaged ({e}); nothing was loaded"
        ))
    };
    let entries = archive.entries().map_err(cut)?;
    let mut seen = DumpManifest::default();
    let mut stored: HashSet<BlockKey> = HashSet::new();
    let (mut format_ok, mut meta_ok) = (false, false);
    let mut manifest: Option<DumpManifest> = None;
    for entry in entries {
        let mut entry = entry.map_err(cut)?;
        let name = entry.path().map_err(cut)?.to_string_lossy().into_owned();
        if manifest.is_some() {
            return Err(bad(format!("{name} after the manifest")));
        }
        let size = entry.size();
        let rest = name.strip_prefix(PREFIX).ok_or_else(|| {
            bad(format!(
                "not a svol dump: it holds {name:?} (made by `svol admin dump`?)"
            ))
        })?;
        if rest == "meta.db" && format_ok {
            // The metadata may be large: streamed to its file, not held.
            let n = copy_new(staged, &mut entry)?;
            if n != size {
                return Err(cut(short(&name, n, size)));
            }
            meta_ok = true;
            continue;
        }
        let limit = if rest.starts_with("blocks/") {
            svol_blocks::MAX_BLOCK as u64
        } else {
            64 << 10
        };
        if size > limit {
            return Err(bad(format!(
                "{name} is {size} bytes, more than such an entry can be ({limit})"
            )));
        }
        let mut data = Vec::with_capacity(size as usize);
        entry.read_to_end(&mut data).map_err(cut)?;
        // A stream that ends inside an entry reads short, not as an error.
        if data.len() as u64 != size {
            return Err(cut(short(&name, data.len() as u64, size)));
        }
        if !format_ok {
            if rest != "format" || data != FORMAT.as_bytes() {
                return Err(bad(format!(
                    "not a svol dump of a format this svol reads (first entry {name:?})"
                )));
            }
            format_ok = true;
            continue;
        }
        match rest {
            "manifest.json" => {
                let m: DumpManifest = serde_json::from_slice(&data)
                    .map_err(|e| bad(format!("its manifest is unreadable: {e}")))?;
                manifest = Some(m);
            }
            _ => {
                let key = rest
                    .strip_prefix("blocks/")
                    .and_then(BlockKey::from_name)
                    .ok_or_else(|| bad(format!("unexpected entry {name:?}")))?;
                seen.block_bytes += data.len() as u64;
                // put checks the bytes against the name's hash.
                blocks.put(key, Bytes::from(data)).await?;
                if stored.insert(key) {
                    seen.blocks += 1;
                }
            }
        }
    }
    let Some(want) = manifest else {
        return Err(bad(
            "the dump ends before its manifest: it was cut short, nothing was loaded",
        ));
    };
    if !meta_ok {
        return Err(bad("the dump holds no metadata"));
    }
    if seen.blocks != want.blocks || seen.block_bytes != want.block_bytes {
        return Err(bad(format!(
            "the dump holds {} blocks ({} bytes) but its manifest says {} ({} bytes)",
            seen.blocks, seen.block_bytes, want.blocks, want.block_bytes
        )));
    }
    let keys: Vec<BlockKey> = stored.iter().copied().collect();
    blocks.sync(&keys).await?;
    // Every block the loaded metadata needs must now be here.
    let meta = tokio::task::block_in_place(|| MetaStore::sqlite(staged))?;
    let rows = tokio::task::block_in_place(|| meta.all_blocks())?;
    drop(meta);
    for (b, refs) in rows {
        let key = BlockKey::new(b.workspace as u64, BlockHash(b.hash));
        if refs > 0 && !stored.contains(&key) {
            return Err(bad(format!(
                "block {key} is named by the dumped metadata but not in the dump"
            )));
        }
    }
    Ok(DumpManifest {
        metadata_rows: want.metadata_rows,
        ..seen
    })
}

fn short(name: &str, got: u64, size: u64) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        format!("{name} holds {got} of its {size} bytes"),
    )
}

fn copy_new(path: &Path, from: &mut impl Read) -> Result<u64, ServerError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io(format!("writing {}", path.display())))?;
    let n = std::io::copy(from, &mut f).map_err(io(format!("writing {}", path.display())))?;
    f.sync_all()
        .map_err(io(format!("writing {}", path.display())))?;
    Ok(n)
}
