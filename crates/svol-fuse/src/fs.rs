//! The mount's file system operations: what a kernel request does to the
//! caches (directory attributes, open files, listings, peeks, the queue of
//! work made ahead) and which calls it makes to the server. The thin
//! adapter from the kernel's callbacks to these is `kernel`. Kernel inode
//! 1 is the mount's root; every other inode number is the server's own.

mod kernel;
mod stale;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use fuser::*;
use svol_sdk::{
    Attr, ClientError, FileKind, NewNode, Opened, Result, SetAttr, TimeSet, Volume, MAX_PEEK,
    RENAME_EXCHANGE, RENAME_NOREPLACE,
};
use tokio::runtime::Handle;
use tokio::sync::Semaphore;

use crate::ahead::{Ahead, Node, Release};
use crate::attr::file_attr;
use crate::budget::DirtyBudget;
use crate::cache::BlockCache;
use crate::direct::{fopen_flags, Access, DirectWriters};
use crate::errno::errno;
use crate::files::{FileState, Io};
use crate::lease::LeaseState;
use crate::listings::{Fill, Known, Listings, KERNEL_TTL, PAGE};
use crate::locks::LockSpec;
use crate::peeks::Peeks;
use crate::releases::Releases;

/// How long the kernel may trust attributes and names without asking.
/// Changes made on other mounts arrive sooner, as invalidations.
const TTL: Duration = Duration::from_secs(1);

/// Kernel directory offsets 1 and 2 are "." and ".."; an entry's offset is
/// its server cookie plus this, so a listing can resume after any entry.
const DOT_OFFSETS: u64 = 2;

type File = Arc<tokio::sync::Mutex<FileState>>;

fn name_bytes(n: &OsStr) -> Bytes {
    Bytes::copy_from_slice(n.as_bytes())
}

/// Attributes of directories, so the kernel's getattr of a parent — which
/// it asks again after every create, unlink and rename in it, to check
/// permissions — costs no round trip. Kept exact by the attributes each
/// entry operation returns; dropped by the server's invalidations. An
/// answer that was in flight while anything was dropped is not stored
/// (`epoch`), so a late reply cannot bring back an old value.
#[derive(Default)]
struct DirAttrs {
    map: Mutex<HashMap<u64, (Attr, std::time::Instant)>>,
    epoch: AtomicU64,
}

impl DirAttrs {
    fn get(&self, ino: u64) -> Option<Attr> {
        let m = lock(&self.map);
        m.get(&ino)
            .filter(|(_, at)| at.elapsed() < TTL)
            .map(|(a, _)| *a)
    }

    fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    fn put<'a>(&self, since: u64, attrs: impl IntoIterator<Item = &'a Attr>) {
        let mut m = lock(&self.map);
        if self.epoch() != since {
            return;
        }
        if m.len() > 100_000 {
            m.retain(|_, (_, at)| at.elapsed() < TTL);
        }
        for a in attrs {
            if a.kind == FileKind::Directory {
                m.insert(a.ino, (*a, std::time::Instant::now()));
            }
        }
    }

    fn forget(&self, ino: u64) {
        let mut m = lock(&self.map);
        self.epoch.fetch_add(1, Ordering::AcqRel);
        m.remove(&ino);
    }

    fn forget_all(&self) {
        let mut m = lock(&self.map);
        self.epoch.fetch_add(1, Ordering::AcqRel);
        m.clear();
    }
}

#[derive(Default)]
struct Open {
    files: HashMap<u64, (File, usize)>,
    /// Handle → (inode, session epoch it was opened under).
    handles: HashMap<u64, (u64, u64)>,
    /// Handles opened from peeked contents, with the attributes they
    /// were opened with: the server has no open of them to release, and
    /// does not keep their file alive once another mount unlinks it.
    /// Such a handle then goes on with what it opened, as the holder of an
    /// unlinked file does (see `orphan_attr`).
    peeked: HashMap<u64, Attr>,
    /// Opens that go around the page cache (see direct.rs).
    direct: DirectWriters,
}

pub(crate) struct Inner {
    pub(crate) vol: Volume,
    pub(crate) root: u64,
    read_only: bool,
    io: Io,
    open: Mutex<Open>,
    next_fh: AtomicU64,
    /// Content version of each inode as of its last open here; an open that
    /// finds the same version keeps the kernel's page cache.
    seen: Mutex<HashMap<u64, u64>>,
    dirs: DirAttrs,
    pub(crate) locks: Arc<crate::locks::LockState>,
    pub(crate) lease: Arc<LeaseState>,
    budget: Arc<DirtyBudget>,
    releases: Releases,
    listings: Arc<Listings>,
    /// Small files' contents fetched ahead of their opens.
    peeks: Arc<Peeks>,
    pub(crate) ahead: Arc<Ahead>,
    stale: stale::StaleOpens,
}

