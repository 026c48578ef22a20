//! Creates made ahead of the server in directories this mount holds.
//!
//! Holding a directory (the server grants it when no other client watches
//! it; see the server's `sessions/holds.rs`) means no other client looks
//! into it without first recalling the hold, and a recall is answered only
//! after what was made here has landed. So a `creat` or `mkdir` there,
//! with the listing saying the name is free, is answered on the spot —
//! with an inode number the session reserved — and queued; the queue goes
//! out as one `Apply` (one transaction) whenever none is in flight, so a
//! burst of creates costs one round trip per batch instead of one each.
//!
//! What the mount then does to a node it made, while nobody else can reach
//! it ([`Private`]), joins the queue too: the commit of a close (inline
//! contents) and attributes set on it.
//!
//! Order is kept: any other call of this mount to the server waits until
//! the queue has landed ([`Ahead::settle`]), so the server sees this
//! mount's operations in the order its applications made them. What the
//! relaxation costs: an operation the server refuses after it was answered
//! (a lease lost meanwhile, a full store) is reported by the next `fsync`
//! of this mount, not by `creat` or `close` — as on CephFS with async
//! dirops, or any write-back cache before `fsync`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use svol_sdk::{
    Attr, Chunk, ClientError, FileKind, QueuedCommit, QueuedCreate, QueuedOp, QueuedRename,
    QueuedSetAttr, QueuedUnlink, SetAttr, TimeSet, Timespec, Volume, CHUNK_SIZE, RENAME_EXCHANGE,
    RENAME_NOREPLACE,
};
use tokio::sync::Notify;

use crate::lease::LeaseState;
use crate::listings::{Known, Listings};

type Result<T> = std::result::Result<T, ClientError>;

/// Creates waiting at most: beyond, a create takes the slow path (which
/// lands the queue first).
const MAX_QUEUED: usize = 4096;
/// Inode numbers asked for at a time, and the stock below which more are.
const RESERVE: u32 = 4096;
const LOW: usize = 2048;
/// A refused hold is not asked for again sooner (another client is
/// listing or changing the directory).
const REFUSED_FOR: Duration = Duration::from_secs(1);

const S_ISGID: u32 = 0o2000;
const S_ISUID: u32 = 0o4000;
const S_IXGRP: u32 = 0o010;

/// `mode` without the set-ID bits a writer without CAP_FSETID may not
/// keep (as the server's commit clears them).
fn without_suidgid(mode: u32) -> u32 {
    mode & !(S_ISUID | if mode & S_IXGRP != 0 { S_ISGID } else { 0 })
}
/// How long the sender lets a batch fill, unless it has this many.
const LINGER: Duration = Duration::from_millis(2);
const LINGER_OPS: usize = 256;
/// Private nodes tracked at most (beyond, new ones are not: what is done
/// to them goes to the server the usual way).
const MAX_PRIVATE: usize = 65_536;

/// A node made ahead that nobody else can see yet: its only name is in a
/// directory this mount holds, so another client must recall that hold
/// (and so wait for the queue to land) before it can reach the node.
/// What this mount does to it meanwhile may be queued too.
struct Private {
    parent: u64,
    /// Its attributes, as the queue will leave them.
    attr: Attr,
}

#[derive(Default)]
struct Queue {
    ops: Vec<QueuedOp>,
    private: HashMap<u64, Private>,
    /// Held directories.
    held: HashSet<u64>,
    /// The newest attributes known of held directories (nobody else can
    /// change them without recalling the hold first).
    parents: HashMap<u64, Attr>,
    /// Holds asked for (in flight) or refused (when).
    asked: HashMap<u64, Option<Instant>>,
    inos: VecDeque<u64>,
    refilling: bool,
    /// Inodes queued, with whether the create's open is still open here.
    queued: HashMap<u64, bool>,
    /// Inodes sent and not yet answered, whose open went with them.
    in_flight: HashSet<u64>,
    /// A batch is on its way and not yet answered.
    sending: bool,
    /// A create refused after it was answered: the next fsync says so.
    failed: Option<String>,
}

