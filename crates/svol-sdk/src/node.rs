//! What the SDK says about the nodes of a volume: their kind, times and
//! attributes, the chunks a file's contents are cut into, and the replies
//! that carry them. These are the SDK's own types: the wire's (optional
//! times, kinds as integers) are converted here, once, so the CLI, the
//! mount and Python match on enums instead of comparing integers, and a
//! change of the protocol stops at this crate.

use bytes::Bytes;
use svol_proto as p;

/// What a node is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum FileKind {
    #[default]
    Regular,
    Directory,
    Symlink,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
}

impl FileKind {
    /// The kind a `mode_t`'s `S_IFMT` bits name (a regular file if none).
    pub fn from_mode(mode: u32) -> Self {
        match mode & libc::S_IFMT {
            libc::S_IFDIR => Self::Directory,
            libc::S_IFLNK => Self::Symlink,
            libc::S_IFIFO => Self::Fifo,
            libc::S_IFSOCK => Self::Socket,
            libc::S_IFCHR => Self::CharDevice,
            libc::S_IFBLK => Self::BlockDevice,
            _ => Self::Regular,
        }
    }

    /// "file", "dir", "symlink" or "other", as listings show it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Regular => "file",
            Self::Directory => "dir",
            Self::Symlink => "symlink",
            _ => "other",
        }
    }

    /// A kind the wire names; one this SDK does not know is a regular file
    /// (its contents are what every kind has).
    pub(crate) fn from_wire(k: i32) -> Self {
        match p::FileKind::try_from(k) {
            Ok(p::FileKind::Directory) => Self::Directory,
            Ok(p::FileKind::Symlink) => Self::Symlink,
            Ok(p::FileKind::Fifo) => Self::Fifo,
            Ok(p::FileKind::Socket) => Self::Socket,
            Ok(p::FileKind::CharDevice) => Self::CharDevice,
            Ok(p::FileKind::BlockDevice) => Self::BlockDevice,
            _ => Self::Regular,
        }
    }

    pub(crate) fn wire(self) -> i32 {
        (match self {
            Self::Regular => p::FileKind::Regular,
            Self::Directory => p::FileKind::Directory,
            Self::Symlink => p::FileKind::Symlink,
            Self::Fifo => p::FileKind::Fifo,
            Self::Socket => p::FileKind::Socket,
            Self::CharDevice => p::FileKind::CharDevice,
            Self::BlockDevice => p::FileKind::BlockDevice,
        }) as i32
    }
}

/// A point in time: seconds since the Unix epoch (negative before it)
/// and nanoseconds into that second.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timespec {
    pub sec: i64,
    pub nsec: u32,
}

impl Timespec {
    pub fn from_system(t: std::time::SystemTime) -> Self {
        use std::time::UNIX_EPOCH;
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Self {
                sec: d.as_secs() as i64,
                nsec: d.subsec_nanos(),
            },
            Err(e) => {
                let d = e.duration();
                let mut sec = -(d.as_secs() as i64);
                let mut nsec = d.subsec_nanos();
                if nsec > 0 {
                    sec -= 1;
                    nsec = 1_000_000_000 - nsec;
                }
                Self { sec, nsec }
            }
        }
    }

    /// This instant, by this machine's clock.
    pub fn now() -> Self {
        Self::from_system(std::time::SystemTime::now())
    }

    pub fn to_system(self) -> std::time::SystemTime {
        use std::time::{Duration, UNIX_EPOCH};
        if self.sec >= 0 {
            UNIX_EPOCH + Duration::new(self.sec as u64, self.nsec)
        } else {
            UNIX_EPOCH - Duration::new(self.sec.unsigned_abs(), 0) + Duration::new(0, self.nsec)
        }
    }
}

impl From<p::Timespec> for Timespec {
    fn from(t: p::Timespec) -> Self {
        Self {
            sec: t.sec,
            nsec: t.nsec,
        }
    }
}

impl From<Timespec> for p::Timespec {
    fn from(t: Timespec) -> Self {
        Self {
            sec: t.sec,
            nsec: t.nsec,
        }
    }
}

