//! What a caller asks of a volume's file system beyond a name or an inode
//! number — a node to make, attributes to set, a lock, a batch of
//! operations done ahead — and the small replies that are not attributes.
//! The SDK's own types, converted to the wire's here (see `node.rs`).

use bytes::Bytes;
use svol_proto as p;

use crate::node::{wire_chunks, Chunk, FileKind, TimeSet, Timespec};

/// A node to make in `parent`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewNode {
    pub parent: u64,
    pub name: Bytes,
    pub kind: FileKind,
    /// Permission bits (the umask applied).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// A device node's device number.
    pub rdev: u32,
    /// A symlink's target.
    pub symlink_target: Bytes,
    /// false: an existing regular file of that name is returned instead
    /// of `AlreadyExists` (`open(O_CREAT)` without `O_EXCL` racing
    /// another mount).
    pub exclusive: bool,
}

impl NewNode {
    pub(crate) fn wire(self, volume: String) -> p::CreateRequest {
        p::CreateRequest {
            volume,
            parent: self.parent,
            name: self.name,
            kind: self.kind.wire(),
            mode: self.mode,
            uid: self.uid,
            gid: self.gid,
            rdev: self.rdev,
            symlink_target: self.symlink_target,
            exclusive: self.exclusive,
        }
    }
}

/// Attributes to set on a node; `None` leaves one as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Truncates or extends the file.
    pub size: Option<u64>,
    pub atime: Option<TimeSet>,
    pub mtime: Option<TimeSet>,
    /// The fencing token of the write lock held on the file (0: none): a
    /// truncate by a holder whose lock is gone is refused.
    pub fence: u64,
    /// The caller may not keep set-user/group-ID bits (a truncate or a
    /// chown the kernel left to the file system).
    pub kill_suidgid: bool,
}

impl SetAttr {
    pub(crate) fn wire(self, volume: String, ino: u64) -> p::SetAttrRequest {
        p::SetAttrRequest {
            volume,
            ino,
            mode: self.mode,
            uid: self.uid,
            gid: self.gid,
            size: self.size,
            atime: self.atime.map(Into::into),
            mtime: self.mtime.map(Into::into),
            fence: self.fence,
            kill_suidgid: self.kill_suidgid,
        }
    }
}

/// The answer to [`crate::Volume::hold`]: whether the directory is held,
/// and the inode numbers reserved for this session's creates.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Held {
    pub held: bool,
    pub inos: Vec<u64>,
}

/// Space and inodes of a volume, as `statfs` reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatFs {
    pub total_bytes: u64,
    pub free_bytes: u64,
    pub used_bytes: u64,
    pub files: u64,
    pub free_files: u64,
}

/// A byte-range lock's kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockKind {
    Read,
    Write,
    Unlock,
}

impl LockKind {
    fn wire(self) -> i32 {
        (match self {
            Self::Read => p::LockKind::Read,
            Self::Write => p::LockKind::Write,
            Self::Unlock => p::LockKind::Unlock,
        }) as i32
    }

    fn from_wire(k: i32) -> Self {
        match p::LockKind::try_from(k) {
            Ok(p::LockKind::Read) => Self::Read,
            Ok(p::LockKind::Write) => Self::Write,
            _ => Self::Unlock,
        }
    }
}

/// Takes, tests or releases a lock on bytes `start..=end` (`u64::MAX`:
/// to the end of the file) of `ino` for lock owner `owner` (a process's
/// POSIX locks, or one open file's flock).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockRequest {
    pub ino: u64,
    pub owner: u64,
    pub kind: LockKind,
    pub start: u64,
    pub end: u64,
    pub pid: u32,
    /// Return once granted (F_SETLKW, flock without LOCK_NB).
    pub wait: bool,
    /// Report a conflicting lock, take nothing (F_GETLK).
    pub test: bool,
}

impl LockRequest {
    pub(crate) fn wire(self, volume: String) -> p::LockRequest {
        p::LockRequest {
            volume,
            ino: self.ino,
            owner: self.owner,
            kind: self.kind.wire(),
            start: self.start,
            end: self.end,
            pid: self.pid,
            wait: self.wait,
            test: self.test,
        }
    }
}