pub(crate) struct SvolFs {
    rt: Handle,
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SvolFs {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        vol: Volume,
        root: u64,
        read_only: bool,
        cache: BlockCache,
        rt: Handle,
        locks: Arc<crate::locks::LockState>,
        lease: Arc<LeaseState>,
        listings: Arc<Listings>,
        peeks: Arc<Peeks>,
        ahead: Arc<Ahead>,
        max_dirty: u64,
    ) -> Self {
        let io = Io {
            ahead: ahead.clone(),
            listings: listings.clone(),
            vol: vol.clone(),
            cache,
            uploads: Arc::new(Semaphore::new(8)),
            lease: lease.clone(),
        };
        let releases = {
            let _rt = rt.enter();
            Releases::start(vol.clone(), lease.clone())
        };
        let inner = Arc::new(Inner {
            ahead,
            releases,
            listings,
            vol,
            root,
            read_only,
            io,
            open: Mutex::new(Open::default()),
            next_fh: AtomicU64::new(1),
            seen: Mutex::new(HashMap::new()),
            dirs: DirAttrs::default(),
            locks,
            lease,
            budget: Arc::new(DirtyBudget::new(max_dirty)),
            peeks,
            stale: stale::StaleOpens::default(),
        });
        rt.spawn(flusher(Arc::downgrade(&inner)));
        Self { rt, inner }
    }

    /// What an invalidation makes this mount forget: one inode's cached
    /// attributes and version, or (`None`, after lost invalidations) all of
    /// them, so every next open re-checks with the server and drops stale
    /// pages.
    /// For `None`, returns the inodes it forgot, whose kernel caches must
    /// go too.
    pub(crate) fn forget_version(&self) -> impl Fn(Option<u64>) -> Vec<u64> + Send + 'static {
        let inner = self.inner.clone();
        move |ino| match ino {
            Some(ino) => {
                lock(&inner.seen).remove(&ino);
                inner.dirs.forget(ino);
                Vec::new()
            }
            None => {
                let known: Vec<u64> = lock(&inner.seen).drain().map(|(ino, _)| ino).collect();
                inner.dirs.forget_all();
                known
            }
        }
    }

    fn spawn<F>(&self, f: impl FnOnce(Arc<Inner>) -> F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let timer = crate::metrics::take();
        let mut fut = Box::pin(f(self.inner.clone()));
        // Many calls finish without waiting on anything (what a cache,
        // a buffer or the queue of creates made ahead answers): polled
        // once here, they answer on the kernel's thread and save the two
        // thread hand-offs a task costs (about 25 µs each call). What
        // does wait moves to the runtime and is polled there with a real
        // waker (a future re-registers the newest waker on each poll).
        let _in_runtime = self.rt.enter();
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        if fut.as_mut().poll(&mut cx).is_ready() {
            drop(timer);
            return;
        }
        self.rt.spawn(async move {
            fut.await;
            drop(timer);
        });
    }
}

impl SvolFs {
    /// mknod, mkdir and symlink: create exclusively, reply with the entry.
    #[allow(clippy::too_many_arguments)]
    fn make_node(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        kind: FileKind,
        mode: u32,
        rdev: u32,
        target: Bytes,
        reply: ReplyEntry,
    ) {
        if kind == FileKind::Directory {
            if let Some(a) = self.inner.make_ahead(req, parent, name, kind, mode) {
                let fa = file_attr(&a, self.inner.k(a.ino), 0);
                return reply.entry_with_ttls(&Duration::ZERO, &TTL, &fa, Generation(0));
            }
        }
        let r = NewNode {
            name: name_bytes(name),
            kind,
            mode,
            uid: req.uid(),
            gid: req.gid(),
            rdev,
            symlink_target: target,
            exclusive: true,
            ..Default::default()
        };
        self.spawn(|i| async move {
            let r = NewNode {
                parent: i.s(parent),
                ..r
            };
            match i.create_node(r).await {
                Ok(a) => i.reply_entry(reply, &a).await,
                Err(e) => reply.error(errno(&e)),
            }
        });
    }
}