impl Queue {
    /// Queues the create of `n` (in a held directory, the name free) as the
    /// next reserved number; its attributes, or None if none is at hand.
    fn make(&mut self, n: &Node, parent_attr: &Attr, now: Timespec) -> Option<Attr> {
        if !self.held.contains(&n.parent) || self.ops.len() >= MAX_QUEUED {
            return None;
        }
        let ino = self.inos.pop_front()?;
        let dir = n.kind == FileKind::Directory;
        let (mut mode, mut gid) = (n.mode & 0o7777, n.gid);
        if parent_attr.mode & S_ISGID != 0 {
            gid = parent_attr.gid;
            if dir {
                mode |= S_ISGID;
            }
        }
        let a = Attr {
            ino,
            kind: n.kind,
            mode,
            uid: n.uid,
            gid,
            nlink: if dir { 2 } else { 1 },
            size: 0,
            atime: now,
            mtime: now,
            ctime: now,
            rdev: 0,
            version: 0,
        };
        self.ops.push(QueuedOp::Create(QueuedCreate {
            parent: n.parent,
            name: n.name.clone(),
            kind: n.kind,
            mode,
            uid: n.uid,
            gid: n.gid,
            rdev: 0,
            symlink_target: Bytes::new(),
            ino,
            time: now,
            open: false,
        }));
        self.queued.insert(ino, !dir);
        if dir {
            self.held.insert(ino);
        }
        if self.private.len() < MAX_PRIVATE {
            let parent = n.parent;
            self.private.insert(ino, Private { parent, attr: a });
        }
        Some(a)
    }

    /// Queues `op`, a change to private node `ino`, if there is room;
    /// `change` makes its attributes what the op will make them.
    fn change(&mut self, ino: u64, op: QueuedOp, change: impl FnOnce(&mut Attr)) -> Option<Attr> {
        if self.ops.len() >= MAX_QUEUED {
            return None;
        }
        let node = self.private.get_mut(&ino)?;
        change(&mut node.attr);
        let a = node.attr;
        self.ops.push(op);
        self.now_is(&a);
        Some(a)
    }

    /// `a` is the newest of its inode: what this mount keeps of a held
    /// directory or a private node follows.
    fn now_is(&mut self, a: &Attr) {
        if let Some(known) = self.parents.get_mut(&a.ino) {
            *known = *a;
        }
        if let Some(n) = self.private.get_mut(&a.ino) {
            n.attr = *a;
        }
    }

    /// Queues the removal of `name` from `parent` (`to` None) or its move
    /// to `to`, the listing saying it names `node` and the target names
    /// `replaced`: only if both directories are held and neither node is
    /// a directory or has another name (which another client could reach
    /// without a recall). Returns `node`'s attributes as the op leaves
    /// them.
    fn move_name(
        &mut self,
        parent: u64,
        name: &Bytes,
        to: Option<(u64, &Bytes)>,
        node: &Attr,
        replaced: Option<&Attr>,
        now: Timespec,
    ) -> Option<Attr> {
        let alone = |a: &Attr| a.kind != FileKind::Directory && a.nlink == 1;
        let held = self.held.contains(&parent) && to.is_none_or(|(d, _)| self.held.contains(&d));
        if !held || self.ops.len() >= MAX_QUEUED || !alone(node) {
            return None;
        }
        if replaced.is_some_and(|r| !alone(r) || r.ino == node.ino || to.is_none()) {
            return None;
        }
        let mut after = *node;
        after.ctime = now;
        let op = match to {
            None => {
                after.nlink = 0;
                self.private.remove(&node.ino);
                QueuedOp::Unlink(QueuedUnlink {
                    parent,
                    name: name.clone(),
                    ino: node.ino,
                    time: now,
                })
            }
            Some((new_parent, new_name)) => {
                if let Some(n) = self.private.get_mut(&node.ino) {
                    n.parent = new_parent;
                }
                QueuedOp::Rename(QueuedRename {
                    parent,
                    name: name.clone(),
                    new_parent,
                    new_name: new_name.clone(),
                    ino: node.ino,
                    replaced: replaced.map_or(0, |r| r.ino),
                    time: now,
                })
            }
        };
        if let Some(r) = replaced {
            self.private.remove(&r.ino);
        }
        self.ops.push(op);
        self.now_is(&after);
        Some(after)
    }

    /// Takes the queue for sending; each create's open goes with it if
    /// still open here (and then its release waits for the reply).
    fn take_batch(&mut self) -> Vec<QueuedOp> {
        let mut ops = std::mem::take(&mut self.ops);
        self.sending = !ops.is_empty();
        for op in &mut ops {
            if let QueuedOp::Create(c) = op {
                c.open = self.queued.remove(&c.ino).unwrap_or(false);
                if c.open {
                    self.in_flight.insert(c.ino);
                }
            }
        }
        ops
    }

    /// Nothing queued, nothing on its way.
    fn idle(&self) -> bool {
        self.ops.is_empty() && !self.sending
    }

    /// A batch that did not reach the server goes first again.
    fn requeue(&mut self, mut ops: Vec<QueuedOp>) {
        self.sending = false;
        for c in ops.iter().filter_map(create_of) {
            self.in_flight.remove(&c.ino);
            self.queued.insert(c.ino, c.open);
        }
        ops.append(&mut self.ops);
        self.ops = ops;
    }

