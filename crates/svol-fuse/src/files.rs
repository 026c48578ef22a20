//! Open files on this mount: the chunk map fetched at open, and writes
//! buffered per 4 MiB chunk. A chunk that fills is sealed and uploaded in
//! the background while writing goes on; `flush`/`fsync` upload the rest
//! and commit the new chunk map in one server transaction. All handles of
//! one inode on this mount share one `FileState`, so a read sees this
//! mount's own unflushed writes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use svol_sdk::{
    Attr, Chunk, ClientError, Opened, Result, Timespec, Volume, CHUNK_SIZE, INLINE_MAX,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::budget::DirtyBudget;
use crate::cache::BlockCache;

const CHUNK: u64 = CHUNK_SIZE;
/// Sealed chunks allowed to wait for a commit before one is forced, which
/// bounds the memory a long sequential write holds.
const MAX_SEALED: usize = 32;
/// A chunk's buffer past this size is given the whole chunk's room.
const WHOLE_FROM: usize = 256 << 10;

struct Sealed {
    data: Bytes,
    upload: JoinHandle<Result<Chunk>>,
}

pub(crate) struct FileState {
    pub(crate) ino: u64,
    budget: Arc<DirtyBudget>,
    /// Bytes of `budget` this file's buffers hold.
    charged: u64,
    pub(crate) size: u64,
    pub(crate) version: u64,
    /// The newest version of the file the server has reported to this
    /// mount; above `version`, the chunk map is out of date.
    pub(crate) newer: u64,
    chunks: HashMap<u64, Chunk>,
    dirty: BTreeMap<u64, Vec<u8>>,
    sealed: BTreeMap<u64, Sealed>,
    write_end: u64,
    truncated: bool,
    /// Session epoch the buffered writes were made under (see `lease.rs`).
    epoch: u64,
    /// A buffered write was made by a writer who may not keep the file's
    /// set-ID bits: its commit clears them (the kernel leaves that to us,
    /// see `HANDLE_KILLPRIV_V2` in fs/kernel.rs).
    pub(crate) kill_suidgid: bool,
    /// When the last buffered write was made: what `stat` shows as the
    /// file's mtime and ctime until the commit, and the time a commit
    /// that joins the queue of a node made ahead gives it. So the mtime an
    /// application saw after writing (git records it in its index, before
    /// the close) is the one the file keeps.
    written_at: Option<Timespec>,
}

impl FileState {
    pub(crate) fn new(ino: u64, budget: Arc<DirtyBudget>) -> Self {
        Self {
            ino,
            budget,
            charged: 0,
            size: 0,
            version: 0,
            newer: 0,
            chunks: HashMap::new(),
            dirty: BTreeMap::new(),
            sealed: BTreeMap::new(),
            write_end: 0,
            truncated: false,
            epoch: 0,
            kill_suidgid: false,
            written_at: None,
        }
    }

    /// Drops what is buffered: it was written under a session that is
    /// gone, and must not land on top of what others wrote since.
    fn discard(&mut self) {
        for (_, s) in std::mem::take(&mut self.sealed) {
            s.upload.abort();
        }
        self.dirty.clear();
        self.write_end = 0;
        self.truncated = false;
        self.written_at = None;
        self.budget.give(std::mem::take(&mut self.charged));
    }

    /// Before writing or committing under session epoch `epoch`: waits
    /// for a lease that surely holds, and drops buffers left by a lost
    /// session.
    async fn admit(&mut self, io: &Io, epoch: u64, what: &str) -> Result<()> {
        if self.is_dirty() && self.epoch != io.lease.epoch() {
            self.discard();
        }
        io.lease.ready(Some(epoch), what).await?;
        self.epoch = epoch;
        Ok(())
    }

    pub(crate) fn is_dirty(&self) -> bool {
        !self.dirty.is_empty() || !self.sealed.is_empty() || self.truncated
    }

    /// Takes the server's view after an open; keeps this mount's unflushed writes.
    pub(crate) fn refresh(&mut self, open: Opened) {
        let a = open.attr;
        self.chunks = open.chunks.into_iter().map(|c| (c.index, c)).collect();
        self.version = a.version;
        self.size = if self.is_dirty() {
            self.size.max(a.size)
        } else {
            a.size
        };
    }