/// What a lock call did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockReply {
    /// Lock or unlock done; for a test: nothing conflicts.
    pub granted: bool,
    /// The conflicting lock when not granted: its kind, range and holder.
    pub kind: LockKind,
    pub start: u64,
    pub end: u64,
    pub pid: u32,
    /// After a grant: the file's content version, and how many
    /// invalidations this session had been sent (apply those before the
    /// locker reads).
    pub version: u64,
    pub invalidation_seq: u64,
    /// After a write-lock grant: its fencing token. After an unlock: the
    /// newest token this session still holds on the file (0: none).
    pub fence: u64,
}

impl From<p::LockReply> for LockReply {
    fn from(r: p::LockReply) -> Self {
        Self {
            granted: r.granted,
            kind: LockKind::from_wire(r.kind),
            start: r.start,
            end: r.end,
            pid: r.pid,
            version: r.version,
            invalidation_seq: r.invalidation_seq,
            fence: r.fence,
        }
    }
}

/// One operation a mount did ahead of the server in directories it holds
/// (see `Hold` in svol.proto), landed later by [`crate::Volume::apply`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueuedOp {
    Create(QueuedCreate),
    Commit(QueuedCommit),
    SetAttr(QueuedSetAttr),
    Unlink(QueuedUnlink),
    Rename(QueuedRename),
}

/// A node made with an inode number `hold` reserved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueuedCreate {
    pub parent: u64,
    pub name: Bytes,
    pub kind: FileKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u32,
    pub symlink_target: Bytes,
    pub ino: u64,
    /// When the mount made it.
    pub time: Timespec,
    /// Still open on the mount: registered as its open.
    pub open: bool,
}

/// The contents a close committed to a node made ahead, as a commit
/// would (never durable: an fsync lands the queue first).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueuedCommit {
    pub ino: u64,
    pub chunks: Vec<Chunk>,
    pub write_end: u64,
    pub time: Timespec,
    pub kill_suidgid: bool,
}

/// Attributes set on a node made ahead (never a truncate); `time` is the
/// ctime, and the time a `TimeSet::Now` stands for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueuedSetAttr {
    pub ino: u64,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub atime: Option<TimeSet>,
    pub mtime: Option<TimeSet>,
    pub time: Timespec,
}

/// A name removed in a held directory; `ino` is what the mount's listing
/// says the name is (refused if no longer).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueuedUnlink {
    pub parent: u64,
    pub name: Bytes,
    pub ino: u64,
    pub time: Timespec,
}

/// A name moved between held directories, replacing `replaced` (0:
/// nothing).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueuedRename {
    pub parent: u64,
    pub name: Bytes,
    pub new_parent: u64,
    pub new_name: Bytes,
    pub ino: u64,
    pub replaced: u64,
    pub time: Timespec,
}

impl From<QueuedOp> for p::QueuedOp {
    fn from(op: QueuedOp) -> Self {
        use p::queued_op::Op;
        let op = match op {
            QueuedOp::Create(c) => Op::Create(p::QueuedCreate {
                parent: c.parent,
                name: c.name,
                kind: c.kind.wire(),
                mode: c.mode,
                uid: c.uid,
                gid: c.gid,
                rdev: c.rdev,
                symlink_target: c.symlink_target,
                ino: c.ino,
                time: Some(c.time.into()),
                open: c.open,
            }),
            QueuedOp::Commit(c) => Op::Commit(p::QueuedCommit {
                ino: c.ino,
                chunks: wire_chunks(c.chunks),
                write_end: c.write_end,
                time: Some(c.time.into()),
                kill_suidgid: c.kill_suidgid,
            }),
            QueuedOp::SetAttr(c) => Op::SetAttr(p::QueuedSetAttr {
                ino: c.ino,
                mode: c.mode,
                uid: c.uid,
                gid: c.gid,
                atime: c.atime.map(Into::into),
                mtime: c.mtime.map(Into::into),
                time: Some(c.time.into()),
            }),
            QueuedOp::Unlink(c) => Op::Unlink(p::QueuedUnlink {
                parent: c.parent,
                name: c.name,
                ino: c.ino,
                time: Some(c.time.into()),
            }),
            QueuedOp::Rename(c) => Op::Rename(p::QueuedRename {
                parent: c.parent,
                name: c.name,
                new_parent: c.new_parent,
                new_name: c.new_name,
                ino: c.ino,
                replaced: c.replaced,
                time: Some(c.time.into()),
            }),
        };
        p::QueuedOp { op: Some(op) }
    }
}