    /// Ends the holds of `dirs` (all, with `all`); true if something made
    /// ahead must land before the recall is answered.
    fn end_holds(&mut self, dirs: &[u64], all: bool) -> bool {
        let mut was_held = all && !self.held.is_empty();
        if all {
            self.held.clear();
        }
        for d in dirs {
            was_held |= self.held.remove(d);
        }
        let held = &self.held;
        self.parents.retain(|d, _| held.contains(d));
        self.private.retain(|_, n| held.contains(&n.parent));
        was_held && !self.idle()
    }

    /// Inodes the queue changes (after what the server last answered).
    fn changing(&self) -> HashSet<u64> {
        self.ops
            .iter()
            .flat_map(|o| match o {
                QueuedOp::Create(c) => vec![c.parent],
                QueuedOp::Commit(c) => vec![c.ino],
                QueuedOp::SetAttr(c) => vec![c.ino],
                QueuedOp::Unlink(c) => vec![c.parent, c.ino],
                QueuedOp::Rename(c) => vec![c.parent, c.new_parent, c.ino, c.replaced],
            })
            .collect()
    }
}

fn create_of(op: &QueuedOp) -> Option<&QueuedCreate> {
    match op {
        QueuedOp::Create(c) => Some(c),
        _ => None,
    }
}

/// The inode an operation changes, and the directories to forget if the
/// server refuses it.
fn target_of(op: &QueuedOp) -> (u64, Vec<u64>) {
    match op {
        QueuedOp::Create(c) => (c.ino, vec![c.parent]),
        QueuedOp::Commit(c) => (c.ino, Vec::new()),
        QueuedOp::SetAttr(c) => (c.ino, Vec::new()),
        QueuedOp::Unlink(c) => (c.ino, vec![c.parent]),
        QueuedOp::Rename(c) => (c.ino, vec![c.parent, c.new_parent]),
    }
}

/// What a release of a file made ahead needs.
pub(crate) enum Release {
    /// Its create has not gone out: the open never reaches the server.
    Local,
    /// Sent to the server, like any release.
    Server,
}

/// A node to make ahead.
pub(crate) struct Node {
    pub(crate) parent: u64,
    pub(crate) name: Bytes,
    pub(crate) kind: FileKind,
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

pub(crate) struct Ahead {
    vol: Volume,
    listings: Arc<Listings>,
    lease: Arc<LeaseState>,
    q: Mutex<Queue>,
    /// One `Apply` at a time, in order.
    flight: tokio::sync::Mutex<()>,
    /// Rung when a create is queued.
    queued: Arc<Notify>,
}

impl Ahead {
    /// Starts the sender on the current runtime.
    pub(crate) fn start(vol: Volume, listings: Arc<Listings>, lease: Arc<LeaseState>) -> Arc<Self> {
        let a = Arc::new(Self {
            vol,
            listings,
            lease,
            q: Mutex::default(),
            flight: tokio::sync::Mutex::new(()),
            queued: Arc::new(Notify::new()),
        });
        tokio::spawn(sender(Arc::downgrade(&a)));
        a
    }