    /// After a truncate on the server.
    pub(crate) fn truncate(&mut self, size: u64) {
        self.size = size;
        self.write_end = self.write_end.min(size);
        let keep = size.div_ceil(CHUNK);
        self.chunks.retain(|i, _| *i < keep);
        if size % CHUNK != 0 {
            let idx = size / CHUNK;
            let cut = (size - idx * CHUNK) as u32;
            if let Some(c) = self.chunks.get_mut(&idx) {
                c.len = c.len.min(cut);
            }
        }
    }

    async fn base(&self, cache: &BlockCache, idx: u64) -> Result<Vec<u8>> {
        if let Some(s) = self.sealed.get(&idx) {
            return Ok(s.data.to_vec());
        }
        let Some(c) = self.chunks.get(&idx) else {
            return Ok(Vec::new());
        };
        let mut data = chunk_data(cache, c).await?.to_vec();
        let visible = self.size.saturating_sub(idx * CHUNK).min(CHUNK) as usize;
        data.truncate(visible);
        Ok(data)
    }

    pub(crate) async fn write(
        &mut self,
        io: &Io,
        epoch: u64,
        offset: u64,
        data: &[u8],
    ) -> Result<()> {
        self.admit(io, epoch, "write").await?;
        let mut pos = 0usize;
        while pos < data.len() {
            let at = offset + pos as u64;
            let idx = at / CHUNK;
            let off = (at - idx * CHUNK) as usize;
            let n = (CHUNK as usize - off).min(data.len() - pos);
            if !self.dirty.contains_key(&idx) {
                self.charge(io).await?;
                let fresh_overwrite = off == 0 && n == CHUNK as usize;
                let base = if fresh_overwrite {
                    Vec::new()
                } else {
                    self.base(&io.cache, idx).await?
                };
                self.dirty.insert(idx, base);
            }
            let buf = self
                .dirty
                .get_mut(&idx)
                .ok_or_else(|| ClientError::Internal("lost buffer".into()))?;
            place(buf, off, &data[pos..pos + n]);
            let full = buf.len() == CHUNK as usize && off + n == CHUNK as usize;
            pos += n;
            self.wrote_to(at + n as u64);
            if full {
                self.seal(io, idx).await;
            }
        }
        if self.sealed.len() >= MAX_SEALED {
            self.commit(io, false).await?;
        }
        Ok(())
    }

    /// `a` as `stat` shows it while this mount holds writes the server
    /// has not got: their size, and the time of the last of them.
    pub(crate) fn shown(&self, a: &Attr) -> Attr {
        let mut a = *a;
        if self.is_dirty() {
            a.size = a.size.max(self.size);
            if let Some(t) = self.written_at {
                a.mtime = t;
                a.ctime = t;
            }
        }
        a
    }

    /// [`FileState::write`] when it needs nothing awaited: the handle is
    /// of the session whose lease holds, and the bytes land inside a chunk
    /// already buffered without filling it (no budget to take, no block
    /// to fetch or seal). Returns whether it wrote. The kernel's thread
    /// calls it with the request's own bytes, so three of a 4 MiB chunk's
    /// four 1 MiB writes are not first copied for a task.
    pub(crate) fn write_now(&mut self, io: &Io, epoch: u64, offset: u64, data: &[u8]) -> bool {
        let idx = offset / CHUNK;
        let off = (offset - idx * CHUNK) as usize;
        let may = self.epoch == epoch
            && epoch == io.lease.epoch()
            && io.lease.holds()
            && off + data.len() < CHUNK as usize
            && self.sealed.len() < MAX_SEALED;
        let Some(buf) = self.dirty.get_mut(&idx).filter(|_| may) else {
            return false;
        };
        place(buf, off, data);
        self.wrote_to(offset + data.len() as u64);
        true
    }

    /// Bytes up to `end` were just written into the buffers.
    fn wrote_to(&mut self, end: u64) {
        self.size = self.size.max(end);
        self.write_end = self.write_end.max(end);
        self.written_at = Some(Timespec::now());
    }

    /// Makes room in the mount's dirty budget for one more chunk buffer.
    async fn charge(&mut self, io: &Io) -> Result<()> {
        while !self.budget.try_take(CHUNK) {
            if self.is_dirty() {
                self.commit(io, false).await?;
            } else {
                self.budget.wait().await;
            }
        }
        self.charged += CHUNK;
        Ok(())
    }

