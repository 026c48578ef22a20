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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSet {
    Now,
    At(Timespec),
}

#[derive(Debug, Clone, Default)]
pub struct SetAttr {
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VolumeUsage {
    pub bytes: u64,
    pub files: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    pub id: WorkspaceId,
    pub name: String,
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

/// Outcome of an operation that may drop references to blocks.
#[derive(Debug, Clone, Default)]
pub struct Outcome<T> {
    pub value: T,
    pub freed: Freed,
}

impl<T> Outcome<T> {
    pub fn new(value: T, freed: Freed) -> Self {
        Self { value, freed }
    }
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