    fn q(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.q.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes `n` ahead if this mount may: it holds the parent, its listing
    /// says the name is free, and a reserved number is at hand. Returns
    /// the new node's attributes and the parent's new ones (the create is
    /// queued), or None: make it the usual way. `parent_attr`: the parent's
    /// attributes as cached, if this mount has not made anything there yet.
    pub(crate) fn make(&self, n: &Node, parent_attr: Option<Attr>) -> Option<(Attr, Attr)> {
        if !self.lease.holds() || n.name.len() > 255 {
            return None;
        }
        let mut q = self.q();
        let parent_attr = q.parents.get(&n.parent).copied().or(parent_attr)?;
        // Checked under the queue's lock: a recall drops the hold under
        // it too, so a create queued here is in the batch that recall
        // sends.
        if self.listings.known(n.parent, &n.name) != Known::Absent {
            return None;
        }
        if q.inos.len() < LOW && !q.refilling {
            // The sender tops the stock up (this is the FUSE thread).
            self.queued.notify_one();
        }
        let now = Timespec::now();
        let a = q.make(n, &parent_attr, now)?;
        let dir = n.kind == FileKind::Directory;
        if dir {
            // Nobody else can have looked into it: held, and known empty.
            self.listings.made_dir(a.ino);
        }
        self.listings.added(n.parent, &n.name, &a);
        let mut p = parent_attr;
        p.mtime = now;
        p.ctime = now;
        if dir {
            p.nlink += 1;
            q.parents.insert(a.ino, a);
        }
        q.parents.insert(n.parent, p);
        q.now_is(&p);
        self.listings.attrs([&p]);
        drop(q);
        self.queued.notify_one();
        Some((a, p))
    }

    /// Removes `name` from `parent` ahead of the server if this mount may
    /// (see [`Queue::move_name`]); returns the parent's new attributes, or
    /// None: remove it the usual way. `parent_attr` as for [`Ahead::make`].
    pub(crate) fn unlink(
        &self,
        parent: u64,
        name: &[u8],
        parent_attr: Option<Attr>,
    ) -> Option<Attr> {
        let parents = self.move_name(parent, name, None, |_| parent_attr)?;
        parents.into_iter().next()
    }

    /// Moves `name` from `parent` to `new_parent` as `new_name` ahead of
    /// the server if this mount may (never an exchange; a target only
    /// without RENAME_NOREPLACE); returns the parents' new attributes, or
    /// None: rename the usual way. `attr_of` gives a parent's attributes
    /// as cached.
    pub(crate) fn rename(
        &self,
        (parent, name): (u64, &[u8]),
        (new_parent, new_name): (u64, &[u8]),
        flags: u32,
        attr_of: impl Fn(u64) -> Option<Attr>,
    ) -> Option<Vec<Attr>> {
        if flags & RENAME_EXCHANGE != 0 || new_name.len() > 255 {
            return None;
        }
        let target = self.listings.known(new_parent, new_name);
        if flags & RENAME_NOREPLACE != 0 && target != Known::Absent {
            return None;
        }
        self.move_name(parent, name, Some((new_parent, new_name)), attr_of)
    }

    fn move_name(
        &self,
        parent: u64,
        name: &[u8],
        to: Option<(u64, &[u8])>,
        attr_of: impl Fn(u64) -> Option<Attr>,
    ) -> Option<Vec<Attr>> {
        if !self.lease.holds() || name.len() > 255 {
            return None;
        }
        let mut q = self.q();
        let mut dirs = vec![parent];
        dirs.extend(to.map(|(d, _)| d).filter(|d| *d != parent));
        let mut parents = Vec::with_capacity(dirs.len());
        for d in &dirs {
            parents.push(q.parents.get(d).copied().or_else(|| attr_of(*d))?);
        }
        // Checked under the queue's lock, as for a create.
        let Known::Present(node) = self.listings.known(parent, name) else {
            return None;
        };
        let replaced = match to.map(|(d, n)| self.listings.known(d, n)) {
            None | Some(Known::Absent) => None,
            Some(Known::Present(r)) => Some(r),
            Some(Known::Unknown) => return None,
        };
        let (name, to) = (
            Bytes::copy_from_slice(name),
            to.map(|(d, n)| (d, Bytes::copy_from_slice(n))),
        );
        let now = Timespec::now();
        let after = q.move_name(
            parent,
            &name,
            to.as_ref().map(|(d, n)| (*d, n)),
            &node,
            replaced.as_ref(),
            now,
        )?;
        self.listings.removed(parent, &name);
        if let Some((d, n)) = &to {
            self.listings.added(*d, n, &after);
        }
        for p in &mut parents {
            p.mtime = now;
            p.ctime = now;
            q.parents.insert(p.ino, *p);
            q.now_is(p);
        }
        self.listings.attrs(parents.iter());
        drop(q);
        self.queued.notify_one();
        Some(parents)
    }

    /// The usual create in `dir` found the listing complete: ask to hold
    /// it (and for numbers), so the next creates there go ahead.
    pub(crate) fn want(self: &Arc<Self>, dir: u64) {
        let inos = {
            let mut q = self.q();
            if q.held.contains(&dir) {
                return;
            }
            match q.asked.get(&dir) {
                Some(None) => return,
                Some(Some(at)) if at.elapsed() < REFUSED_FOR => return,
                _ => {}
            }
            q.asked.insert(dir, None);
            self.wants_inos(&mut q)
        };
        let me = self.clone();
        tokio::spawn(async move {
            let r = me.vol.hold(dir, inos).await;
            let mut q = me.q();
            match r {
                Ok(r) => {
                    q.inos.extend(r.inos);
                    if r.held && me.listings.is_listed(dir) {
                        q.held.insert(dir);
                        q.asked.remove(&dir);
                    } else {
                        q.asked.insert(dir, Some(Instant::now()));
                    }
                }
                Err(e) => {
                    tracing::debug!("hold: {e}");
                    q.asked.insert(dir, Some(Instant::now()));
                }
            }
            if inos > 0 {
                q.refilling = false;
            }
        });
    }

    /// Numbers to ask for with a hold: more once the stock runs low (one
    /// request at a time).
    fn wants_inos(&self, q: &mut Queue) -> u32 {
        if q.inos.len() < LOW && !q.refilling {
            q.refilling = true;
            RESERVE
        } else {
            0
        }
    }

    /// Tops the stock of numbers up in the background.
    fn refill(self: &Arc<Self>) {
        let n = self.wants_inos(&mut self.q());
        if n == 0 {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            let r = me.vol.hold(0, n).await;
            let mut q = me.q();
            if let Ok(r) = r {
                q.inos.extend(r.inos);
            }
            q.refilling = false;
        });
    }