    async fn seal(&mut self, io: &Io, idx: u64) {
        let Some(mut buf) = self.dirty.remove(&idx) else {
            return;
        };
        // A chunk the file ended in may hold far less than it reserved;
        // what is sealed is kept (and counted by its length) until sent.
        if buf.capacity() - buf.len() > buf.len() / 4 {
            buf.shrink_to_fit();
        }
        let data = Bytes::from(buf);
        let permit = io.uploads.clone().acquire_owned().await.ok();
        let upload = tokio::spawn(upload(io.clone(), idx, data.clone(), permit));
        self.sealed.insert(idx, Sealed { data, upload });
    }

    /// What a read of `size` bytes at `offset` needs, worked out under
    /// the file's lock; [`ReadPlan::run`] then fetches blocks without it, so
    /// one read waiting on the server holds up neither the file's other
    /// reads nor its writes.
    pub(crate) fn plan_read(&self, offset: u64, size: u32) -> ReadPlan {
        let end = (offset + size as u64).min(self.size);
        let mut plan = ReadPlan::default();
        let mut at = offset;
        while at < end {
            let idx = at / CHUNK;
            let off = (at - idx * CHUNK) as usize;
            let n = (((idx + 1) * CHUNK).min(end) - at) as usize;
            let piece = if let Some(b) = self.dirty.get(&idx) {
                // Only the bytes asked for: a dirty chunk is up to 4 MiB.
                let have = b.len().saturating_sub(off).min(n);
                let held = b.get(off..off + have).unwrap_or_default();
                Piece::Bytes(Bytes::copy_from_slice(held), 0, n)
            } else if let Some(s) = self.sealed.get(&idx) {
                Piece::Bytes(s.data.clone(), off, n)
            } else if let Some(c) = self.chunks.get(&idx) {
                for next in 1..=READ_AHEAD {
                    if let Some(h) = self.chunks.get(&(idx + next)).map(|c| &c.hash) {
                        if !h.is_empty() {
                            plan.prefetch.push(h.clone());
                        }
                    }
                }
                Piece::Chunk(c.clone(), off, n)
            } else {
                Piece::Bytes(Bytes::new(), 0, n)
            };
            plan.pieces.push(piece);
            at += n as u64;
        }
        plan
    }

    /// Uploads what is buffered and commits it; `durable` waits for stable storage.
    pub(crate) async fn commit(&mut self, io: &Io, durable: bool) -> Result<()> {
        if self.is_dirty() {
            if self.epoch != io.lease.epoch() {
                self.discard();
                return Err(crate::lease::fenced("commit"));
            }
            self.admit(io, self.epoch, "commit").await?;
        }
        let idxs: Vec<u64> = self.dirty.keys().copied().collect();
        for idx in idxs {
            self.seal(io, idx).await;
        }
        if self.sealed.is_empty() && self.write_end == 0 && !durable {
            return Ok(());
        }
        let sealed = std::mem::take(&mut self.sealed);
        let mut chunks = Vec::with_capacity(sealed.len());
        let mut datas = Vec::with_capacity(sealed.len());
        let mut failed = None;
        for (idx, s) in sealed {
            match s.upload.await {
                Ok(Ok(c)) => chunks.push(c),
                Ok(Err(e)) => failed = Some(e),
                Err(e) => failed = Some(ClientError::Internal(e.to_string())),
            }
            datas.push((idx, s.data));
        }
        if let Some(e) = failed {
            // Keep the data so a later flush can try again.
            for (idx, data) in datas {
                self.dirty.insert(idx, data.to_vec());
            }
            return Err(e);
        }
        let fence = io.lease.fence(self.ino);
        let inline = chunks.iter().all(|c| c.hash.is_empty());
        if !durable && fence == 0 && inline {
            // A node nobody else can see yet: the commit goes with the
            // queue, which lands before anyone else can look (ahead.rs).
            if let Some(a) = io.ahead.commit(
                self.ino,
                chunks.clone(),
                self.write_end,
                self.kill_suidgid,
                self.written_at,
            ) {
                self.committed(a, chunks);
                return Ok(());
            }
        }
        io.ahead.settle().await?;
        let commit = svol_sdk::Commit {
            chunks: chunks.clone(),
            write_end: self.write_end,
            durable,
            fence,
            kill_suidgid: self.kill_suidgid,
            time: self.written_at,
        };
        let mut res = io.vol.commit(self.ino, commit.clone()).await;
        if let Err(ClientError::MissingBlock(_)) = res {
            // The server dropped an upload that waited too long: send again.
            for (idx, data) in &datas {
                upload(io.clone(), *idx, data.clone(), None).await?;
            }
            res = io.vol.commit(self.ino, commit).await;
        }
        match res {
            Ok(a) => {
                io.listings.attrs([&a]);
                self.committed(a, chunks);
                Ok(())
            }
            Err(e @ ClientError::Fs(svol_sdk::FsErrno::Fenced, _)) => {
                // Refused for good: the lock or lease is gone.
                self.discard();
                Err(e)
            }
            Err(e) => {
                for (idx, data) in datas {
                    self.dirty.insert(idx, data.to_vec());
                }
                Err(e)
            }
        }
    }
}