/// A time to set: the server's now, or a given one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeSet {
    Now,
    At(Timespec),
}

impl From<TimeSet> for p::TimeSet {
    fn from(t: TimeSet) -> Self {
        Self {
            set: Some(match t {
                TimeSet::Now => p::time_set::Set::Now(true),
                TimeSet::At(at) => p::time_set::Set::At(at.into()),
            }),
        }
    }
}

/// A node's attributes. `version` bumps on every change of its contents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Attr {
    pub ino: u64,
    pub kind: FileKind,
    /// Permission bits, set-ID and sticky bits included.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub size: u64,
    pub atime: Timespec,
    pub mtime: Timespec,
    pub ctime: Timespec,
    pub rdev: u32,
    pub version: u64,
}

impl Attr {
    pub fn is_dir(&self) -> bool {
        self.kind == FileKind::Directory
    }
}

impl From<p::Attr> for Attr {
    fn from(a: p::Attr) -> Self {
        Self {
            ino: a.ino,
            kind: FileKind::from_wire(a.kind),
            mode: a.mode,
            uid: a.uid,
            gid: a.gid,
            nlink: a.nlink,
            size: a.size,
            atime: a.atime.unwrap_or_default().into(),
            mtime: a.mtime.unwrap_or_default().into(),
            ctime: a.ctime.unwrap_or_default().into(),
            rdev: a.rdev,
            version: a.version,
        }
    }
}

impl From<Attr> for p::Attr {
    fn from(a: Attr) -> Self {
        Self {
            ino: a.ino,
            kind: a.kind.wire(),
            mode: a.mode,
            uid: a.uid,
            gid: a.gid,
            nlink: a.nlink,
            size: a.size,
            atime: Some(a.atime.into()),
            mtime: Some(a.mtime.into()),
            ctime: Some(a.ctime.into()),
            rdev: a.rdev,
            version: a.version,
        }
    }
}

pub(crate) fn attrs(v: Vec<p::Attr>) -> Vec<Attr> {
    v.into_iter().map(Attr::from).collect()
}

/// A wire reply's attributes, which every such reply carries.
pub(crate) fn attr(a: Option<p::Attr>) -> Attr {
    a.map(Attr::from).unwrap_or_default()
}

/// One fixed-size piece of a file ([`p::CHUNK_SIZE`] bytes but the last):
/// chunk `index` covers `[index × CHUNK_SIZE, + len)` and is either the
/// hash of a stored block or, when small, the bytes themselves. Bytes past
/// `len`, up to the file's size, are zero.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chunk {
    pub index: u64,
    pub len: u32,
    /// The block's hash; empty for an inline chunk.
    pub hash: Bytes,
    pub inline_data: Bytes,
}

impl From<p::Chunk> for Chunk {
    fn from(c: p::Chunk) -> Self {
        Self {
            index: c.index,
            len: c.len,
            hash: c.hash,
            inline_data: c.inline_data,
        }
    }
}

impl From<Chunk> for p::Chunk {
    fn from(c: Chunk) -> Self {
        Self {
            index: c.index,
            len: c.len,
            hash: c.hash,
            inline_data: c.inline_data,
        }
    }
}

pub(crate) fn chunks(v: Vec<p::Chunk>) -> Vec<Chunk> {
    v.into_iter().map(Chunk::from).collect()
}

pub(crate) fn wire_chunks(v: Vec<Chunk>) -> Vec<p::Chunk> {
    v.into_iter().map(p::Chunk::from).collect()
}

/// A node made or linked, and the directories (and moved node) the call
/// changed, as it left them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EntryReply {
    pub attr: Attr,
    pub touched: Vec<Attr>,
}

impl From<p::EntryReply> for EntryReply {
    fn from(r: p::EntryReply) -> Self {
        Self {
            attr: attr(r.attr),
            touched: attrs(r.touched),
        }
    }
}

/// A small file's attributes and whole contents, read together (the
/// contents are those of `attr.version`); not an open.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Peeked {
    pub attr: Attr,
    pub chunks: Vec<Chunk>,
}

