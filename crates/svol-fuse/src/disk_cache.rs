//! The disk tier of the block cache: blocks in `DIR/<volume id>/<hash>`,
//! kept across mounts (and filled ahead by `svol volume warmup`), bounded
//! by a size, oldest written first out. A block is named by its BLAKE3
//! hash, so every read checks the bytes against the name: a file that was
//! damaged, truncated or planted is dropped and fetched again, never
//! served.

use std::collections::{HashSet, VecDeque};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use svol_sdk::{ClientError, Result};

/// Default bound of a cache directory per volume.
pub const DEFAULT_CACHE_SIZE: u64 = 10 << 30;

pub struct DiskCache {
    dir: PathBuf,
    /// Oldest first: (hash, bytes).
    order: VecDeque<(Vec<u8>, u64)>,
    present: HashSet<Vec<u8>>,
    bytes: u64,
    limit: u64,
}

fn hex(h: &[u8]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 {
        return None;
    }
    (0..32)
        .map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

impl DiskCache {
    /// The cache of volume `volume_id` under `root`, with what an earlier
    /// mount or warmup left there (trimmed to `limit`).
    pub fn open(root: &Path, volume_id: &str, limit: u64) -> Result<Self> {
        let dir = root.join(volume_id);
        let io = |e: std::io::Error| ClientError::Io(format!("cache dir {}: {e}", dir.display()));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io)?;
        let mut found = Vec::new();
        for e in std::fs::read_dir(&dir).map_err(io)? {
            let Ok(e) = e else { continue };
            let name = e.file_name().to_string_lossy().into_owned();
            match (unhex(&name), e.metadata()) {
                (Some(h), Ok(m)) if m.is_file() => {
                    let at = m.modified().unwrap_or(std::time::UNIX_EPOCH);
                    found.push((at, h, m.len()));
                }
                // Leftovers of an interrupted write.
                _ if name.starts_with(".tmp-") => {
                    let _ = std::fs::remove_file(e.path());
                }
                _ => {}
            }
        }
        found.sort();
        let mut c = Self {
            dir,
            order: VecDeque::new(),
            present: HashSet::new(),
            bytes: 0,
            limit: limit.max(1),
        };
        for (_, h, n) in found {
            c.account(h, n);
        }
        c.trim();
        Ok(c)
    }

    fn account(&mut self, h: Vec<u8>, n: u64) {
        if self.present.insert(h.clone()) {
            self.bytes += n;
            self.order.push_back((h, n));
        }
    }

    fn trim(&mut self) {
        while self.bytes > self.limit {
            let Some((old, n)) = self.order.pop_front() else {
                break;
            };
            let _ = std::fs::remove_file(self.dir.join(hex(&old)));
            self.present.remove(&old);
            self.bytes -= n;
        }
    }

    pub fn contains(&self, h: &[u8]) -> bool {
        self.present.contains(h)
    }

    /// Blocks and bytes held.
    pub fn usage(&self) -> (usize, u64) {
        (self.order.len(), self.bytes)
    }

    /// The path of block `h` if it is held (read it with [`verified`]
    /// outside any lock: it is 4 MiB).
    pub fn path_of(&self, h: &[u8]) -> Option<PathBuf> {
        self.contains(h).then(|| self.dir.join(hex(h)))
    }

    /// Forgets block `h` (its file failed the check).
    pub fn forget(&mut self, h: &[u8]) {
        if self.present.remove(h) {
            if let Some(i) = self.order.iter().position(|(x, _)| x == h) {
                if let Some((_, n)) = self.order.remove(i) {
                    self.bytes -= n;
                }
            }
            let _ = std::fs::remove_file(self.dir.join(hex(h)));
        }
    }

    /// Keeps block `h`: written under a temporary name and renamed, so a
    /// reader (another mount on the same directory) never sees half.
    pub fn put(&mut self, h: &[u8], data: &[u8]) {
        if self.contains(h) {
            return;
        }
        let tmp = self
            .dir
            .join(format!(".tmp-{}-{}", hex(h), std::process::id()));
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| f.write_all(data))
            .and_then(|()| std::fs::rename(&tmp, self.dir.join(hex(h))));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
            return;
        }
        self.account(h.to_vec(), data.len() as u64);
        self.trim();
    }
}

/// The bytes at `path` if they are block `h` (BLAKE3 of the bytes).
pub fn verified(path: &Path, h: &[u8]) -> Option<Vec<u8>> {
    let data = std::fs::read(path).ok()?;
    (blake3::hash(&data).as_bytes()[..] == h[..]).then_some(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_survive_reopening_and_bad_ones_are_not_served() {
        let root = tempfile::tempdir().expect("tempdir");
        let blocks: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i; 1000]).collect();
        let hash = |d: &[u8]| blake3::hash(d).as_bytes().to_vec();
        let mut c = DiskCache::open(root.path(), "vo-1", 2500).expect("open");
        for b in &blocks {
            c.put(&hash(b), b);
        }
        assert_eq!(c.usage(), (2, 2000), "the oldest went past the limit");
        drop(c);
        let mut c = DiskCache::open(root.path(), "vo-1", 2500).expect("reopen");
        assert_eq!(c.usage(), (2, 2000));
        let h2 = hash(&blocks[2]);
        let p = c.path_of(&h2).expect("kept");
        assert_eq!(verified(&p, &h2).as_deref(), Some(&blocks[2][..]));
        std::fs::write(&p, b"planted").expect("damage");
        assert_eq!(verified(&p, &h2), None, "damaged bytes are not served");
        c.forget(&h2);
        assert!(!p.exists() && !c.contains(&h2));
        assert!(
            DiskCache::open(root.path(), "vo-2", 10)
                .expect("other volume")
                .usage()
                .0
                == 0
        );
    }
}