impl FileState {
    /// `chunks` are committed, leaving the file as `a`.
    fn committed(&mut self, a: Attr, chunks: Vec<Chunk>) {
        for c in chunks {
            self.chunks.insert(c.index, c);
        }
        self.version = a.version;
        self.size = self.size.max(a.size);
        self.write_end = 0;
        self.kill_suidgid = false;
        self.truncated = false;
        self.written_at = None;
        if self.dirty.is_empty() && self.sealed.is_empty() {
            self.budget.give(std::mem::take(&mut self.charged));
        }
    }
}

impl Drop for FileState {
    fn drop(&mut self) {
        self.budget.give(self.charged);
    }
}

/// Writes `data` at `off` of a chunk's buffer.
fn place(buf: &mut Vec<u8>, off: usize, data: &[u8]) {
    let end = off + data.len();
    // A buffer grown past a small file's size is given the whole chunk at
    // once: grown by doubling, a 4 MiB chunk written 1 MiB at a time was
    // copied again at 2 and at 4 MiB.
    if end > buf.capacity() && end > WHOLE_FROM {
        buf.reserve_exact((CHUNK as usize).max(end) - buf.len());
    }
    if buf.len() < off {
        buf.resize(off, 0); // a hole reads as zeros
    }
    // Bytes already held are overwritten, the rest appended (not zeroed
    // first only to be overwritten).
    let over = (buf.len() - off).min(data.len());
    buf[off..off + over].copy_from_slice(&data[..over]);
    buf.extend_from_slice(&data[over..]);
}

/// Chunks fetched ahead of a read that reaches a stored chunk.
const READ_AHEAD: u64 = 8;

/// See [`FileState::plan_read`].
#[derive(Default)]
pub(crate) struct ReadPlan {
    pieces: Vec<Piece>,
    prefetch: Vec<Bytes>,
}

/// Part of a read: bytes in hand or a stored chunk, the offset to read
/// from, and how many bytes the read wants (short data reads as zeros).
enum Piece {
    Bytes(Bytes, usize, usize),
    Chunk(Chunk, usize, usize),
}

impl ReadPlan {
    pub(crate) async fn run(self, io: &Io) -> Result<Bytes> {
        for h in self.prefetch {
            io.cache.prefetch(h);
        }
        let mut parts = Vec::with_capacity(self.pieces.len());
        for piece in self.pieces {
            parts.push(match piece {
                Piece::Bytes(b, off, n) => (b, off, n),
                Piece::Chunk(c, off, n) => (chunk_data(&io.cache, &c).await?, off, n),
            });
        }
        Ok(assemble(parts))
    }
}

/// The bytes of a read from its parts: (data, offset in it, bytes wanted);
/// what a part's data lacks reads as zeros (a hole, or past what was
/// written of a grown file). A read that one part holds whole (a
/// sequential read inside a fetched block) is a view of it, not a copy:
/// copying 1 MiB per read was a fifth of the mount's time on a big file.
fn assemble(parts: Vec<(Bytes, usize, usize)>) -> Bytes {
    if let [(src, off, n)] = &parts[..] {
        if off + n <= src.len() {
            return src.slice(*off..off + n);
        }
    }
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.2).sum());
    for (src, off, n) in parts {
        let have = src.len().saturating_sub(off).min(n);
        if let Some(held) = src.get(off..off + have) {
            out.extend_from_slice(held);
        }
        out.resize(out.len() + (n - have), 0);
    }
    Bytes::from(out)
}

