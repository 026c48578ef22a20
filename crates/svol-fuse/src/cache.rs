//! The local block cache. Blocks are immutable and named by their hash, so
//! an entry is never stale: the cache only has to bound its size. Memory is
//! an LRU; the optional disk tier (`disk_cache`) keeps blocks across reads
//! of large files without holding them in RAM, and across mounts.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use svol_sdk::{Result, Volume};

use crate::disk_cache::{verified, DiskCache};
use tokio::sync::OnceCell;

struct Lru {
    map: HashMap<Bytes, (Bytes, u64)>,
    bytes: u64,
    tick: u64,
}

type Pending = Arc<OnceCell<Result<Bytes>>>;

#[derive(Clone)]
pub struct BlockCache {
    vol: Volume,
    limit: u64,
    mem: Arc<Mutex<Lru>>,
    inflight: Arc<Mutex<HashMap<Bytes, Pending>>>,
    disk: Option<Arc<Mutex<DiskCache>>>,
}

impl BlockCache {
    /// `limit` bytes in memory; with `dir`, up to `disk_limit` more on
    /// disk (kept across mounts).
    pub fn new(vol: Volume, limit: u64, dir: Option<PathBuf>, disk_limit: u64) -> Result<Self> {
        let disk = match dir {
            Some(dir) => Some(Arc::new(Mutex::new(DiskCache::open(
                &dir,
                &vol.info().id,
                disk_limit,
            )?))),
            None => None,
        };
        Ok(Self {
            vol,
            limit,
            mem: Arc::new(Mutex::new(Lru {
                map: HashMap::new(),
                bytes: 0,
                tick: 0,
            })),
            inflight: Arc::new(Mutex::new(HashMap::new())),
            disk,
        })
    }

    fn mem_get(&self, h: &Bytes) -> Option<Bytes> {
        let mut m = self.mem.lock().unwrap_or_else(|p| p.into_inner());
        m.tick += 1;
        let t = m.tick;
        m.map.get_mut(h).map(|e| {
            e.1 = t;
            e.0.clone()
        })
    }

    fn mem_put(&self, h: Bytes, data: Bytes) {
        let mut m = self.mem.lock().unwrap_or_else(|p| p.into_inner());
        m.tick += 1;
        let t = m.tick;
        m.bytes += data.len() as u64;
        if let Some(old) = m.map.insert(h, (data, t)) {
            m.bytes -= old.0.len() as u64;
        }
        while m.bytes > self.limit && m.map.len() > 1 {
            let Some(oldest) = m.map.iter().min_by_key(|e| e.1 .1).map(|e| e.0.clone()) else {
                break;
            };
            if let Some((d, _)) = m.map.remove(&oldest) {
                m.bytes -= d.len() as u64;
            }
        }
    }

    fn disk_get(&self, h: &Bytes) -> Option<Bytes> {
        let d = self.disk.as_ref()?;
        let path = d.lock().unwrap_or_else(|p| p.into_inner()).path_of(h)?;
        match verified(&path, h) {
            Some(data) => Some(Bytes::from(data)),
            None => {
                // Damaged or planted: dropped, and fetched again.
                tracing::warn!(
                    "cached block {} failed its check; fetching it again",
                    path.display()
                );
                d.lock().unwrap_or_else(|p| p.into_inner()).forget(h);
                None
            }
        }
    }

    fn disk_put(&self, h: &Bytes, data: &Bytes) {
        if let Some(d) = &self.disk {
            d.lock().unwrap_or_else(|p| p.into_inner()).put(h, data);
        }
    }

    /// Seeds the cache with a block this client just wrote.
    pub fn insert(&self, h: Bytes, data: Bytes) {
        self.mem_put(h, data);
    }

    /// The block named `h`, fetched once however many callers ask at once.
    pub async fn get(&self, h: Bytes) -> Result<Bytes> {
        if let Some(d) = self.mem_get(&h) {
            crate::metrics::add(&crate::metrics::CACHE_HITS, 1);
            return Ok(d);
        }
        crate::metrics::add(&crate::metrics::CACHE_MISSES, 1);
        let cell = {
            let mut inf = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            inf.entry(h.clone()).or_default().clone()
        };
        let res = cell
            .get_or_init(|| async {
                if self.disk.is_some() {
                    // Reading and checking 4 MiB must not hold up the
                    // mount's other calls.
                    let (me, key) = (self.clone(), h.clone());
                    let found = tokio::task::spawn_blocking(move || me.disk_get(&key)).await;
                    if let Ok(Some(d)) = found {
                        return Ok(d);
                    }
                }
                let d = self.vol.get_block(h.clone()).await?;
                if self.disk.is_some() {
                    let (me, key, data) = (self.clone(), h.clone(), d.clone());
                    tokio::task::spawn_blocking(move || me.disk_put(&key, &data));
                }
                Ok(d)
            })
            .await
            .clone();
        self.inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&h);
        if let Ok(d) = &res {
            self.mem_put(h, d.clone());
        }
        res
    }

    /// Starts fetching a block in the background (readahead).
    pub fn prefetch(&self, h: Bytes) {
        if self.mem_get(&h).is_some() {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            let _ = me.get(h).await;
        });
    }
}
