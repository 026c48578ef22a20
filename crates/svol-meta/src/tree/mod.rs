//! The rules of the file tree, written once for every backend: names and
//! links (what may replace what, nlink, times), attributes and truncation,
//! contents and block references, xattrs, open files, locks and fencing,
//! and the change set each change returns. A backend implements only
//! [`Tx`], the storage primitives of one transaction; it never implements
//! rename again.

mod attrs;
mod changes;
mod content;
mod locks;
mod names;
mod queued;
mod refs;
mod trash;

pub(crate) use attrs::*;
pub(crate) use changes::*;
pub(crate) use content::*;
pub(crate) use locks::*;
pub(crate) use names::*;
pub(crate) use queued::*;
pub(crate) use refs::*;
pub(crate) use trash::*;

use crate::types::*;
use crate::Result;

/// How a change sets an inode's link count.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Nlink {
    Add(i64),
    Set(u32),
}

/// Fields of an inode to change (the others stay).
#[derive(Debug, Clone, Default)]
pub(crate) struct InodeUpdate {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub nlink: Option<Nlink>,
    pub atime: Option<Timespec>,
    pub mtime: Option<Timespec>,
    pub ctime: Option<Timespec>,
    /// Bump the content version.
    pub new_version: bool,
}

/// A lock as stored: its row, its range and the fencing token of its grant.
#[derive(Debug, Clone)]
pub(crate) struct HeldLock {
    pub id: i64,
    pub range: LockRange,
    pub fence: u64,
}

/// The storage primitives of one metadata transaction. Each does one small
/// thing to the stored rows and knows nothing of POSIX; the rules above
/// decide which to call. Every method sees the transaction's own writes.
pub(crate) trait Tx {
    // ---- inodes ----
    /// The inode, if it exists and belongs to volume `vol`.
    fn attr(&self, vol: Ino, ino: Ino) -> Result<Option<Attr>>;
    /// A new inode of `vol`: all times `now`, version 0, size 0 (a
    /// symlink: its target's length, the target stored with it); numbered
    /// `ino` if given (a reserved number), else the next free one.
    fn insert_inode(
        &self,
        vol: Ino,
        node: &NewNode,
        nlink: u32,
        now: Timespec,
        ino: Option<Ino>,
    ) -> Result<Ino>;
    /// `n` inode numbers no insert will take by itself, for session
    /// `session` to create with; each may be used once, by it only.
    fn reserve_inos(&self, session: &str, n: usize) -> Result<Vec<Ino>>;
    /// Uses up a number `session` reserved; false if it holds no such one.
    fn take_reserved(&self, session: &str, ino: Ino) -> Result<bool>;
    fn update_inode(&self, ino: Ino, u: &InodeUpdate) -> Result<()>;
    /// Deletes the inode and its xattrs (its chunks go first, by the rules).
    fn delete_inode(&self, ino: Ino) -> Result<()>;
    /// The link count of any inode (None: no such inode).
    fn nlink(&self, ino: Ino) -> Result<Option<u32>>;
    fn symlink_target(&self, ino: Ino) -> Result<Vec<u8>>;
    /// The workspace of the volume `vol` (by its root inode).
    fn volume_workspace(&self, vol: Ino) -> Result<WorkspaceId>;
    /// The workspace whose volume holds inode `ino`.
    fn inode_workspace(&self, ino: Ino) -> Result<WorkspaceId>;

    // ---- directory entries ----
    fn child(&self, parent: Ino, name: &[u8]) -> Result<Option<Ino>>;
    fn insert_entry(&self, parent: Ino, name: &[u8], ino: Ino) -> Result<()>;
    fn delete_entry(&self, parent: Ino, name: &[u8]) -> Result<()>;
    /// Points an existing name at another inode.
    fn repoint_entry(&self, parent: Ino, name: &[u8], ino: Ino) -> Result<()>;
    /// Moves a name (keeping its place in listings).
    fn move_entry(&self, parent: Ino, name: &[u8], new_parent: Ino, new_name: &[u8]) -> Result<()>;
    fn has_entries(&self, dir: Ino) -> Result<bool>;
    /// The directory holding directory `dir` (None for a root).
    fn parent_of(&self, dir: Ino) -> Result<Option<Ino>>;
    /// The directory and name of one entry naming `ino`.
    fn entry_of(&self, ino: Ino) -> Result<Option<(Ino, Vec<u8>)>>;
    /// Entries after cookie `after`, in cookie order, with their attributes.
    fn entries(&self, dir: Ino, after: u64, limit: usize) -> Result<Vec<DirEntry>>;

