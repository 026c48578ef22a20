//! A disk that loses what was not fsynced when the power goes.
//!
//! A FUSE passthrough of a backing directory, served from the test
//! process. Every write is applied to the backing file, but the bytes it
//! overwrites (and the file's size before the first unsynced change) are
//! kept; `fsync`/`fdatasync` of the file forgets them. [`PowerCut::cut`]
//! puts every unsynced file back the way its last fsync left it (a file
//! created and never fsynced ends up empty, as delayed allocation leaves it
//! on ext4) and unmounts, so the kernel's caches of it go too. Name
//! operations (create, rename, unlink, mkdir) are kept: that is the failure
//! this layer models — data that was only in the page cache.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::*;

const PAGE: u64 = 4096;
const TTL: Duration = Duration::from_secs(0);

/// What a file looked like at its last fsync, as far as it changed since.
struct Undo {
    size: u64,
    pages: HashMap<u64, Vec<u8>>,
}

#[derive(Default)]
struct State {
    /// Our inode (the backing inode, 1 for the root) → path in the backing dir.
    paths: HashMap<u64, PathBuf>,
    files: HashMap<u64, Arc<File>>,
    next_fh: u64,
    undo: HashMap<u64, Undo>,
}

#[derive(Clone)]
struct Lazy {
    root: PathBuf,
    st: Arc<Mutex<State>>,
}

fn errno(e: std::io::Error) -> Errno {
    Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO))
}

fn time(s: i64, ns: i64) -> SystemTime {
    if s >= 0 {
        UNIX_EPOCH + Duration::new(s as u64, ns as u32)
    } else {
        UNIX_EPOCH
    }
}

fn attr(ino: u64, m: &std::fs::Metadata) -> FileAttr {
    let ft = m.file_type();
    let kind = if ft.is_dir() {
        FileType::Directory
    } else if ft.is_symlink() {
        FileType::Symlink
    } else {
        FileType::RegularFile
    };
    FileAttr {
        ino: INodeNo(ino),
        size: m.len(),
        blocks: m.blocks(),
        atime: time(m.atime(), m.atime_nsec()),
        mtime: time(m.mtime(), m.mtime_nsec()),
        ctime: time(m.ctime(), m.ctime_nsec()),
        crtime: time(m.ctime(), m.ctime_nsec()),
        kind,
        perm: (m.mode() & 0o7777) as u16,
        nlink: m.nlink() as u32,
        uid: m.uid(),
        gid: m.gid(),
        rdev: m.rdev() as u32,
        blksize: 4096,
        flags: 0,
    }
}

impl Lazy {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn path(&self, ino: INodeNo) -> Result<PathBuf, Errno> {
        self.lock().paths.get(&ino.0).cloned().ok_or(Errno::ENOENT)
    }

    fn child(&self, parent: INodeNo, name: &OsStr) -> Result<PathBuf, Errno> {
        Ok(self.path(parent)?.join(name))
    }

    /// Stats `path` and remembers it under its inode.
    fn remember(&self, path: PathBuf) -> Result<FileAttr, Errno> {
        let m = std::fs::symlink_metadata(&path).map_err(errno)?;
        let ino = if path == self.root { 1 } else { m.ino() };
        self.lock().paths.insert(ino, path);
        Ok(attr(ino, &m))
    }

    fn stat(&self, ino: INodeNo) -> Result<FileAttr, Errno> {
        let p = self.path(ino)?;
        let m = std::fs::symlink_metadata(&p).map_err(errno)?;
        Ok(attr(ino.0, &m))
    }

    fn file(&self, fh: FileHandle) -> Result<Arc<File>, Errno> {
        self.lock().files.get(&fh.0).cloned().ok_or(Errno::EBADF)
    }

    fn add_file(&self, f: File) -> FileHandle {
        let mut st = self.lock();
        st.next_fh += 1;
        let fh = st.next_fh;
        st.files.insert(fh, Arc::new(f));
        FileHandle(fh)
    }

    /// Before bytes [from, to) of `ino` change: keep what the last fsync
    /// left there.
    fn keep(&self, ino: u64, f: &File, from: u64, to: u64) -> std::io::Result<()> {
        let size = f.metadata()?.len();
        let mut st = self.lock();
        let u = st.undo.entry(ino).or_insert_with(|| Undo {
            size,
            pages: HashMap::new(),
        });
        let end = to.min(u.size);
        let mut page = from / PAGE;
        while page * PAGE < end {
            if !u.pages.contains_key(&page) {
                let len = (u.size - page * PAGE).min(PAGE) as usize;
                let mut buf = vec![0u8; len];
                f.read_exact_at(&mut buf, page * PAGE)?;
                u.pages.insert(page, buf);
            }
            page += 1;
        }
        Ok(())
    }

