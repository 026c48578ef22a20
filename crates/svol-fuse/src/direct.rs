//! Which opens go around the kernel's page cache (`FOPEN_DIRECT_IO`).
//!
//! A write through the page cache costs the writer a copy into the cache
//! before the kernel hands the same bytes to this process, in series with
//! the mount's own copy; for a checkpoint written in 1 MiB pieces that
//! extra copy was a third of the time the write(2) calls took. A direct
//! write hands the writer's own pages to the mount. Only a write-only open
//! gains (it never reads through the cache it would fill), and only one
//! that no other open of the file on this mount shares the cache with: the
//! kernel does not bring cached pages up to date with direct writes, so
//! while a file has a direct writer, every other open of it here is direct
//! too and reads what the mount holds, never a cached page. A shared
//! mapping of such an open (`FUSE_DIRECT_IO_ALLOW_MMAP`) is the exception
//! the kernel keeps coherent itself: it drops the range of each direct
//! write from the cache before sending it.

use std::collections::{HashMap, HashSet};

use fuser::FopenFlags;

/// What an open's reply tells the kernel: go around the cache, or keep
/// the pages it has of the file (its version is unchanged), or neither.
pub(crate) fn fopen_flags(direct: bool, keep_cache: bool) -> FopenFlags {
    match (direct, keep_cache) {
        (true, _) => FopenFlags::FOPEN_DIRECT_IO,
        (false, true) => FopenFlags::FOPEN_KEEP_CACHE,
        (false, false) => FopenFlags::empty(),
    }
}

/// How an open uses the file, from its flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    ReadOnly,
    ReadWrite,
    WriteOnly,
}

impl Access {
    pub(crate) fn from_flags(flags: i32) -> Self {
        match flags & libc::O_ACCMODE {
            libc::O_RDONLY => Access::ReadOnly,
            libc::O_WRONLY => Access::WriteOnly,
            _ => Access::ReadWrite,
        }
    }

    pub(crate) fn writes(self) -> bool {
        self != Access::ReadOnly
    }
}

/// The direct writers of each file open on this mount.
#[derive(Default)]
pub(crate) struct DirectWriters {
    by_ino: HashMap<u64, usize>,
    handles: HashSet<u64>,
}

impl DirectWriters {
    /// Handle `fh` of `ino` is being opened with `access` while `others`
    /// other handles of it are open here: whether it is direct. A direct
    /// write-only open finds no cached pages it must keep up to date (no
    /// other handle), and as long as it stays open every later open of the
    /// file is direct as well.
    pub(crate) fn open(&mut self, ino: u64, fh: u64, access: Access, others: usize) -> bool {
        let writing = self.by_ino.get(&ino).is_some_and(|n| *n > 0);
        let direct = writing || (access == Access::WriteOnly && others == 0);
        // Any direct open that writes keeps the file's opens direct, a
        // read-write one joining a writer included.
        if direct && access.writes() {
            *self.by_ino.entry(ino).or_default() += 1;
            self.handles.insert(fh);
        }
        direct
    }

    /// Handle `fh` of `ino` was released.
    pub(crate) fn release(&mut self, ino: u64, fh: u64) {
        if !self.handles.remove(&fh) {
            return;
        }
        if let Some(n) = self.by_ino.get_mut(&ino) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.by_ino.remove(&ino);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_lone_write_only_open_starts_direct_io() {
        let mut d = DirectWriters::default();
        assert!(!d.open(1, 10, Access::ReadWrite, 0), "may read its cache");
        assert!(!d.open(2, 11, Access::ReadOnly, 0));
        assert!(!d.open(3, 12, Access::WriteOnly, 1), "shares the cache");
        assert!(d.open(4, 13, Access::WriteOnly, 0));
    }

    #[test]
    fn while_a_direct_writer_is_open_every_open_of_its_file_is_direct() {
        let mut d = DirectWriters::default();
        assert!(d.open(7, 1, Access::WriteOnly, 0));
        assert!(d.open(7, 2, Access::ReadOnly, 1));
        assert!(d.open(7, 3, Access::ReadWrite, 2));
        assert!(d.open(7, 4, Access::WriteOnly, 3));
        assert!(!d.open(8, 5, Access::ReadOnly, 0), "another file");
        // The first writer goes; the second keeps later opens direct.
        d.release(7, 1);
        assert!(d.open(7, 6, Access::ReadOnly, 3));
        // Readers' releases change nothing; the last writer's ends it (the
        // read-write open that joined them writes around the cache too).
        d.release(7, 2);
        d.release(7, 4);
        assert!(d.open(7, 7, Access::ReadOnly, 2));
        d.release(7, 3);
        assert!(!d.open(7, 8, Access::ReadOnly, 2));
        assert!(!d.open(7, 9, Access::WriteOnly, 3), "cached opens remain");
    }
}