impl Inner {
    /// Makes a node ahead of the server if this mount holds `parent` (see
    /// ahead.rs); None: make it the usual way.
    fn make_ahead(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        kind: FileKind,
        mode: u32,
    ) -> Option<Attr> {
        if self.read_only {
            return None;
        }
        let parent = self.s(parent);
        let pa = self.cached_dir(parent);
        let node = Node {
            parent,
            name: name_bytes(name),
            kind,
            mode,
            uid: req.uid(),
            gid: req.gid(),
        };
        let (a, parent_now) = self.ahead.make(&node, pa)?;
        // The kernel asks for the parent's attributes after every create.
        self.dirs.put(self.dirs.epoch(), [&parent_now]);
        Some(a)
    }

    /// Records the open a create made ahead holds; returns its handle
    /// and how the kernel is to treat it.
    fn opened_ahead(&self, a: &Attr, access: Access) -> (u64, FopenFlags) {
        let mut st = FileState::new(a.ino, self.budget.clone());
        st.refresh(Opened {
            attr: *a,
            ..Default::default()
        });
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        let mut o = lock(&self.open);
        o.files
            .insert(a.ino, (Arc::new(tokio::sync::Mutex::new(st)), 1));
        o.handles.insert(fh, (a.ino, self.lease.epoch()));
        let direct = o.direct.open(a.ino, fh, access, 0);
        drop(o);
        lock(&self.seen).insert(a.ino, 0);
        (fh, fopen_flags(direct, false))
    }

    fn s(&self, k: INodeNo) -> u64 {
        if k.0 == 1 {
            self.root
        } else {
            k.0
        }
    }

    fn k(&self, s: u64) -> INodeNo {
        INodeNo(if s == self.root { 1 } else { s })
    }