    // ---- chunk maps ----
    fn chunks(&self, ino: Ino) -> Result<Vec<Chunk>>;
    fn chunk(&self, ino: Ino, index: u64) -> Result<Option<Chunk>>;
    /// Inserts or replaces chunk `c.index`.
    fn put_chunk(&self, ino: Ino, c: &Chunk) -> Result<()>;
    /// Refuses `new` chunks for `ino` of `vol` past a byte quota (before
    /// any of them is written).
    fn check_commit_quota(&self, vol: Ino, ino: Ino, new: &[Chunk]) -> Result<()>;
    /// Deletes chunks `first..`; returns the blocks they referenced.
    fn remove_chunks_from(&self, ino: Ino, first: u64) -> Result<Vec<BlockId>>;
    /// Shortens chunk `index` to `len` bytes (inline data is cut too).
    fn shorten_chunk(&self, ino: Ino, index: u64, len: u32) -> Result<()>;

    // ---- block reference counts ----
    /// Adds `n` references to a block `ws` holds; false if it holds no
    /// such block (or it is being deleted).
    fn add_block_refs(&self, ws: WorkspaceId, hash: &BlockId, n: i64) -> Result<bool>;
    /// Drops `n` references; true when none remain (the block then waits
    /// for the reaper).
    fn drop_block_refs(&self, ws: WorkspaceId, hash: &BlockId, n: i64) -> Result<bool>;

    // ---- xattrs ----
    fn xattr(&self, ino: Ino, name: &[u8]) -> Result<Option<Vec<u8>>>;
    fn put_xattr(&self, ino: Ino, name: &[u8], value: &[u8]) -> Result<()>;
    /// False if there was none.
    fn delete_xattr(&self, ino: Ino, name: &[u8]) -> Result<bool>;
    fn xattr_names(&self, ino: Ino) -> Result<Vec<Vec<u8>>>;
    fn copy_xattrs(&self, from: Ino, to: Ino) -> Result<()>;

    // ---- open files ----
    fn add_open(&self, session: &str, ino: Ino) -> Result<()>;
    fn drop_open(&self, session: &str, ino: Ino) -> Result<()>;
    fn is_open(&self, ino: Ino) -> Result<bool>;

    // ---- leases, locks, the feed ----
    /// When session `id`'s lease runs out (None: no such session).
    fn session_expires(&self, id: &str) -> Result<Option<i64>>;
    fn locks_on(&self, ino: Ino) -> Result<Vec<HeldLock>>;
    fn insert_lock(&self, ino: Ino, range: &LockRange, fence: u64) -> Result<()>;
    fn delete_lock(&self, id: i64) -> Result<()>;
    /// The next fencing token of `ino` (rising, never reused).
    fn next_fence(&self, ino: Ino) -> Result<u64>;
    /// Waiters on `ino` queued before `ticket` (all, for None).
    fn waiters_before(&self, ino: Ino, ticket: Option<u64>) -> Result<Vec<LockRange>>;
    fn count_waiters(&self, ino: Ino) -> Result<usize>;
    /// Queues a waiter; returns its ticket (rising).
    fn insert_waiter(&self, ino: Ino, range: &LockRange) -> Result<u64>;
    /// Removes a waiter; returns the file it waited on.
    fn delete_waiter(&self, ticket: u64) -> Result<Option<Ino>>;
    /// Drops every lock and waiter of a session; returns the files.
    fn drop_session_locks(&self, session: &str) -> Result<Vec<Ino>>;
    /// Appends an entry to the change feed; returns its position.
    // ---- file trash ----
    /// How long volume `vol` keeps removed files, in ms (0: not at all).
    fn file_trash_retention(&self, vol: Ino) -> Result<i64>;
    fn insert_trashed(
        &self,
        vol: Ino,
        ino: Ino,
        path: &[u8],
        at_ms: i64,
        purge_ms: i64,
    ) -> Result<()>;
    fn is_trashed(&self, ino: Ino) -> Result<bool>;
    fn delete_trashed(&self, ino: Ino) -> Result<()>;

    fn append_feed(&self, e: &FeedEntry) -> Result<u64>;
    /// The newest feed position.
    fn feed_head(&self) -> Result<u64>;
}
