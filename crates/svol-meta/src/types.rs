use std::time::{SystemTime, UNIX_EPOCH};

/// Inode number, unique across the whole store (not per volume).
pub type Ino = u64;
/// BLAKE3 hash of a block.
pub type BlockId = [u8; 32];
/// Internal key of a workspace.
pub type WorkspaceId = i64;

/// Bytes of a file chunk (see the wire protocol's `Chunk`).
pub const CHUNK_SIZE: u64 = 4 << 20;
pub const NAME_MAX: usize = 255;
/// Largest file size: sizes are stored as signed 64-bit integers (and the
/// kernel's own limit is the same).
pub const MAX_FILE_SIZE: u64 = i64::MAX as u64;
pub const XATTR_NAME_MAX: usize = 255;
pub const XATTR_VALUE_MAX: usize = 64 << 10;
pub const SYMLINK_MAX: usize = 4095;
pub const ROOT_MODE: u32 = 0o755;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Regular = 1,
    Directory = 2,
    Symlink = 3,
    Fifo = 4,
    Socket = 5,
    CharDevice = 6,
    BlockDevice = 7,
}

impl FileKind {
    pub fn from_i64(v: i64) -> Option<Self> {
        Some(match v {
            1 => Self::Regular,
            2 => Self::Directory,
            3 => Self::Symlink,
            4 => Self::Fifo,
            5 => Self::Socket,
            6 => Self::CharDevice,
            7 => Self::BlockDevice,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Timespec {
    pub sec: i64,
    pub nsec: u32,
}

impl Timespec {
    pub fn now() -> Self {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            sec: d.as_secs() as i64,
            nsec: d.subsec_nanos(),
        }
    }

    /// Milliseconds since the epoch.
    pub fn ms(&self) -> i64 {
        self.sec * 1000 + (self.nsec / 1_000_000) as i64
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    pub ino: Ino,
    pub kind: FileKind,
    /// Permission bits including suid, sgid and sticky (no type bits).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub size: u64,
    pub atime: Timespec,
    pub mtime: Timespec,
    pub ctime: Timespec,
    pub rdev: u32,
    /// Bumped on every change of the file's contents.
    pub version: u64,
}

/// What to create.
#[derive(Debug, Clone)]
pub struct NewNode {
    pub kind: FileKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u32,
    pub target: Vec<u8>,
}

/// A create a mount made ahead of the server (see
/// [`crate::MetaBackend::apply`]): under its hold on `parent` it already
/// told its application the node exists, as inode `ino` (reserved for its
/// session) made at `now` (the mount's clock).
#[derive(Debug, Clone)]
pub struct QueuedCreate {
    pub parent: Ino,
    pub name: Vec<u8>,
    pub node: NewNode,
    pub ino: Ino,
    pub now: Timespec,
    /// Still open on the mount: registered as an open of its session.
    pub open: bool,
}

/// A change a mount made ahead of the server, applied in order with the
/// others of its batch (see [`crate::MetaBackend::apply`]). Besides
/// creates, a mount queues what it did to a node it made ahead while
/// nobody else can see it: the contents its close committed, and the
/// attributes set on it (tar's `fchown`, `fchmod`, `futimens`).
#[derive(Debug, Clone)]
pub enum Queued {
    Create(QueuedCreate),
    /// As `commit` (not durable, no fence), at the mount's time `now`.
    Commit {
        ino: Ino,
        chunks: Vec<Chunk>,
        write_end: u64,
        now: Timespec,
        kill_suidgid: bool,
    },
    /// As `setattr`, without a size (a truncate is never queued).
    SetAttr {
        ino: Ino,
        set: SetAttr,
        now: Timespec,
    },
    /// As `unlink` of a non-directory, refused unless `name` still names
    /// `ino` (what the mount's listing said when it answered).
    Unlink {
        parent: Ino,
        name: Vec<u8>,
        ino: Ino,
        now: Timespec,
    },
    /// As `rename` of a non-directory, refused unless `name` still names
    /// `ino` and `new_name` still names `replaced` (None: no entry).
    Rename {
        parent: Ino,
        name: Vec<u8>,
        new_parent: Ino,
        new_name: Vec<u8>,
        ino: Ino,
        replaced: Option<Ino>,
        now: Timespec,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSet {
    Now,
    At(Timespec),
}

#[derive(Debug, Clone, Default)]
pub struct SetAttr {
    /// Clear S_ISUID, and S_ISGID if group-executable (non-directories),
    /// after `mode` if both are given.
    pub kill_suidgid: bool,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<TimeSet>,
    pub mtime: Option<TimeSet>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkData {
    Block(BlockId),
    Inline(Vec<u8>),
}

/// Chunk `index` of a file: bytes `[index*CHUNK_SIZE, index*CHUNK_SIZE+len)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub index: u64,
    pub len: u32,
    pub data: ChunkData,
}

#[derive(Debug, Clone)]
pub struct DirEntry {
    pub name: Vec<u8>,
    /// Resume a listing after this entry by passing it as `after`.
    pub cookie: u64,
    pub attr: Attr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RenameFlags {
    pub noreplace: bool,
    pub exchange: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XattrMode {
    Any,
    Create,
    Replace,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// Public id (`vo-…`), what users and the wire see.
    pub id: String,
    pub name: String,
    pub workspace: WorkspaceId,
    pub created: i64,
    pub root: Ino,
    /// Public id of the app that owns the volume: for a persisted volume
    /// its own app of kind `Volume`, for an ephemeral one the app it lives in.
    pub app: String,
    /// Deleted with its app unless persisted.
    pub ephemeral: bool,
    /// For a snapshot (read-only), the public id of its volume; else "".
    pub snapshot_of: String,
    /// Quotas (0: none): bytes after dedup, inodes of every kind.
    pub max_bytes: u64,
    pub max_files: u64,
    /// How long removed files are kept in its trash, in ms (0: not kept).
    pub file_trash_ms: i64,
}

/// A volume's and its workspace's quotas (0: none) and usage (bytes after
/// dedup, inodes of every kind), from counters kept with every change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QuotaView {
    pub inodes: u64,
    pub stored: u64,
    pub max_files: u64,
    pub max_bytes: u64,
    pub ws_inodes: u64,
    pub ws_stored: u64,
    pub ws_max_files: u64,
    pub ws_max_bytes: u64,
}

impl QuotaView {
    pub fn any(&self) -> bool {
        self.max_files + self.max_bytes + self.ws_max_files + self.ws_max_bytes > 0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VolumeUsage {
    /// Sizes of the volume's regular files (what users wrote), not
    /// counting those in its file trash.
    pub bytes: u64,
    pub files: u64,
    /// Regular files in the volume's file trash, and their sizes (their
    /// blocks are in `stored_bytes` until they are purged).
    pub trash_files: u64,
    pub trash_bytes: u64,
    /// After dedup: each distinct block the volume references once (even
    /// if other volumes share it), plus data held inline.
    pub stored_bytes: u64,
    /// Inodes of every kind but the root (what an inode quota limits).
    pub inodes: u64,
}

/// How a deleted volume goes: to the trash for `keep_ms` from `now_ms`,
/// or (`keep_ms` 0) at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retire {
    pub now_ms: i64,
    pub keep_ms: i64,
}

impl Retire {
    /// Deleted at once, nothing kept.
    pub const NOW: Retire = Retire {
        now_ms: 0,
        keep_ms: 0,
    };
}

/// A file in a volume's file trash: it lost its last name at `deleted_ms`
/// and is dropped at `purge_ms` unless restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedFile {
    pub id: i64,
    pub ino: Ino,
    /// The path it had, from the volume's root, without a leading slash.
    pub path: Vec<u8>,
    pub kind: FileKind,
    pub size: u64,
    pub deleted_ms: i64,
    pub purge_ms: i64,
}

/// Files restored from a volume's trash: (the path each had, the path it
/// has now).
pub type Restored = Vec<(Vec<u8>, Vec<u8>)>;

/// Which files of a volume's trash: the one entry `id`, or every one at
/// `path` or below it (empty: all) deleted at or after `since_ms`.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeletedSelection<'a> {
    pub path: &'a [u8],
    pub since_ms: i64,
    pub id: Option<i64>,
}

impl DeletedSelection<'_> {
    pub fn picks(&self, f: &DeletedFile) -> bool {
        if let Some(id) = self.id {
            return f.id == id;
        }
        f.deleted_ms >= self.since_ms && under(&f.path, self.path)
    }
}

/// Is `path` the path `top` or below it (every path is below "")?
pub fn under(path: &[u8], top: &[u8]) -> bool {
    let top = top.strip_suffix(b"/").unwrap_or(top);
    top.is_empty() || path == top || (path.starts_with(top) && path.get(top.len()) == Some(&b'/'))
}

/// A volume in its workspace's trash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trashed {
    pub root: Ino,
    pub id: String,
    pub workspace: WorkspaceId,
    /// The name it had (`vol@snap` for a snapshot).
    pub name: String,
    pub created: i64,
    pub ephemeral: bool,
    /// For a snapshot, the id of its volume; else "".
    pub snapshot_of: String,
    pub deleted_ms: i64,
    /// When its retention ends and it is dropped.
    pub purge_ms: i64,
}

/// What to drop from the trash.
#[derive(Debug, Clone, Copy)]
pub enum Purge<'a> {
    /// One volume (by id) of a workspace, with its snapshots.
    One(WorkspaceId, &'a str),
    /// A workspace's whole trash.
    Workspace(WorkspaceId),
    /// Whatever's retention ended at this time (ms), a batch at a time.
    Expired(i64),
}

/// One workspace's share of the store, for an admin's view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WorkspaceUsage {
    pub volumes: u64,
    pub running_apps: u64,
    pub files: u64,
    pub logical_bytes: u64,
    /// The workspace's blocks (each once) plus its inline data.
    pub stored_bytes: u64,
    pub sessions: u64,
    /// Inodes of its volumes (what `max_files` limits) and its quotas.
    pub inodes: u64,
    pub max_bytes: u64,
    pub max_files: u64,
}

/// What the whole store holds now, for the server's metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub volumes: u64,
    /// Sizes of every regular file (what users wrote, before dedup).
    pub logical_bytes: u64,
    /// Blocks kept (referenced or waiting to be freed) and their bytes:
    /// what is stored after dedup.
    pub blocks: u64,
    pub block_bytes: u64,
    pub sessions: u64,
    pub locks_held: u64,
    pub lock_waiters: u64,
    /// The newest change-feed sequence number.
    pub feed_head: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    pub id: WorkspaceId,
    pub name: String,
    /// Unix seconds.
    pub created: i64,
}

/// A block as the metadata store counts it: owned by the workspace that
/// uploaded it. Files reference blocks of their own workspace only, so one
/// workspace can neither read nor probe another's blocks by hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockRef {
    pub workspace: WorkspaceId,
    pub hash: BlockId,
}

/// Blocks whose last reference went away in an operation. The caller must
/// hand them to the reaper (after deleting nothing itself): a block is
/// deleted only by `mark_block` → delete the bytes → `drop_block`, which
/// re-checks the count.
pub type Freed = Vec<BlockRef>;

/// Who makes a change and when. A mount's session is checked inside the
/// change's own transaction (an expired lease writes nothing), and the
/// change feed records it as the origin so its own invalidations are not
/// pushed back to it.
#[derive(Debug, Clone, Copy)]
pub struct Cx<'a> {
    pub now: Timespec,
    /// The mount session acting; "" for a one-shot client (CLI, SDK).
    pub session: &'a str,
    /// The fencing token of the write lock the writer holds on the inode it
    /// writes (commit, truncate); 0 when it holds none. A token whose lock
    /// is gone is refused with `Fenced`.
    pub fence: u64,
    /// The writer may not keep set-user/group-ID bits (see
    /// `SetAttr::kill_suidgid`): a commit clears them.
    pub kill_suidgid: bool,
}