impl From<p::Peeked> for Peeked {
    fn from(pk: p::Peeked) -> Self {
        Self {
            attr: attr(pk.attr),
            chunks: chunks(pk.chunks),
        }
    }
}

/// An open file: its attributes and chunks as of the open, the nodes the
/// open changed, and the small files it peeked at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Opened {
    pub attr: Attr,
    pub chunks: Vec<Chunk>,
    pub touched: Vec<Attr>,
    pub peeked: Vec<Peeked>,
}

impl From<p::OpenResponse> for Opened {
    fn from(r: p::OpenResponse) -> Self {
        Self {
            attr: attr(r.attr),
            chunks: chunks(r.chunks),
            touched: attrs(r.touched),
            peeked: r.peeked.into_iter().map(Peeked::from).collect(),
        }
    }
}

/// One entry of a directory page; `cookie` resumes the listing after it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirEntry {
    pub name: Bytes,
    pub cookie: u64,
    pub attr: Attr,
}

/// A page of a directory. `watching`: the watch asked for holds, this
/// page's entries included; `seq`: the session's invalidations sent before
/// they were (one of them may name an entry of this page changed since).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirPage {
    pub entries: Vec<DirEntry>,
    pub eof: bool,
    pub watching: bool,
    pub seq: u64,
}

impl From<p::ReadDirResponse> for DirPage {
    fn from(r: p::ReadDirResponse) -> Self {
        Self {
            entries: r.entries.into_iter().map(DirEntry::from).collect(),
            eof: r.eof,
            watching: r.watching,
            seq: r.seq,
        }
    }
}

impl From<p::DirEntry> for DirEntry {
    fn from(e: p::DirEntry) -> Self {
        Self {
            name: e.name,
            cookie: e.cookie,
            attr: attr(e.attr),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn times_before_and_after_the_epoch_survive_the_round_trip() {
        for t in [
            UNIX_EPOCH + Duration::new(1_000_000_000, 123),
            UNIX_EPOCH - Duration::new(5, 250_000_000),
            UNIX_EPOCH - Duration::new(7, 0),
            UNIX_EPOCH,
        ] {
            let ts = Timespec::from_system(t);
            assert!(ts.nsec < 1_000_000_000, "{ts:?}");
            assert_eq!(ts.to_system(), t, "{ts:?}");
        }
        let before = Timespec::from_system(UNIX_EPOCH - Duration::new(5, 250_000_000));
        assert_eq!((before.sec, before.nsec), (-6, 750_000_000));
    }

    #[test]
    fn wire_attributes_convert_both_ways_and_unknown_kinds_read_as_files() {
        let ts = |sec| Some(p::Timespec { sec, nsec: 9 });
        let wire = p::Attr {
            ino: 7,
            kind: p::FileKind::Symlink as i32,
            mode: 0o4755,
            uid: 1,
            gid: 2,
            nlink: 3,
            size: 4,
            atime: ts(-5),
            mtime: ts(6),
            ctime: ts(7),
            rdev: 8,
            version: 9,
        };
        let a = Attr::from(wire);
        assert_eq!(a.kind, FileKind::Symlink);
        assert_eq!((a.atime.sec, a.mtime.sec, a.ctime.nsec), (-5, 6, 9));
        assert_eq!(p::Attr::from(a), wire);
        let odd = Attr::from(p::Attr {
            kind: 99,
            atime: None,
            ..wire
        });
        assert_eq!(
            (odd.kind, odd.atime),
            (FileKind::Regular, Timespec::default())
        );
        for (mode, kind) in [
            (libc::S_IFDIR | 0o755, FileKind::Directory),
            (libc::S_IFLNK, FileKind::Symlink),
            (libc::S_IFIFO, FileKind::Fifo),
            (libc::S_IFSOCK, FileKind::Socket),
            (libc::S_IFCHR, FileKind::CharDevice),
            (libc::S_IFBLK, FileKind::BlockDevice),
            (libc::S_IFREG | 0o644, FileKind::Regular),
        ] {
            assert_eq!(FileKind::from_mode(mode), kind);
            assert_eq!(FileKind::from_wire(kind.wire()), kind);
        }
    }
}
