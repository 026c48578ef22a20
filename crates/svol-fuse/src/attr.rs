//! Wire attributes to kernel attributes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{FileAttr, FileType, INodeNo};
use svol_proto as p;

pub(crate) fn kind(k: i32) -> FileType {
    match p::FileKind::try_from(k).unwrap_or(p::FileKind::Regular) {
        p::FileKind::Directory => FileType::Directory,
        p::FileKind::Symlink => FileType::Symlink,
        p::FileKind::Fifo => FileType::NamedPipe,
        p::FileKind::Socket => FileType::Socket,
        p::FileKind::CharDevice => FileType::CharDevice,
        p::FileKind::BlockDevice => FileType::BlockDevice,
        _ => FileType::RegularFile,
    }
}

pub(crate) fn kind_of_mode(mode: u32) -> p::FileKind {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => p::FileKind::Directory,
        libc::S_IFLNK => p::FileKind::Symlink,
        libc::S_IFIFO => p::FileKind::Fifo,
        libc::S_IFSOCK => p::FileKind::Socket,
        libc::S_IFCHR => p::FileKind::CharDevice,
        libc::S_IFBLK => p::FileKind::BlockDevice,
        _ => p::FileKind::Regular,
    }
}

fn time(t: &Option<p::Timespec>) -> SystemTime {
    match t {
        Some(t) if t.sec >= 0 => UNIX_EPOCH + Duration::new(t.sec as u64, t.nsec),
        Some(t) => UNIX_EPOCH - Duration::new(t.sec.unsigned_abs(), 0) + Duration::new(0, t.nsec),
        None => UNIX_EPOCH,
    }
}

pub(crate) fn to_ts(t: SystemTime) -> p::Timespec {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => p::Timespec {
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
            p::Timespec { sec, nsec }
        }
    }
}

pub(crate) fn file_attr(a: &p::Attr, ino: INodeNo, size: u64) -> FileAttr {
    FileAttr {
        ino,
        size,
        blocks: size.div_ceil(512),
        atime: time(&a.atime),
        mtime: time(&a.mtime),
        ctime: time(&a.ctime),
        crtime: time(&a.ctime),
        kind: kind(a.kind),
        perm: (a.mode & 0o7777) as u16,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev,
        blksize: 1 << 20,
        flags: 0,
    }
}