impl Cx<'static> {
    /// A change by a one-shot client at `now`.
    pub fn at(now: Timespec) -> Self {
        Self {
            now,
            session: "",
            fence: 0,
            kill_suidgid: false,
        }
    }
}

impl<'a> Cx<'a> {
    pub fn by(now: Timespec, session: &'a str) -> Self {
        Self {
            now,
            session,
            fence: 0,
            kill_suidgid: false,
        }
    }

    pub fn killing_suidgid(self, kill_suidgid: bool) -> Self {
        Self {
            kill_suidgid,
            ..self
        }
    }

    pub fn fenced(self, fence: u64) -> Self {
        Self { fence, ..self }
    }

    pub fn now_ms(&self) -> i64 {
        self.now.ms()
    }
}

/// What one transaction changed, as read inside it: the new attributes of
/// the inodes it touched, the names it added or removed, the blocks whose
/// last reference went away and the volumes it deleted. The server answers
/// from it (no re-query after the fact) and the change feed carries it to
/// every other mount.
#[derive(Debug, Clone, Default)]
pub struct ChangeSet {
    /// Root of the volume changed (0: none).
    pub volume: Ino,
    /// Touched inodes that still exist, as they are now.
    pub attrs: Vec<Attr>,
    /// Touched inodes that no longer exist.
    pub gone: Vec<Ino>,
    /// Inodes the change created (nobody else can have them cached).
    pub created: Vec<Ino>,
    /// Directory entries added, removed or repointed: (parent, name).
    pub entries: Vec<(Ino, Vec<u8>)>,
    /// Inodes whose locks were released (their waiters may go now).
    pub unlocked: Vec<Ino>,
    pub freed: Freed,
    /// Roots of volumes deleted.
    pub deleted_volumes: Vec<Ino>,
    /// Position of the change in the feed (0: nothing for other mounts).
    pub feed: u64,
    /// The whole contents of small files the change wrote, where they are
    /// all inline (for mounts that list them; not in the feed).
    pub contents: Vec<(Ino, Vec<Chunk>)>,
}