    /// Attributes a call returned (`since`: the directory cache's epoch
    /// when it was sent): the directory cache and the listings take them.
    fn learned<'a>(&self, since: u64, attrs: impl IntoIterator<Item = &'a Attr>) {
        let attrs: Vec<&Attr> = attrs.into_iter().collect();
        self.dirs.put(since, attrs.iter().copied());
        self.ahead.learned(attrs.iter().copied());
        self.listings.attrs(attrs);
    }

    /// How long the kernel may keep `ino`'s attributes: not at all while
    /// a listing holds them (it answers every getattr, and a recall keeps
    /// it exact, which a kernel cache is not), else [`TTL`].
    fn attr_ttl(&self, ino: u64) -> Duration {
        if self.lease.holds() && self.listings.holds(ino) {
            Duration::ZERO
        } else {
            TTL
        }
    }

    /// Answers an entry with `a`, this mount's unflushed size folded in.
    async fn reply_entry(&self, reply: ReplyEntry, a: &Attr) {
        let fa = self.fattr(a).await;
        reply.entry_with_ttls(&self.attr_ttl(a.ino), &TTL, &fa, Generation(0));
    }

    /// `ino`'s ctime changed and no reply says to what: cached attributes
    /// of it go.
    fn ctime_changed(&self, ino: u64) {
        self.dirs.forget(ino);
        self.listings.touched(&[ino]);
    }

    fn local_size(&self, ino: u64) -> Option<File> {
        lock(&self.open).files.get(&ino).map(|f| f.0.clone())
    }

    /// `ino`'s attributes as a listing answers them, on the FUSE thread
    /// (an open file's only if its state is free this instant: `fattr`
    /// without waiting).
    fn listed_attr(&self, ino: u64) -> Option<(FileAttr, Duration)> {
        if !self.lease.holds() {
            return None;
        }
        let open = self.local_size(ino);
        let mut st = match &open {
            Some(f) => Some(f.try_lock().ok()?),
            None => None,
        };
        // Unless this mount has written what the server has not got, the
        // kernel may keep them until the listing goes (see listings.rs).
        let kept = match st.as_ref().is_some_and(|st| st.is_dirty()) {
            false => self.listings.kernel_attr(ino),
            true => None,
        };
        let (a, ttl) = match kept {
            Some(a) => (a, KERNEL_TTL),
            None => (self.listings.attr_of(ino)?, Duration::ZERO),
        };
        let mut a = a;
        if let Some(st) = st.as_mut() {
            st.newer = st.newer.max(a.version);
            a = st.shown(&a);
        }
        Some((file_attr(&a, self.k(ino), a.size), ttl))
    }

    /// How long the kernel may keep the listed attributes of `ino` that a
    /// lookup answers with: briefly, and noted so a recall drops them
    /// (see listings.rs).
    fn looked_up_ttl(&self, ino: u64) -> Duration {
        match self.lease.holds() && self.listings.kernel_attr(ino).is_some() {
            true => crate::listings::LOOKUP_TTL,
            false => Duration::ZERO,
        }
    }

    /// Kernel attributes, with this mount's unflushed writes folded in
    /// (their size and time).
    async fn fattr(&self, a: &Attr) -> FileAttr {
        let mut a = *a;
        if let Some(f) = self.local_size(a.ino) {
            let mut st = f.lock().await;
            // The kernel now knows this size; reads up to it must find the
            // bytes (see `read`).
            st.newer = st.newer.max(a.version);
            a = st.shown(&a);
        }
        file_attr(&a, self.k(a.ino), a.size)
    }

    /// May this mount change something now? Not on a read-only mount;
    /// and only while its lease surely holds (see `lease.rs`).
    async fn writable(&self) -> Result<()> {
        self.may_change().await?;
        // What was made ahead lands before anything else this mount does.
        self.ahead.settle().await
    }

    /// `writable` without landing the queue, for a change that joins it.
    async fn may_change(&self) -> Result<()> {
        if self.read_only {
            return Err(ClientError::Fs(
                svol_sdk::FsErrno::Perm,
                "read-only mount".into(),
            ));
        }
        self.lease.ready(None, "change").await
    }

    /// The inode and session epoch of an open handle; a handle opened
    /// under a session that was lost is stale (EIO).
    pub(crate) fn handle(&self, fh: u64, what: &str) -> Result<u64> {
        let (ino, epoch) =
            lock(&self.open).handles.get(&fh).copied().ok_or_else(|| {
                ClientError::Fs(svol_sdk::FsErrno::Io, format!("{what}: bad handle"))
            })?;
        self.lease.current(epoch, what)?;
        Ok(ino)
    }

    /// A write done on the kernel's thread if the file's state is free
    /// this instant and the write needs nothing awaited
    /// ([`FileState::write_now`]); false: write it the usual way.
    pub(crate) fn write_now(
        &self,
        ino: INodeNo,
        fh: u64,
        offset: u64,
        data: &[u8],
        wf: WriteFlags,
    ) -> bool {
        let Some(f) = self.file(self.s(ino)) else {
            return false;
        };
        let Ok(mut st) = f.try_lock() else {
            return false;
        };
        let done = st.write_now(&self.io, self.handle_epoch(fh), offset, data);
        if done && wf.contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID) {
            st.kill_suidgid = true;
        }
        done
    }

    pub(crate) fn handle_epoch(&self, fh: u64) -> u64 {
        lock(&self.open).handles.get(&fh).map(|h| h.1).unwrap_or(0)
    }

    async fn create_node(&self, mut r: NewNode) -> Result<Attr> {
        self.writable().await?;
        r.mode &= 0o7777;
        let (parent, name) = (r.parent, r.name.clone());
        let e = self.dirs.epoch();
        let res = self.vol.create_entry(r).await;
        let reply = self.entry_changed(parent, &name, res, |r| r.attr)?;
        self.want_held([parent]);
        let a = reply.attr;
        self.learned(e, reply.touched.iter().chain([&a]));
        Ok(a)
    }

    /// What this mount's listing of `dir` says of `name`, if it may be
    /// trusted now.
    fn listed(&self, dir: u64, name: &[u8]) -> Known {
        if !self.may_answer(name) {
            return Known::Unknown;
        }
        self.listings.known(dir, name)
    }

    /// May a lookup of `name` be answered from a listing now? Not for a
    /// name too long (the kernel checks nothing of its length; the server
    /// does), nor without a lease that surely holds (a recall may have
    /// been missed).
    fn may_answer(&self, name: &[u8]) -> bool {
        name.len() <= 255 && self.lease.holds()
    }

    /// A close with nothing to do (no buffered data, no locks) answered
    /// on the spot; None if it needs the async path.
    fn flush_now(&self, ino: u64, fh: u64, owner: u64) -> Option<Result<()>> {
        if let Err(e) = self.handle(fh, "close") {
            return Some(Err(e));
        }
        if self.holds_any(ino, owner) {
            return None;
        }
        let Some(f) = self.file(ino) else {
            return Some(Ok(()));
        };
        let st = f.try_lock().ok()?;
        if st.is_dirty() {
            return None;
        }
        lock(&self.seen).insert(ino, st.version);
        Some(Ok(()))
    }

    /// Keeps this mount's listing of `dir` in step with its own change to
    /// `name` there (made: `res` is Ok), or drops it when the server
    /// disagrees with what the listing said.
    fn entry_changed<T>(
        &self,
        dir: u64,
        name: &[u8],
        res: Result<T>,
        attr: impl Fn(&T) -> Attr,
    ) -> Result<T> {
        match &res {
            // A reply without the node's attributes (ino 0) says nothing
            // of the name: the listing goes.
            Ok(r) => match attr(r) {
                a if a.ino != 0 => self.listings.added(dir, name, &a),
                _ => self.listings.recall([dir]),
            },
            Err(ClientError::AlreadyExists(_)) | Err(ClientError::NotFound(_)) => {
                self.listings.recall([dir])
            }
            Err(_) => {}
        }
        res
    }

    /// What this mount's listing of `dir` says of `name`, listing the
    /// directory first when that is worth it (see listings.rs).
    async fn through_listing(&self, dir: u64, name: &[u8]) -> Known {
        if !self.may_answer(name) {
            return Known::Unknown;
        }
        let known = self.listings.known(dir, name);
        if known != Known::Unknown {
            return known;
        }
        let Some(fill) = self.listings.start(dir) else {
            return Known::Unknown;
        };
        if self.list(fill).await {
            self.listed(dir, name)
        } else {
            Known::Unknown
        }
    }

    /// Reads the listing of `fill`, watched, and keeps it if nothing
    /// changed meanwhile. Returns whether kept.
    async fn list(&self, fill: Fill) -> bool {
        let (dir, mut after, mut seq) = (fill.dir, 0, 0);
        let mut entries = Vec::new();
        loop {
            let page = match self.vol.readdir_watched(dir, after, PAGE as u32).await {
                Ok(page) if page.watching => page,
                _ => {
                    self.listings.abandon(fill);
                    return false;
                }
            };
            seq = seq.max(page.seq);
            if let Some(last) = page.entries.last() {
                after = last.cookie;
            }
            let eof = page.eof;
            entries.extend(page.entries.into_iter().map(|d| (d.name, d.attr)));
            if eof {
                break;
            }
            if !fill.whole {
                self.listings.big(fill);
                return false;
            }
        }
        // An entry changed between its page's read and its watch was told
        // to this mount by then; see that it was looked at.
        if !self.listings.caught_up(seq, Duration::from_secs(2)).await {
            self.listings.abandon(fill);
            return false;
        }
        self.listings.filled(fill, entries)
    }

    async fn remove(&self, parent: u64, name: &[u8], directory: bool) -> Result<()> {
        self.may_change().await?;
        if !directory {
            if let Some(parent_now) = self.ahead.unlink(parent, name, self.cached_dir(parent)) {
                // The kernel asks for the parent's attributes next.
                self.dirs.put(self.dirs.epoch(), [&parent_now]);
                return Ok(());
            }
        }
        self.ahead.settle().await?;
        let e = self.dirs.epoch();
        let res = self.vol.unlink(parent, name, directory).await;
        match &res {
            Ok(_) => {
                self.listings.removed(parent, name);
                self.want_held([parent]);
            }
            Err(ClientError::NotFound(_)) => self.listings.recall([parent]),
            Err(_) => {}
        }
        self.learned(e, &res?);
        Ok(())
    }

    /// A directory's attributes as this mount has them, if at all.
    fn cached_dir(&self, dir: u64) -> Option<Attr> {
        self.listings.attr_of(dir).or_else(|| self.dirs.get(dir))
    }

    /// This mount changed names in `dirs` the usual way, with their
    /// listings complete: ask to hold them, so the next changes there go
    /// ahead (see ahead.rs).
    fn want_held(&self, dirs: impl IntoIterator<Item = u64>) {
        for d in dirs {
            if self.listings.is_listed(d) {
                self.ahead.want(d);
            }
        }
    }

    async fn rename(
        &self,
        parent: u64,
        name: &[u8],
        new_parent: u64,
        new_name: &[u8],
        flags: u32,
    ) -> Result<()> {
        self.may_change().await?;
        if let Some(parents) =
            self.ahead
                .rename((parent, name), (new_parent, new_name), flags, |d| {
                    self.cached_dir(d)
                })
        {
            self.dirs.put(self.dirs.epoch(), parents.iter());
            return Ok(());
        }
        self.ahead.settle().await?;
        let e = self.dirs.epoch();
        // The inode the name points at, for the listing of its new place
        // (its new attributes come with the reply).
        let moved = self.listed(parent, name);
        // Out of its held directory, a node others may reach without a
        // recall; a node replaced is gone from there.
        for (dir, name, moves) in [
            (parent, name, new_parent != parent),
            (new_parent, new_name, true),
        ] {
            if let (Known::Present(a), true) = (self.listed(dir, name), moves) {
                self.ahead.expose(a.ino);
            }
        }
        let res = self
            .vol
            .rename(parent, name, new_parent, new_name, flags)
            .await;
        match (&res, moved) {
            (Ok(_), Known::Present(a)) if flags & RENAME_EXCHANGE == 0 => {
                self.listings.removed(parent, name);
                self.listings.added(new_parent, new_name, &a);
                self.want_held([parent, new_parent]);
            }
            (Ok(_), _) | (Err(ClientError::NotFound(_) | ClientError::AlreadyExists(_)), _) => {
                self.listings.recall([parent, new_parent])
            }
            (Err(_), _) => {}
        }
        self.learned(e, &res?);
        Ok(())
    }

    async fn link(&self, ino: u64, new_parent: u64, new_name: &[u8]) -> Result<Attr> {
        self.ahead.expose(ino);
        self.writable().await?;
        let e = self.dirs.epoch();
        let res = self.vol.link(ino, new_parent, new_name).await;
        let reply = self.entry_changed(new_parent, new_name, res, |r| r.attr)?;
        self.learned(e, &reply.touched);
        Ok(reply.attr)
    }

    async fn lookup(&self, parent: u64, name: &[u8]) -> Result<Attr> {
        match self.through_listing(parent, name).await {
            // No negative entry for the kernel: it could not be recalled.
            Known::Absent => {
                return Err(ClientError::NotFound(
                    String::from_utf8_lossy(name).into_owned(),
                ))
            }
            Known::Present(a) => return Ok(a),
            Known::Unknown => {}
        }
        self.ahead.settle().await?;
        let e = self.dirs.epoch();
        let a = self.vol.lookup(parent, name).await?;
        self.learned(e, [&a]);
        Ok(a)
    }

    async fn getattr(&self, ino: u64) -> Result<Attr> {
        if let Some(a) = self.dirs.get(ino) {
            return Ok(a);
        }
        if self.lease.holds() {
            if let Some(a) = self.listings.attr_of(ino) {
                return Ok(a);
            }
        }
        self.ahead.settle().await?;
        let e = self.dirs.epoch();
        let a = match self.vol.getattr(ino).await {
            Err(ClientError::NotFound(m)) => {
                return self.orphan_attr(ino).ok_or(ClientError::NotFound(m));
            }
            res => res?,
        };
        self.learned(e, [&a]);
        Ok(a)
    }

    /// The attributes of `ino` gone from the server while this mount holds
    /// it open from peeked contents: those it was opened with, unlinked.
    fn orphan_attr(&self, ino: u64) -> Option<Attr> {
        let o = lock(&self.open);
        let a = o.peeked.values().find(|a| a.ino == ino)?;
        Some(Attr { nlink: 0, ..*a })
    }

    /// The entries of `dir` after kernel offset `offset`, each with its own
    /// kernel offset; directories among them refresh the attribute cache.
    async fn dir_page(&self, dir: u64, offset: u64) -> Result<Vec<(u64, Bytes, Attr)>> {
        self.ahead.settle().await?;
        let e = self.dirs.epoch();
        let page = self
            .vol
            .readdir(dir, offset.saturating_sub(DOT_OFFSETS), 256)
            .await?;
        let entries: Vec<_> = page
            .entries
            .into_iter()
            .map(|d| (d.cookie + DOT_OFFSETS, d.name, d.attr))
            .collect();
        self.learned(e, entries.iter().map(|(_, _, a)| a));
        Ok(entries)
    }

    /// Registers an open with the server and returns a handle; a file
    /// opened only to read may need no server at all (see peeks.rs).
    /// `pid`: the process opening (see stale.rs).
    async fn open_file(&self, ino: u64, access: Access, pid: u32) -> Result<(u64, FopenFlags)> {
        let read_only = access == Access::ReadOnly;
        if read_only {
            if let Some(opened) = self.open_peeked(ino).await {
                return opened;
            }
        }
        self.ahead.settle().await?;
        let epoch = self.lease.epoch();
        let peek = if read_only {
            self.to_peek(ino)
        } else {
            Vec::new()
        };
        let mut resp = match self.vol.open_peeking(ino, peek).await {
            // The kernel resolved a name to a file gone since. No listing
            // here may name it again (the kernel's retry looks it up).
            Err(ClientError::NotFound(m)) => return Err(self.gone(ino, pid, m)),
            res => res?,
        };
        self.peeks.keep(std::mem::take(&mut resp.peeked));
        if resp.attr.ino != 0 && resp.attr.nlink == 0 && !lock(&self.open).files.contains_key(&ino)
        {
            // The kernel resolved a name to a file that no longer has one:
            // its entry is older than another mount's unlink (entries are
            // invalidated by push, after the change returned), and the
            // server kept the file only for a release of ours still on its
            // way. ESTALE makes the kernel look the name up again, so an
            // open after another mount's close reads what it wrote. (An
            // unlinked file open here may still be reopened through
            // /proc/self/fd.)
            self.releases.push(ino, epoch);
            let m = format!("open of inode {ino}: unlinked on another mount");
            return Err(self.gone(ino, pid, m));
        }
        self.opened(ino, resp, epoch, access).await
    }

    /// The error for `pid`'s open of `ino`, found gone (see stale.rs): no
    /// listing here names it any more, so the kernel's retry asks the
    /// server.
    fn gone(&self, ino: u64, pid: u32, m: String) -> ClientError {
        self.listings.touched(&[ino]);
        match self.stale.first(pid, ino) {
            true => ClientError::Fs(svol_sdk::FsErrno::Stale, m),
            false => ClientError::NotFound(m),
        }
    }

    /// Opens `ino` from its peeked contents, if a listing says they are
    /// its current ones.
    async fn open_peeked(&self, ino: u64) -> Option<Result<(u64, FopenFlags)>> {
        if !self.lease.holds() {
            return None;
        }
        let a = self.listings.attr_of(ino)?;
        let chunks = self.peeks.get(ino, a.version)?;
        let resp = Opened {
            attr: a,
            chunks,
            ..Default::default()
        };
        let epoch = self.lease.epoch();
        let opened = self.opened(ino, resp, epoch, Access::ReadOnly).await;
        Some(opened.inspect(|(fh, _)| {
            lock(&self.open).peeked.insert(*fh, a);
        }))
    }

    /// The files to peek at with a slow open of `ino`: the next small ones
    /// of its directory not already peeked, if a reader is going through
    /// it.
    fn to_peek(&self, ino: u64) -> Vec<u64> {
        if !self.lease.holds() {
            return Vec::new();
        }
        let Some((dir, next)) = self.listings.next_files(ino, MAX_PEEK) else {
            return Vec::new();
        };
        if !self.peeks.worth(dir) {
            return Vec::new();
        }
        next.into_iter()
            .filter(|&(i, v)| !self.peeks.has(i, v))
            .map(|(i, _)| i)
            .collect()
    }

    /// Records a file the server has opened for us under session epoch
    /// `epoch`; returns the handle.
    async fn opened(
        &self,
        ino: u64,
        resp: Opened,
        epoch: u64,
        access: Access,
    ) -> Result<(u64, FopenFlags)> {
        self.listings.attrs([&resp.attr]);
        let version = resp.attr.version;
        let file = {
            let mut o = lock(&self.open);
            let e = o.files.entry(ino).or_insert_with(|| {
                let st = FileState::new(ino, self.budget.clone());
                (Arc::new(tokio::sync::Mutex::new(st)), 0)
            });
            e.1 += 1;
            e.0.clone()
        };
        file.lock().await.refresh(resp);
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        let direct = {
            let mut o = lock(&self.open);
            o.handles.insert(fh, (ino, epoch));
            let others = o.files.get(&ino).map_or(0, |e| e.1.saturating_sub(1));
            o.direct.open(ino, fh, access, others)
        };
        let keep = lock(&self.seen).insert(ino, version) == Some(version) && !direct;
        if !keep {
            // The kernel may hold attributes of an older version (the empty
            // file it saw created, say) and would clip reads at that size;
            // the invalidation pushed for the change may still be on its
            // way. Drop them before the open returns: close-to-open.
            if let Some(n) = self.locks.notifier.get() {
                let _ = n.inval_inode(self.k(ino), -1, 0);
            }
        }
        Ok((fh, fopen_flags(direct, keep)))
    }

    pub(crate) fn file(&self, ino: u64) -> Option<File> {
        self.local_size(ino)
    }

    /// Re-reads the file's chunk map from the server (keeping this mount's
    /// unflushed writes) after another mount changed it.
    pub(crate) async fn refetch(&self, ino: u64, st: &mut FileState) -> Result<()> {
        self.ahead.settle().await?;
        let epoch = self.lease.epoch();
        let resp = self.vol.open(ino).await?;
        st.refresh(resp);
        // The open only fetched the map; its release need not be waited for.
        self.releases.push(ino, epoch);
        Ok(())
    }

    /// The next open of `ino` must not trust the kernel's page cache.
    pub(crate) fn forget_seen(&self, ino: u64) {
        lock(&self.seen).remove(&ino);
    }

    pub(crate) async fn flush(&self, ino: u64, durable: bool) -> Result<()> {
        if let Some(f) = self.file(ino) {
            let mut st = f.lock().await;
            st.commit(&self.io, durable).await?;
            lock(&self.seen).insert(ino, st.version);
        } else if durable {
            // Nothing buffered here (written and closed earlier, or through
            // another mount): the server still makes it durable.
            self.ahead.settle().await?;
            self.vol.sync(ino).await?;
        }
        if durable {
            self.ahead.settle().await?;
            if let Some(e) = self.ahead.take_failure() {
                return Err(ClientError::Fs(
                    svol_sdk::FsErrno::Io,
                    format!("a create made ahead was lost: {e}"),
                ));
            }
        }
        Ok(())
    }

    async fn release(&self, ino: u64, fh: u64) -> Result<()> {
        // A handle of a lost session has nothing left on the server.
        let live = self.handle(fh, "release").is_ok();
        let epoch = self.handle_epoch(fh);
        let res = if live {
            self.flush(ino, false).await
        } else {
            Ok(())
        };
        let peeked = {
            let mut o = lock(&self.open);
            o.handles.remove(&fh);
            o.direct.release(ino, fh);
            let peeked = o.peeked.remove(&fh).is_some();
            if let Some(e) = o.files.get_mut(&ino) {
                e.1 = e.1.saturating_sub(1);
                if e.1 == 0 {
                    o.files.remove(&ino);
                }
            }
            peeked
        };
        if live && !peeked {
            if let Release::Server = self.ahead.release(ino).await {
                self.releases.push(ino, epoch);
            }
        }
        res
    }

    /// fsync of a directory: what was made ahead lands first, and a
    /// create refused after it was answered is reported here.
    async fn sync_dir(&self, ino: u64) -> Result<()> {
        self.ahead.settle().await?;
        self.vol.sync(ino).await?;
        match self.ahead.take_failure() {
            Some(e) => Err(ClientError::Fs(
                svol_sdk::FsErrno::Io,
                format!("a create made ahead was lost: {e}"),
            )),
            None => Ok(()),
        }
    }

    async fn setattr(&self, ino: u64, mut r: SetAttr) -> Result<FileAttr> {
        self.may_change().await?;
        let file = self.file(ino);
        let mut guard = match &file {
            Some(f) => Some(f.lock().await),
            None => None,
        };
        // Written data goes first: its commit stamps the time of writing,
        // and an explicit time (tar's futimens after the last write, before
        // close) must be the one that stays.
        if r.size.is_some() || r.mtime.is_some() {
            if let Some(st) = guard.as_mut() {
                st.commit(&self.io, false).await?;
            }
        }
        // On a node nobody else can see yet, it joins the queue (tar's
        // fchown, fchmod and futimens of each file it writes).
        let a = match self.ahead.set_attr(ino, &r) {
            Some(a) => a,
            None => {
                self.ahead.settle().await?;
                if r.size.is_some() {
                    // A truncate by a lock holder is fenced like its writes.
                    r.fence = self.lease.fence(ino);
                }
                let e = self.dirs.epoch();
                let a = self.vol.setattr(ino, r.clone()).await?;
                self.learned(e, [&a]);
                a
            }
        };
        if let (Some(size), Some(st)) = (r.size, guard.as_mut()) {
            st.truncate(size);
            st.version = a.version;
            lock(&self.seen).insert(ino, a.version);
        }
        let size = match guard.as_ref() {
            Some(st) if st.is_dirty() => st.size.max(a.size),
            _ => a.size,
        };
        Ok(file_attr(&a, self.k(ino), size))
    }
}

/// When a writer waits for dirty budget, commits the open files that hold
/// some and are not busy (a file being written commits itself).
async fn flusher(inner: std::sync::Weak<Inner>) {
    loop {
        let Some(i) = inner.upgrade() else { return };
        let budget = i.budget.clone();
        drop(i);
        budget.pressure.notified().await;
        let Some(i) = inner.upgrade() else { return };
        let files: Vec<File> = lock(&i.open).files.values().map(|e| e.0.clone()).collect();
        for f in files {
            if let Ok(mut st) = f.try_lock() {
                if st.is_dirty() {
                    if let Err(e) = st.commit(&i.io, false).await {
                        tracing::warn!("committing to free write buffers: {e}");
                    }
                }
            }
        }
    }
}
