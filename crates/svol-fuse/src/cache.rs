//! The local block cache. Blocks are immutable and named by their hash, so
//! an entry is never stale: the cache only has to bound its size. Memory is
//! an LRU; the optional disk tier keeps evicted-from-memory blocks across
//! reads of large files without holding them in RAM.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use svol_sdk::{ClientError, Result, Volume};
use tokio::sync::OnceCell;

struct Lru {
    map: HashMap<Bytes, (Bytes, u64)>,
    bytes: u64,
    tick: u64,
}

struct Disk {
    dir: PathBuf,
    order: VecDeque<(Bytes, u64)>,
    bytes: u64,
    limit: u64,
}

type Pending = Arc<OnceCell<Result<Bytes>>>;

#[derive(Clone)]
pub struct BlockCache {
    vol: Volume,
    limit: u64,
    mem: Arc<Mutex<Lru>>,
    inflight: Arc<Mutex<HashMap<Bytes, Pending>>>,
    disk: Option<Arc<Mutex<Disk>>>,
}

fn hex(h: &[u8]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

impl BlockCache {
    pub fn new(vol: Volume, limit: u64, dir: Option<PathBuf>) -> Result<Self> {
        let disk = match dir {
            Some(dir) => {
                let dir = dir.join(&vol.info().id);
                let _ = std::fs::remove_dir_all(&dir);
                std::fs::create_dir_all(&dir)
                    .map_err(|e| ClientError::Io(format!("cache dir {}: {e}", dir.display())))?;
                Some(Arc::new(Mutex::new(Disk {
                    dir,
                    order: VecDeque::new(),
                    bytes: 0,
                    limit: 10 << 30,
                })))
            }
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
        let path = d.lock().unwrap_or_else(|p| p.into_inner()).dir.join(hex(h));
        let data = std::fs::read(path).ok()?;
        (blake3::hash(&data).as_bytes()[..] == h[..]).then(|| Bytes::from(data))
    }

    fn disk_put(&self, h: &Bytes, data: &Bytes) {
        let Some(d) = &self.disk else { return };
        let mut d = d.lock().unwrap_or_else(|p| p.into_inner());
        if std::fs::write(d.dir.join(hex(h)), data).is_err() {
            return;
        }
        d.bytes += data.len() as u64;
        d.order.push_back((h.clone(), data.len() as u64));
        while d.bytes > d.limit {
            let Some((old, n)) = d.order.pop_front() else {
                break;
            };
            let _ = std::fs::remove_file(d.dir.join(hex(&old)));
            d.bytes -= n;
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