impl ChangeSet {
    /// The attributes of `ino` after the change, if it still exists.
    pub fn attr(&self, ino: Ino) -> Option<&Attr> {
        self.attrs.iter().find(|a| a.ino == ino)
    }
}

/// A value and what its transaction changed.
#[derive(Debug, Clone, Default)]
pub struct Outcome<T> {
    pub value: T,
    pub changes: ChangeSet,
}

impl<T> Outcome<T> {
    pub fn new(value: T, freed: Freed) -> Self {
        Self {
            value,
            changes: ChangeSet {
                freed,
                ..Default::default()
            },
        }
    }
}

/// One committed change as the feed records it, for every server to push
/// to its own sessions of `volume`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedEntry {
    /// Rises by one per entry (gaps only where entries were trimmed).
    pub seq: u64,
    pub volume: Ino,
    /// The session that made the change ("" none): it is not told.
    pub origin: String,
    pub inodes: Vec<Ino>,
    pub entries: Vec<(Ino, Vec<u8>)>,
    pub unlocked: Vec<Ino>,
    /// The volume itself was deleted: its sessions end.
    pub volume_deleted: bool,
}

/// Entries of the feed after a position.
#[derive(Debug, Clone, Default)]
pub struct FeedPage {
    pub entries: Vec<FeedEntry>,
    /// Entries after the asked position were trimmed before they were
    /// read: whoever tails must assume anything changed.
    pub gap: bool,
    /// The newest position at the time of reading.
    pub head: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    Read,
    Write,
}