async fn chunk_data(cache: &BlockCache, c: &Chunk) -> Result<Bytes> {
    let d = if c.hash.is_empty() {
        c.inline_data.clone()
    } else {
        cache.get(c.hash.clone()).await?
    };
    Ok(d.slice(..(c.len as usize).min(d.len())))
}

/// What the file state needs to do I/O.
#[derive(Clone)]
pub(crate) struct Io {
    pub(crate) vol: Volume,
    pub(crate) cache: BlockCache,
    pub(crate) uploads: Arc<Semaphore>,
    pub(crate) lease: Arc<crate::lease::LeaseState>,
    /// Listed entries take the attributes a commit returns.
    pub(crate) listings: Arc<crate::listings::Listings>,
    /// A file made ahead exists on the server only once its create lands.
    pub(crate) ahead: Arc<crate::ahead::Ahead>,
}

/// Counts an upload in the mount's metrics while it runs.
struct InFlight;

impl InFlight {
    fn start() -> Self {
        crate::metrics::UPLOADS_IN_FLIGHT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        crate::metrics::UPLOADS_IN_FLIGHT.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

async fn upload(
    io: Io,
    idx: u64,
    data: Bytes,
    _permit: Option<OwnedSemaphorePermit>,
) -> Result<Chunk> {
    let _in_flight = InFlight::start();
    let len = data.len() as u32;
    if data.len() <= INLINE_MAX {
        return Ok(Chunk {
            index: idx,
            len,
            hash: Bytes::new(),
            inline_data: data,
        });
    }
    let d = data.clone();
    let hash =
        tokio::task::spawn_blocking(move || Bytes::copy_from_slice(blake3::hash(&d).as_bytes()))
            .await
            .map_err(|e| ClientError::Internal(e.to_string()))?;
    let missing = io.vol.missing_blocks(vec![hash.clone()]).await?;
    if !missing.is_empty() {
        io.vol.put_block(hash.clone(), data.clone()).await?;
    }
    io.cache.insert(hash.clone(), data);
    Ok(Chunk {
        index: idx,
        len,
        hash,
        inline_data: Bytes::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes of a plan that needs no block (None if it does).
    fn in_hand(plan: ReadPlan) -> Option<Vec<u8>> {
        let mut parts = Vec::new();
        for p in plan.pieces {
            match p {
                Piece::Bytes(b, off, n) => parts.push((b, off, n)),
                Piece::Chunk(..) => return None,
            }
        }
        Some(assemble(parts).to_vec())
    }

    #[test]
    fn writes_into_a_chunk_overwrite_append_and_leave_holes_as_zeros() {
        let mut buf = Vec::new();
        place(&mut buf, 0, b"hello");
        place(&mut buf, 5, b" world"); // append
        place(&mut buf, 0, b"J"); // inside
        place(&mut buf, 9, b"LD!!"); // over the end
        assert_eq!(buf, b"Jello worLD!!");
        place(&mut buf, 16, b"x"); // past the end: a hole of zeros
        assert_eq!(&buf[13..], b"\0\0\0x");
        // Big writes: the whole chunk reserved once, bytes all in place.
        let mut big = Vec::new();
        let mib: Vec<u8> = (0..1usize << 20).map(|i| (i % 251) as u8).collect();
        for k in 0..4 {
            place(&mut big, k << 20, &mib);
            assert_eq!(big.capacity(), CHUNK as usize, "after {k} MiB");
        }
        assert!(big.chunks(1 << 20).all(|c| c == &mib[..]));
    }

    #[test]
    fn reads_of_a_grown_file_past_its_written_bytes_are_zeros() {
        let mut st = FileState::new(1, Arc::new(DirtyBudget::new(1 << 30)));
        // Ten bytes written, then the file grown to 100 (truncate up).
        st.dirty.insert(0, vec![7; 10]);
        st.size = 100;
        assert_eq!(in_hand(st.plan_read(50, 20)), Some(vec![0; 20]));
        assert_eq!(
            in_hand(st.plan_read(5, 10)),
            Some([vec![7; 5], vec![0; 5]].concat())
        );
        // Clipped at the size; nothing past it.
        assert_eq!(in_hand(st.plan_read(95, 20)), Some(vec![0; 5]));
        assert_eq!(in_hand(st.plan_read(200, 20)), Some(vec![]));
    }
}