    /// The power goes: every unsynced change is undone.
    fn revert(&self) {
        let mut st = self.lock();
        let undo = std::mem::take(&mut st.undo);
        for (ino, u) in undo {
            // A file unlinked since is gone either way.
            let Some(p) = st.paths.get(&ino) else {
                continue;
            };
            let Ok(f) = std::fs::OpenOptions::new().write(true).open(p) else {
                continue;
            };
            if f.metadata().map(|m| m.ino()).ok() != Some(ino) && ino != 1 {
                continue;
            }
            for (page, bytes) in &u.pages {
                let _ = f.write_all_at(bytes, page * PAGE);
            }
            let _ = f.set_len(u.size);
        }
        st.files.clear();
    }
}

impl Filesystem for Lazy {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.child(parent, name).and_then(|p| self.remember(p)) {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.stat(ino) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let res = (|| {
            let p = self.path(ino)?;
            if let Some(m) = mode {
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m & 0o7777))
                    .map_err(errno)?;
            }
            if uid.is_some() || gid.is_some() {
                std::os::unix::fs::lchown(&p, uid, gid).map_err(errno)?;
            }
            if let Some(s) = size {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&p)
                    .map_err(errno)?;
                let cur = f.metadata().map_err(errno)?.len();
                self.keep(ino.0, &f, s.min(cur), cur).map_err(errno)?;
                f.set_len(s).map_err(errno)?;
            }
            self.stat(ino)
        })();
        match res {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self
            .path(ino)
            .and_then(|p| std::fs::read_link(p).map_err(errno))
        {
            Ok(t) => reply.data(t.as_os_str().as_bytes()),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let res = self.child(parent, name).and_then(|p| {
            std::fs::create_dir(&p).map_err(errno)?;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode & !umask & 0o7777))
                .map_err(errno)?;
            self.remember(p)
        });
        match res {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self
            .child(parent, name)
            .and_then(|p| std::fs::remove_file(p).map_err(errno))
        {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self
            .child(parent, name)
            .and_then(|p| std::fs::remove_dir(p).map_err(errno))
        {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn symlink(
        &self,
        _req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let res = self.child(parent, link_name).and_then(|p| {
            std::os::unix::fs::symlink(target, &p).map_err(errno)?;
            self.remember(p)
        });
        match res {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        _flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let res = (|| {
            let from = self.child(parent, name)?;
            let to = self.child(newparent, newname)?;
            std::fs::rename(&from, &to).map_err(errno)?;
            let mut st = self.lock();
            for p in st.paths.values_mut() {
                if *p == from {
                    *p = to.clone();
                } else if let Ok(rest) = p.strip_prefix(&from) {
                    *p = to.join(rest);
                }
            }
            Ok(())
        })();
        match res {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let acc = flags.0 & libc::O_ACCMODE;
        let res = self.path(ino).and_then(|p| {
            std::fs::OpenOptions::new()
                .read(true)
                .write(acc != libc::O_RDONLY)
                .open(p)
                .map_err(errno)
        });
        match res {
            Ok(f) => reply.opened(self.add_file(f), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let res = self.child(parent, name).and_then(|p| {
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .custom_flags(flags & libc::O_EXCL)
                .mode(mode & !umask & 0o7777)
                .open(&p)
                .map_err(errno)?;
            if flags & libc::O_TRUNC != 0 {
                let ino = f.metadata().map_err(errno)?.ino();
                let cur = f.metadata().map_err(errno)?.len();
                self.keep(ino, &f, 0, cur).map_err(errno)?;
                f.set_len(0).map_err(errno)?;
            }
            let a = self.remember(p)?;
            Ok((a, f))
        });
        match res {
            Ok((a, f)) => {
                let fh = self.add_file(f);
                reply.created(&TTL, &a, Generation(0), fh, FopenFlags::empty())
            }
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lo: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let res = self.file(fh).and_then(|f| {
            let mut buf = vec![0u8; size as usize];
            let mut got = 0;
            while got < buf.len() {
                match f.read_at(&mut buf[got..], offset + got as u64) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(e) => return Err(errno(e)),
                }
            }
            buf.truncate(got);
            Ok(buf)
        });
        match res {
            Ok(b) => reply.data(&b),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _wf: WriteFlags,
        _flags: OpenFlags,
        _lo: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let res = self.file(fh).and_then(|f| {
            self.keep(ino.0, &f, offset, offset + data.len() as u64)
                .map_err(errno)?;
            f.write_all_at(data, offset).map_err(errno)
        });
        match res {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(e),
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lo: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.lock().files.remove(&fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        match self.file(fh).and_then(|f| f.sync_all().map_err(errno)) {
            Ok(()) => {
                self.lock().undo.remove(&ino.0);
                reply.ok()
            }
            Err(e) => reply.error(e),
        }
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.opened(FileHandle(0), FopenFlags::empty());
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let Ok(p) = self.path(ino) else {
            return reply.error(Errno::ENOENT);
        };
        let Ok(rd) = std::fs::read_dir(&p) else {
            return reply.error(Errno::EIO);
        };
        let mut entries = vec![
            (ino.0, FileType::Directory, ".".into()),
            (ino.0, FileType::Directory, "..".into()),
        ];
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            let kind = if m.is_dir() {
                FileType::Directory
            } else if m.file_type().is_symlink() {
                FileType::Symlink
            } else {
                FileType::RegularFile
            };
            entries.push((m.ino(), kind, e.file_name()));
        }
        for (i, (ino, kind, name)) in entries.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(ino), i as u64 + 1, kind, &name) {
                break;
            }
        }
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        use std::ffi::CString;
        let c = CString::new(self.root.as_os_str().as_bytes()).unwrap_or_default();
        // SAFETY: zeroed statvfs is a valid out-parameter.
        let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: c is NUL-terminated, s is valid.
        if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
            return reply.error(Errno::EIO);
        }
        reply.statfs(
            s.f_blocks,
            s.f_bfree,
            s.f_bavail,
            s.f_files,
            s.f_ffree,
            s.f_bsize as u32,
            255,
            s.f_frsize as u32,
        );
    }
}

/// A mounted power-cut layer over a backing directory.
pub struct PowerCut {
    backing: PathBuf,
    mountpoint: PathBuf,
    fs: Lazy,
    session: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl PowerCut {
    pub fn mount(backing: &Path, mountpoint: &Path) -> PowerCut {
        let mut pc = PowerCut {
            backing: backing.to_path_buf(),
            mountpoint: mountpoint.to_path_buf(),
            fs: Lazy {
                root: backing.to_path_buf(),
                st: Arc::default(),
            },
            session: None,
        };
        pc.start();
        pc
    }

    fn start(&mut self) {
        self.fs = Lazy {
            root: self.backing.clone(),
            st: Arc::default(),
        };
        self.fs.lock().paths.insert(1, self.backing.clone());
        let mut cfg = Config::default();
        cfg.mount_options = vec![
            MountOption::FSName("powercut".into()),
            MountOption::AutoUnmount,
        ];
        cfg.acl = SessionACL::All;
        let s = Session::new(self.fs.clone(), &self.mountpoint, &cfg)
            .expect("mounting the power-cut layer");
        self.session = Some(std::thread::spawn(move || s.run()));
    }

    /// Unmounts (as `svol umount` does) and waits for the serving thread.
    fn unmount(&mut self) {
        if let Some(t) = self.session.take() {
            let ok = std::process::Command::new("fusermount3")
                .arg("-u")
                .arg(&self.mountpoint)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                let _ = std::process::Command::new("fusermount3")
                    .arg("-uz")
                    .arg(&self.mountpoint)
                    .status();
            }
            let _ = t.join();
        }
    }

    /// Bytes of unsynced changes the layer would undo now.
    pub fn unsynced_files(&self) -> usize {
        self.fs.lock().undo.len()
    }

    /// The power goes and comes back: unsynced data is lost, the kernel's
    /// caches are empty, and the layer is mounted again on what is left.
    /// Everything using the mount must be stopped first.
    pub fn cut(&mut self) {
        self.fs.revert();
        self.unmount();
        // SAFETY: sync() has no preconditions.
        unsafe { libc::sync() };
        let _ = std::fs::write("/proc/sys/vm/drop_caches", "3");
        self.start();
    }
}

impl Drop for PowerCut {
    fn drop(&mut self) {
        self.unmount();
    }
}