    /// Attributes the server returned: held directories' are the newest.
    pub(crate) fn learned<'a>(&self, attrs: impl IntoIterator<Item = &'a Attr>) {
        let mut q = self.q();
        if q.parents.is_empty() && q.private.is_empty() {
            // Nothing held or made here: the common case on reads.
            return;
        }
        for a in attrs {
            q.now_is(a);
        }
    }

    /// Is `ino` made here and not yet answered by the server?
    pub(crate) fn pending(&self, ino: u64) -> bool {
        let q = self.q();
        q.queued.contains_key(&ino) || q.in_flight.contains(&ino)
    }

    /// Can nobody else see `ino` yet (see [`Private`])? Then it has no
    /// extended attributes either.
    pub(crate) fn is_private(&self, ino: u64) -> bool {
        self.lease.holds() && self.q().private.contains_key(&ino)
    }

    /// `ino` gets a name, or an attribute, others may see before a recall:
    /// what is done to it from now on goes to the server the usual way.
    pub(crate) fn expose(&self, ino: u64) {
        self.q().private.remove(&ino);
    }

    /// Queues the commit of private `ino` (a close's, never durable);
    /// returns its attributes as the commit leaves them, or None: commit
    /// it the usual way.
    pub(crate) fn commit(
        &self,
        ino: u64,
        chunks: Vec<Chunk>,
        write_end: u64,
        kill_suidgid: bool,
        written_at: Option<Timespec>,
    ) -> Option<Attr> {
        if !self.lease.holds() {
            return None;
        }
        // The time of the last write, as `stat` showed it before the close.
        let now = written_at.unwrap_or_else(Timespec::now);
        let end = chunks
            .iter()
            .map(|c| c.index * CHUNK_SIZE + c.len as u64)
            .fold(write_end, u64::max);
        let op = QueuedOp::Commit(QueuedCommit {
            ino,
            chunks,
            write_end,
            time: now,
            kill_suidgid,
        });
        let a = self.q().change(ino, op, |a| {
            // As the server's commit: never shrinks, a new version.
            a.size = a.size.max(end);
            if kill_suidgid {
                a.mode = without_suidgid(a.mode);
            }
            a.mtime = now;
            a.ctime = now;
            a.version += 1;
        })?;
        self.listings.attrs([&a]);
        self.queued.notify_one();
        Some(a)
    }

    /// Queues attributes set on private `ino` (not a size); returns them
    /// as set, or None: set them the usual way.
    pub(crate) fn set_attr(&self, ino: u64, r: &SetAttr) -> Option<Attr> {
        if !self.lease.holds() || r.size.is_some() {
            return None;
        }
        // Set-ID bits to clear (rare): the usual way, the server does it.
        if r.kill_suidgid {
            let mode = r
                .mode
                .or_else(|| self.q().private.get(&ino).map(|n| n.attr.mode))?;
            if without_suidgid(mode) != mode {
                return None;
            }
        }
        let now = Timespec::now();
        let time = |t: &Option<TimeSet>| match (*t)? {
            TimeSet::Now => Some(now),
            TimeSet::At(ts) => Some(ts),
        };
        let (atime, mtime) = (time(&r.atime), time(&r.mtime));
        let op = QueuedOp::SetAttr(QueuedSetAttr {
            ino,
            mode: r.mode,
            uid: r.uid,
            gid: r.gid,
            atime: r.atime,
            mtime: r.mtime,
            time: now,
        });
        let a = self.q().change(ino, op, |a| {
            a.mode = r.mode.map_or(a.mode, |m| m & 0o7777);
            a.uid = r.uid.unwrap_or(a.uid);
            a.gid = r.gid.unwrap_or(a.gid);
            a.atime = atime.unwrap_or(a.atime);
            a.mtime = mtime.unwrap_or(a.mtime);
            a.ctime = now;
        })?;
        self.listings.attrs([&a]);
        self.queued.notify_one();
        Some(a)
    }