/// A byte-range lock (fcntl, or flock as the whole file) held or wanted by
/// `owner` (the kernel's lock owner) on one mount `session`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockRange {
    pub session: String,
    pub owner: u64,
    pub kind: LockKind,
    pub start: u64,
    /// Inclusive; to the end of the file is i64::MAX (the kernel's
    /// OFFSET_MAX; a larger end is stored as that).
    pub end: u64,
    pub pid: u32,
}

impl LockRange {
    pub fn overlaps(&self, start: u64, end: u64) -> bool {
        self.start <= end && start <= self.end
    }

    /// Would this lock block `want`?
    pub fn conflicts(&self, want: &LockRange) -> bool {
        (self.session != want.session || self.owner != want.owner)
            && self.overlaps(want.start, want.end)
            && (self.kind == LockKind::Write || want.kind == LockKind::Write)
    }
}

/// How a lock request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockOutcome {
    /// Taken. `fence`: the grant's fencing token (rises per inode; a write
    /// from the holder presents it). `feed`: the feed position the holder
    /// must have applied before it trusts its caches. `version`: the
    /// file's content version now.
    Granted { fence: u64, feed: u64, version: u64 },
    /// Blocked by this lock (or, for a queued waiter, by an earlier one).
    Conflict(LockRange),
    /// Too many locks or waiters on the file (ENOLCK).
    TooMany,
}

/// A session as `resume_session` and `renew_session` leave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// Rises each time the session is resumed; a stream of an older
    /// generation can no longer renew it.
    pub generation: u64,
    pub expires_ms: i64,
}

/// Is `name` acceptable as one path component?
pub fn check_name(name: &[u8]) -> crate::Result<()> {
    if name.is_empty() || name == b"." || name == b".." {
        return Err(crate::MetaError::InvalidArgument(format!(
            "bad name {:?}",
            String::from_utf8_lossy(name)
        )));
    }
    if name.len() > NAME_MAX {
        return Err(crate::MetaError::NameTooLong);
    }
    if name.contains(&b'/') || name.contains(&0) {
        return Err(crate::MetaError::InvalidArgument(format!(
            "name {:?} contains '/' or NUL",
            String::from_utf8_lossy(name)
        )));
    }
    Ok(())
}