    /// The open the create of `ino` made is closed.
    pub(crate) async fn release(&self, ino: u64) -> Release {
        {
            let mut q = self.q();
            // A closed file is rarely changed again: it stops being
            // tracked (directories stay, for the times set at the end).
            if q.private
                .get(&ino)
                .is_some_and(|n| n.attr.kind != FileKind::Directory)
            {
                q.private.remove(&ino);
            }
            if let Some(open) = q.queued.get_mut(&ino) {
                *open = false;
                return Release::Local;
            }
            if !q.in_flight.contains(&ino) {
                return Release::Server;
            }
        }
        // Its open is on its way to the server: release it after.
        let _ = self.settle().await;
        Release::Server
    }

    /// Recalled `dirs` (all, with `all`): holds of them end now, under the
    /// queue's lock, so nothing more is made ahead there. Returns whether
    /// the queue must land before the recall is answered.
    pub(crate) fn recalled(&self, dirs: &[u64], all: bool) -> bool {
        self.q().end_holds(dirs, all)
    }

    /// The session's stream broke: the server dropped every hold.
    pub(crate) fn lost_holds(&self) {
        let mut q = self.q();
        q.held.clear();
        q.parents.clear();
        q.private.clear();
        q.asked.clear();
    }

    /// A new session: the old one's numbers are no longer ours.
    pub(crate) fn new_session(&self) {
        let mut q = self.q();
        q.held.clear();
        q.parents.clear();
        q.private.clear();
        q.asked.clear();
        q.inos.clear();
    }

    /// Lands everything queued (and waits for what is in flight). Call
    /// before any other call to the server.
    pub(crate) async fn settle(&self) -> Result<()> {
        if self.q().idle() {
            return Ok(());
        }
        self.send_batch().await
    }

    /// A create refused after it was answered, if any since the last ask.
    pub(crate) fn take_failure(&self) -> Option<String> {
        self.q().failed.take()
    }

    async fn send_batch(&self) -> Result<()> {
        let _flight = self.flight.lock().await;
        let ops = {
            let mut q = self.q();
            let ops = q.take_batch();
            if ops.is_empty() {
                q.in_flight.clear();
                return Ok(());
            }
            ops
        };
        let res = self.vol.apply(ops.clone()).await;
        let mut q = self.q();
        q.in_flight.clear();
        q.sending = false;
        let (results, touched) = match res {
            Ok(r) => r,
            Err(e @ ClientError::Unavailable(_)) => {
                // The server is away (restarting, or failing over): the
                // batch goes again, ahead of anything queued since. The
                // numbers stay reserved with the session in the store; a
                // batch that did land before the reply was lost comes back
                // refused ("not reserved"), and is reported as lost.
                q.requeue(ops);
                return Err(e);
            }
            Err(e) => {
                // Not known to have landed: the names made ahead may not
                // exist; listings of their directories go.
                tracing::error!("{} changes made ahead were not applied: {e}", ops.len());
                q.failed = Some(e.to_string());
                q.held.clear();
                q.private.clear();
                let (inos, dirs): (Vec<u64>, Vec<Vec<u64>>) = ops.iter().map(target_of).unzip();
                self.listings.touched(&inos);
                self.listings.recall(dirs.into_iter().flatten());
                return Err(e);
            }
        };
        // The batch's end state (not each create's result: a directory's
        // link count moves on with the creates after it in the batch),
        // except where more was made since (this mount knows better).
        let moved_on = q.changing();
        let touched: Vec<Attr> = touched
            .into_iter()
            .filter(|a| !moved_on.contains(&a.ino))
            .collect();
        for a in &touched {
            q.now_is(a);
        }
        self.listings.attrs(&touched);
        for (op, r) in ops.iter().zip(results) {
            if let Err(e) = r {
                let (ino, dirs) = target_of(op);
                tracing::error!(
                    "a change to inode {ino} made ahead was refused by the server: {e}"
                );
                q.failed = Some(e.to_string());
                q.private.remove(&ino);
                self.listings.touched(&[ino]);
                for dir in &dirs {
                    q.held.remove(dir);
                }
                self.listings.recall(dirs);
            }
        }
        Ok(())
    }
}

/// Sends the queue whenever it has something and nothing is in flight;
/// keeps the stock of numbers up (rung also when it runs low, so a mount
/// that ran out and creates the usual way gets numbers again).
async fn sender(ahead: std::sync::Weak<Ahead>) {
    loop {
        let Some(mut a) = ahead.upgrade() else { return };
        let bell = a.queued.clone();
        a.refill();
        if a.q().ops.is_empty() {
            drop(a);
            // A ring before this wait is kept (a permit), not lost.
            bell.notified().await;
            continue;
        }
        if a.q().ops.len() < LINGER_OPS {
            // Nobody waits for the batch (a call that does lands it
            // itself): a moment more fills it, and one transaction of
            // many creates costs the server far less than many of one.
            drop(a);
            tokio::time::sleep(LINGER).await;
            let Some(again) = ahead.upgrade() else { return };
            a = again;
        }
        if let Err(e) = a.send_batch().await {
            tracing::warn!("sending creates made ahead: {e}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(parent: u64, name: &str, kind: FileKind) -> Node {
        Node {
            parent,
            name: Bytes::copy_from_slice(name.as_bytes()),
            kind,
            mode: 0o644,
            uid: 7,
            gid: 8,
        }
    }

    fn dir_attr(mode: u32) -> Attr {
        Attr {
            ino: 5,
            kind: FileKind::Directory,
            mode,
            gid: 99,
            nlink: 2,
            ..Default::default()
        }
    }

    const NOW: Timespec = Timespec {
        sec: 1_700_000_000,
        nsec: 0,
    };

    #[test]
    fn only_a_held_directory_with_numbers_at_hand_makes_ahead() {
        let mut q = Queue::default();
        let f = node(5, "f", FileKind::Regular);
        assert!(q.make(&f, &dir_attr(0o755), NOW).is_none(), "not held");
        q.held.insert(5);
        assert!(q.make(&f, &dir_attr(0o755), NOW).is_none(), "no numbers");
        q.inos.extend([100, 101, 102]);
        let a = q.make(&f, &dir_attr(0o755), NOW).expect("made ahead");
        assert_eq!((a.ino, a.nlink, a.uid, a.gid, a.size), (100, 1, 7, 8, 0));
        assert_eq!(a.mtime, NOW);
        // A directory made ahead is held from birth; setgid is inherited
        // as the server will.
        let d = node(5, "d", FileKind::Directory);
        let a = q.make(&d, &dir_attr(0o2775), NOW).expect("made ahead");
        assert_eq!((a.ino, a.nlink, a.gid), (101, 2, 99));
        assert_ne!(a.mode & S_ISGID, 0);
        assert!(q.held.contains(&101));
        let inner = node(101, "x", FileKind::Regular);
        assert_eq!(q.make(&inner, &a, NOW).map(|a| a.ino), Some(102));
        assert_eq!(q.ops.len(), 3);
    }

    #[test]
    fn a_recall_ends_the_hold_and_lands_what_was_made_there_first() {
        let mut q = Queue::default();
        q.held.extend([5, 6]);
        // Nothing queued: the recall is answered at once.
        assert!(!q.end_holds(&[6], false));
        assert!(!q.held.contains(&6));
        q.inos.extend([100, 101]);
        q.make(&node(5, "f", FileKind::Regular), &dir_attr(0o755), NOW)
            .expect("made ahead");
        // A recall of a directory not held needs no landing.
        assert!(!q.end_holds(&[9], false));
        assert!(q.end_holds(&[5], false), "what was made in 5 lands first");
        assert!(
            q.make(&node(5, "g", FileKind::Regular), &dir_attr(0o755), NOW)
                .is_none(),
            "no longer held"
        );
        // A reset ends every hold.
        q.held.insert(7);
        assert!(q.end_holds(&[], true));
        assert!(q.held.is_empty());
    }

    #[test]
    fn a_create_still_open_when_sent_takes_its_open_along() {
        let mut q = Queue::default();
        q.held.insert(5);
        q.inos.extend([100, 101, 102]);
        for name in ["open", "closed"] {
            q.make(&node(5, name, FileKind::Regular), &dir_attr(0o755), NOW)
                .expect("made ahead");
        }
        q.make(&node(5, "d", FileKind::Directory), &dir_attr(0o755), NOW)
            .expect("made ahead");
        // "closed" was closed before the batch went out: its open never
        // reaches the server.
        *q.queued.get_mut(&101).expect("queued") = false;
        let ops = q.take_batch();
        let opens = |ops: &[QueuedOp]| -> Vec<(u64, bool)> {
            ops.iter()
                .filter_map(create_of)
                .map(|c| (c.ino, c.open))
                .collect()
        };
        let sent = opens(&ops);
        assert_eq!(sent, vec![(100, true), (101, false), (102, false)]);
        assert!(q.queued.is_empty());
        assert!(!q.idle(), "a batch on its way is waited for");
        assert_eq!(q.in_flight.iter().copied().collect::<Vec<_>>(), vec![100]);
        assert!(q.ops.is_empty());
        // The server was away: the batch goes again, before what was made
        // since, with the opens it carried.
        q.inos.push_back(103);
        q.make(&node(5, "later", FileKind::Regular), &dir_attr(0o755), NOW)
            .expect("made ahead");
        q.requeue(ops);
        assert!(q.in_flight.is_empty());
        let again = opens(&q.take_batch());
        assert_eq!(
            again,
            vec![(100, true), (101, false), (102, false), (103, true)]
        );
    }

    #[test]
    fn only_a_node_nobody_else_can_see_takes_changes_into_the_queue() {
        let mut q = Queue::default();
        q.held.extend([5, 6]);
        q.inos.extend([100, 101]);
        q.make(&node(5, "f", FileKind::Regular), &dir_attr(0o755), NOW)
            .expect("made ahead");
        q.make(&node(6, "g", FileKind::Regular), &dir_attr(0o755), NOW)
            .expect("made ahead");
        let commit = |ino| {
            QueuedOp::Commit(QueuedCommit {
                ino,
                write_end: 3,
                ..Default::default()
            })
        };
        let a = q
            .change(100, commit(100), |a| a.size = 3)
            .expect("private: queued");
        assert_eq!((a.ino, a.size), (100, 3));
        // Its attributes as the queue leaves them, for the next change.
        let a = q
            .change(100, commit(100), |a| a.version += 1)
            .expect("queued");
        assert_eq!((a.size, a.version), (3, 1));
        assert!(q.change(7, commit(7), |_| {}).is_none(), "not made here");
        assert_eq!(q.changing(), HashSet::from([5, 6, 100]));
        // The recall of 5 makes its nodes reachable: no more queueing.
        assert!(q.end_holds(&[5], false));
        assert!(q.change(100, commit(100), |_| {}).is_none());
        assert!(q.change(101, commit(101), |_| {}).is_some(), "6 still held");
        assert!(q.end_holds(&[], true));
        assert!(q.private.is_empty());
    }

    #[test]
    fn only_a_lone_non_directory_in_held_directories_is_removed_or_moved_ahead() {
        let mut q = Queue::default();
        let file = |ino, nlink| Attr {
            ino,
            kind: FileKind::Regular,
            nlink,
            ..Default::default()
        };
        let (f, g) = (Bytes::from_static(b"f"), Bytes::from_static(b"g"));
        assert!(
            q.move_name(5, &f, None, &file(40, 1), None, NOW).is_none(),
            "not held"
        );
        q.held.extend([5, 6]);
        // Another name elsewhere, or a directory: another client reaches
        // it without recalling this hold.
        assert!(q.move_name(5, &f, None, &file(40, 2), None, NOW).is_none());
        let dir = Attr {
            kind: FileKind::Directory,
            ..file(41, 1)
        };
        assert!(q.move_name(5, &f, None, &dir, None, NOW).is_none());
        assert!(
            q.move_name(5, &f, Some((9, &g)), &file(40, 1), None, NOW)
                .is_none(),
            "the target directory is not held"
        );
        assert!(
            q.move_name(5, &f, Some((6, &g)), &file(40, 1), Some(&file(42, 2)), NOW)
                .is_none(),
            "the node replaced has another name"
        );
        assert!(q.ops.is_empty());
        let gone = q
            .move_name(5, &f, None, &file(40, 1), None, NOW)
            .expect("queued");
        assert_eq!((gone.ino, gone.nlink, gone.ctime), (40, 0, NOW));
        // A node made here and moved stays private, in its new directory;
        // one replaced is no longer tracked.
        q.inos.extend([100, 101]);
        q.make(&node(5, "new", FileKind::Regular), &dir_attr(0o755), NOW)
            .expect("made ahead");
        q.make(&node(6, "old", FileKind::Regular), &dir_attr(0o755), NOW)
            .expect("made ahead");
        let new = Bytes::from_static(b"new");
        let moved = q
            .move_name(
                5,
                &new,
                Some((6, &g)),
                &file(100, 1),
                Some(&file(101, 1)),
                NOW,
            )
            .expect("queued");
        assert_eq!((moved.ino, moved.nlink), (100, 1));
        assert_eq!(q.private.get(&100).map(|n| n.parent), Some(6));
        assert!(!q.private.contains_key(&101));
        match q.ops.last() {
            Some(QueuedOp::Rename(r)) => {
                assert_eq!(
                    (r.parent, r.new_parent, r.ino, r.replaced),
                    (5, 6, 100, 101)
                );
            }
            other => panic!("not a rename: {other:?}"),
        }
        assert_eq!(q.changing(), HashSet::from([5, 6, 40, 100, 101]));
        // A recall lands them first, and ends the queueing.
        assert!(q.end_holds(&[6], false));
        assert!(q
            .move_name(5, &g, Some((6, &f)), &file(43, 1), None, NOW)
            .is_none());
    }
}
