//! The kernel adapter: each FUSE callback converts its arguments, hands
//! the work to a tokio task running the operation in `fs` (which owns the
//! caches, the listings and the calls to the server), and turns the
//! result into the reply or an errno. No policy lives here: what may be
//! answered locally, what must be refetched, what a change recalls, is
//! decided in the operations.

use super::*;

/// Sends an operation's result to the kernel: the value, or its errno.
trait Answer<T> {
    fn answer(self, r: Result<T>);
}

impl Answer<()> for ReplyEmpty {
    fn answer(self, r: Result<()>) {
        match r {
            Ok(()) => self.ok(),
            Err(e) => self.error(errno(&e)),
        }
    }
}

impl<T: AsRef<[u8]>> Answer<T> for ReplyData {
    fn answer(self, r: Result<T>) {
        match r {
            Ok(d) => self.data(d.as_ref()),
            Err(e) => self.error(errno(&e)),
        }
    }
}

fn time_set(t: Option<TimeOrNow>) -> Option<TimeSet> {
    t.map(|t| match t {
        TimeOrNow::Now => TimeSet::Now,
        TimeOrNow::SpecificTime(st) => TimeSet::At(svol_sdk::Timespec::from_system(st)),
    })
}

impl Filesystem for SvolFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_write(1 << 20);
        let _ = config.set_max_readahead(1 << 20);
        let _ = config.set_max_background(64);
        let _ = config.add_capabilities(
            InitFlags::FUSE_DO_READDIRPLUS
                | InitFlags::FUSE_READDIRPLUS_AUTO
                | InitFlags::FUSE_PARALLEL_DIROPS
                | InitFlags::FUSE_ASYNC_READ
                // The kernel then stops asking for security.capability
                // before every write(2) (a request each, a round trip for
                // a file not made ahead); the server drops capabilities on
                // commit, and set-ID bits when the kernel says so.
                | InitFlags::FUSE_HANDLE_KILLPRIV_V2
                // A reader opened during a direct write (direct.rs) may
                // still map the file shared; the kernel then drops each
                // direct write's range from the cache.
                | InitFlags::FUSE_DIRECT_IO_ALLOW_MMAP,
        );
        // fcntl and flock locks go to the server (see locks.rs).
        let _ = config.add_capabilities(InitFlags::FUSE_POSIX_LOCKS | InitFlags::FUSE_FLOCK_LOCKS);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let _op = crate::metrics::enter("lookup");
        // What the listing answers costs no task (a name about to be
        // created; one that exists, if no open file here may have a size
        // of its own for it).
        match self.inner.listed(self.inner.s(parent), name.as_bytes()) {
            Known::Absent => return reply.error(Errno::from_i32(libc::ENOENT)),
            Known::Present(a) if self.inner.local_size(a.ino).is_none() => {
                let fa = file_attr(&a, self.inner.k(a.ino), a.size);
                let ttl = self.inner.looked_up_ttl(a.ino);
                return reply.entry_with_ttls(&ttl, &TTL, &fa, Generation(0));
            }
            _ => {}
        }
        let name = name_bytes(name);
        self.spawn(|i| async move {
            match i.lookup(i.s(parent), &name).await {
                Ok(a) => i.reply_entry(reply, &a).await,
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let _op = crate::metrics::enter("getattr");
        if let Some((fa, ttl)) = self.inner.listed_attr(self.inner.s(ino)) {
            return reply.attr(&ttl, &fa);
        }
        self.spawn(|i| async move {
            match i.getattr(i.s(ino)).await {
                Ok(a) => reply.attr(&i.attr_ttl(a.ino), &i.fattr(&a).await),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let _op = crate::metrics::enter("setattr");
        let r = SetAttr {
            mode: mode.map(|m| m & 0o7777),
            uid,
            gid,
            size,
            atime: time_set(atime),
            mtime: time_set(mtime),
            // Under HANDLE_KILLPRIV_V2 the kernel leaves set-ID bits to
            // us: a chown clears them, and so does a truncate by a caller
            // without CAP_FSETID (taken as: not root).
            kill_suidgid: uid.is_some() || gid.is_some() || (size.is_some() && req.uid() != 0),
            ..Default::default()
        };
        self.spawn(|i| async move {
            match i.setattr(i.s(ino), r).await {
                Ok(a) => reply.attr(&i.attr_ttl(i.s(ino)), &a),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let _op = crate::metrics::enter("readlink");
        self.spawn(|i| async move {
            let r = match i.ahead.settle().await {
                Ok(()) => i.vol.readlink(i.s(ino)).await,
                Err(e) => Err(e),
            };
            reply.answer(r)
        });
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let _op = crate::metrics::enter("mknod");
        let kind = FileKind::from_mode(mode);
        self.make_node(
            req,
            parent,
            name,
            kind,
            mode & !umask,
            rdev,
            Bytes::new(),
            reply,
        );
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let _op = crate::metrics::enter("mkdir");
        let kind = FileKind::Directory;
        self.make_node(
            req,
            parent,
            name,
            kind,
            mode & !umask,
            0,
            Bytes::new(),
            reply,
        );
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _op = crate::metrics::enter("unlink");
        let name = name_bytes(name);
        self.spawn(|i| async move { reply.answer(i.remove(i.s(parent), &name, false).await) });
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _op = crate::metrics::enter("rmdir");
        let name = name_bytes(name);
        self.spawn(|i| async move { reply.answer(i.remove(i.s(parent), &name, true).await) });
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let _op = crate::metrics::enter("symlink");
        let target = Bytes::copy_from_slice(target.as_os_str().as_bytes());
        self.make_node(
            req,
            parent,
            link_name,
            FileKind::Symlink,
            0o777,
            0,
            target,
            reply,
        );
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let _op = crate::metrics::enter("rename");
        let (name, newname) = (name_bytes(name), name_bytes(newname));
        let mut f = 0;
        if flags.contains(RenameFlags::RENAME_NOREPLACE) {
            f |= RENAME_NOREPLACE;
        }
        if flags.contains(RenameFlags::RENAME_EXCHANGE) {
            f |= RENAME_EXCHANGE;
        }
        let unsupported = flags.contains(RenameFlags::RENAME_WHITEOUT);
        self.spawn(|i| async move {
            if unsupported {
                return reply.error(Errno::from_i32(libc::EINVAL));
            }
            match i
                .rename(i.s(parent), &name, i.s(newparent), &newname, f)
                .await
            {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let _op = crate::metrics::enter("link");
        let newname = name_bytes(newname);
        self.spawn(|i| async move {
            match i.link(i.s(ino), i.s(newparent), &newname).await {
                Ok(a) => i.reply_entry(reply, &a).await,
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let _op = crate::metrics::enter("open");
        let access = Access::from_flags(flags.0);
        let pid = req.pid();
        self.spawn(|i| async move {
            if access.writes() && i.read_only {
                return reply.error(Errno::from_i32(libc::EROFS));
            }
            match i.open_file(i.s(ino), access, pid).await {
                Ok((fh, fl)) => reply.opened(FileHandle(fh), fl),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lo: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let _op = crate::metrics::enter("read");
        self.spawn(|i| async move {
            let ino = i.s(ino);
            if let Err(e) = i.handle(fh.0, "read") {
                return reply.error(errno(&e));
            }
            let Some(f) = i.file(ino) else {
                return reply.error(Errno::from_i32(libc::EBADF));
            };
            let plan = {
                let mut st = f.lock().await;
                // Another mount committed to this file since this mount
                // fetched its chunk map (attributes from the server since
                // said so, see `fattr`): read what is there now, as a
                // reader that keeps its file open (`tail -f`) must.
                if st.newer > st.version && !st.is_dirty() {
                    match i.refetch(ino, &mut st).await {
                        // Unlinked elsewhere while open from peeked
                        // contents: the server kept nothing for this
                        // handle, which goes on with what it opened.
                        Err(ClientError::NotFound(_)) if i.orphan_attr(ino).is_some() => {
                            st.newer = st.version;
                        }
                        Err(e) => return reply.error(errno(&e)),
                        Ok(()) => {}
                    }
                }
                st.plan_read(offset, size)
            };
            let mut res = plan.run(&i.io).await;
            if let Err(ClientError::NotFound(_)) = res {
                // Another mount replaced this data since our open and its old
                // blocks are gone: read the current contents instead.
                let mut st = f.lock().await;
                res = match i.refetch(ino, &mut st).await {
                    Ok(()) => st.plan_read(offset, size).run(&i.io).await,
                    Err(e) => Err(e),
                };
            }
            if let Ok(data) = &res {
                crate::metrics::add(&crate::metrics::BYTES_READ, data.len() as u64);
            }
            reply.answer(res)
        });
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        wf: WriteFlags,
        _flags: OpenFlags,
        _lo: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let _op = crate::metrics::enter("write");
        if self.inner.write_now(ino, fh.0, offset, data, wf) {
            crate::metrics::add(&crate::metrics::BYTES_WRITTEN, data.len() as u64);
            return reply.written(data.len() as u32);
        }
        let data = data.to_vec();
        self.spawn(|i| async move {
            let ino = i.s(ino);
            let Some(f) = i.file(ino) else {
                return reply.error(Errno::from_i32(libc::EBADF));
            };
            let epoch = i.handle_epoch(fh.0);
            let mut st = f.lock().await;
            if wf.contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID) {
                st.kill_suidgid = true;
            }
            match st.write(&i.io, epoch, offset, &data).await {
                Ok(()) => {
                    crate::metrics::add(&crate::metrics::BYTES_WRITTEN, data.len() as u64);
                    reply.written(data.len() as u32)
                }
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn flush(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        lo: LockOwner,
        reply: ReplyEmpty,
    ) {
        let _op = crate::metrics::enter("flush");
        if let Some(r) = self.inner.flush_now(self.inner.s(ino), fh.0, lo.0) {
            return reply.answer(r);
        }
        self.spawn(|i| async move {
            let ino = i.s(ino);
            // A handle of a lost session: its close reports that what it
            // wrote since its last commit is gone.
            if let Err(e) = i.handle(fh.0, "close") {
                return reply.error(errno(&e));
            }
            let res = i.flush(ino, false).await;
            // A process's POSIX locks on a file end with any close of it.
            let unlocked = i.unlock_all(ino, lo.0).await;
            reply.answer(res.and(unlocked))
        });
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        lo: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let _op = crate::metrics::enter("release");
        self.spawn(|i| async move {
            let ino = i.s(ino);
            // flock locks end with the last close of the open file.
            if let Some(lo) = lo {
                let _ = i.unlock_all(ino, lo.0).await;
            }
            reply.answer(i.release(ino, fh.0).await)
        });
    }

    fn getlk(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        lo: LockOwner,
        start: u64,
        end: u64,
        typ: i32,
        pid: u32,
        reply: fuser::ReplyLock,
    ) {
        let _op = crate::metrics::enter("getlk");
        self.spawn(|i| async move {
            let l = LockSpec {
                ino: i.s(ino),
                owner: lo.0,
                start,
                end,
                typ,
                pid,
            };
            match i.getlk(&l).await {
                Ok((s, e, t, p)) => reply.locked(s, e, t, p),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn setlk(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        lo: LockOwner,
        start: u64,
        end: u64,
        typ: i32,
        pid: u32,
        sleep: bool,
        reply: ReplyEmpty,
    ) {
        let _op = crate::metrics::enter("setlk");
        self.spawn(|i| async move {
            if i.handle(fh.0, "lock").is_err() {
                // The session that held this file's locks is gone: they
                // were released; there is nothing to unlock and nothing
                // may be locked through this handle any more.
                return if typ == libc::F_UNLCK {
                    reply.ok()
                } else {
                    reply.error(Errno::from_i32(libc::ENOLCK))
                };
            }
            let l = LockSpec {
                ino: i.s(ino),
                owner: lo.0,
                start,
                end,
                typ,
                pid,
            };
            reply.answer(i.setlk(&l, sleep).await)
        });
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let _op = crate::metrics::enter("fsync");
        self.spawn(|i| async move {
            let r = match i.handle(fh.0, "fsync") {
                Ok(_) => i.flush(i.s(ino), true).await,
                Err(e) => Err(e),
            };
            reply.answer(r)
        });
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let _op = crate::metrics::enter("fsyncdir");
        self.spawn(|i| async move { reply.answer(i.sync_dir(i.s(ino)).await) });
    }

    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let _op = crate::metrics::enter("opendir");
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
        let _op = crate::metrics::enter("readdir");
        self.spawn(|i| async move {
            if offset < 1 && reply.add(ino, 1, FileType::Directory, ".") {
                return reply.ok();
            }
            if offset < DOT_OFFSETS && reply.add(ino, 2, FileType::Directory, "..") {
                return reply.ok();
            }
            match i.dir_page(i.s(ino), offset).await {
                Ok(page) => {
                    for (off, name, a) in page {
                        let kind = crate::attr::kind(a.kind);
                        if reply.add(i.k(a.ino), off, kind, OsStr::from_bytes(&name)) {
                            break;
                        }
                    }
                    reply.ok()
                }
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let _op = crate::metrics::enter("readdirplus");
        self.spawn(|i| async move {
            if offset < DOT_OFFSETS {
                let a = match i.getattr(i.s(ino)).await {
                    Ok(a) => i.fattr(&a).await,
                    Err(e) => return reply.error(errno(&e)),
                };
                if offset < 1 && reply.add(ino, 1, ".", &TTL, &a, Generation(0)) {
                    return reply.ok();
                }
                if reply.add(ino, 2, "..", &TTL, &a, Generation(0)) {
                    return reply.ok();
                }
            }
            match i.dir_page(i.s(ino), offset).await {
                Ok(page) => {
                    for (off, name, a) in page {
                        let fa = i.fattr(&a).await;
                        let name = OsStr::from_bytes(&name);
                        if reply.add(i.k(a.ino), off, name, &TTL, &fa, Generation(0)) {
                            break;
                        }
                    }
                    reply.ok()
                }
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let _op = crate::metrics::enter("statfs");
        self.spawn(|i| async move {
            match i.vol.statfs().await {
                Ok(s) => {
                    let bs = 4096u64;
                    reply.statfs(
                        s.total_bytes / bs,
                        s.free_bytes / bs,
                        s.free_bytes / bs,
                        s.files + s.free_files,
                        s.free_files,
                        bs as u32,
                        255,
                        bs as u32,
                    )
                }
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let _op = crate::metrics::enter("setxattr");
        let (name, value) = (name_bytes(name), value.to_vec());
        let f = if flags & libc::XATTR_CREATE != 0 {
            1
        } else if flags & libc::XATTR_REPLACE != 0 {
            2
        } else {
            0
        };
        self.spawn(|i| async move {
            // Others may read it as soon as it is set.
            i.ahead.expose(i.s(ino));
            let r = match i.writable().await {
                Ok(()) => {
                    let r = i.vol.set_xattr(i.s(ino), &name, &value, f).await;
                    i.ctime_changed(i.s(ino));
                    r
                }
                Err(e) => Err(e),
            };
            reply.answer(r)
        });
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let _op = crate::metrics::enter("getxattr");
        let name = name_bytes(name);
        // A node made ahead has no extended attributes until this mount
        // sets one (the kernel asks for security.capability before tar's
        // fchown of each file it writes).
        let s = self.inner.s(ino);
        if self.inner.ahead.pending(s) || self.inner.ahead.is_private(s) {
            return reply.error(Errno::from_i32(libc::ENODATA));
        }
        self.spawn(|i| async move {
            match i.vol.get_xattr(i.s(ino), &name).await {
                Ok(v) if size == 0 => reply.size(v.len() as u32),
                Ok(v) if v.len() > size as usize => reply.error(Errno::from_i32(libc::ERANGE)),
                Ok(v) => reply.data(&v),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let _op = crate::metrics::enter("listxattr");
        self.spawn(|i| async move {
            let names = match i.ahead.settle().await {
                Ok(()) => i.vol.list_xattr(i.s(ino)).await,
                Err(e) => Err(e),
            };
            match names {
                Ok(names) => {
                    let mut buf = Vec::new();
                    for n in names {
                        buf.extend_from_slice(&n);
                        buf.push(0);
                    }
                    if size == 0 {
                        reply.size(buf.len() as u32)
                    } else if buf.len() > size as usize {
                        reply.error(Errno::from_i32(libc::ERANGE))
                    } else {
                        reply.data(&buf)
                    }
                }
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _op = crate::metrics::enter("removexattr");
        let name = name_bytes(name);
        self.spawn(|i| async move {
            i.ahead.expose(i.s(ino));
            let r = match i.writable().await {
                Ok(()) => {
                    let r = i.vol.remove_xattr(i.s(ino), &name).await;
                    i.ctime_changed(i.s(ino));
                    r
                }
                Err(e) => Err(e),
            };
            reply.answer(r)
        });
    }

    /// No ioctls: ENOTTY, as a local file system answers `isatty` probes
    /// (the default ENOSYS would log a warning on every Python `open`).
    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: fuser::IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: fuser::ReplyIoctl,
    ) {
        let _op = crate::metrics::enter("ioctl");
        reply.error(Errno::from_i32(libc::ENOTTY));
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let _op = crate::metrics::enter("fallocate");
        // Blocks are allocated on write, so reserving space is a no-op; only
        // growing the file (mode 0) has a visible effect. Hole punching and
        // the other modes are not supported.
        let supported = mode & !libc::FALLOC_FL_KEEP_SIZE == 0;
        self.spawn(|i| async move {
            if !supported {
                return reply.error(Errno::from_i32(libc::EOPNOTSUPP));
            }
            if mode & libc::FALLOC_FL_KEEP_SIZE != 0 {
                return reply.ok();
            }
            let ino = i.s(ino);
            if let Err(e) = i.ahead.settle().await {
                return reply.error(errno(&e));
            }
            let size = match i.vol.getattr(ino).await {
                Ok(a) => a.size,
                Err(e) => return reply.error(errno(&e)),
            };
            let local = match i.file(ino) {
                Some(f) => f.lock().await.size,
                None => 0,
            };
            // Like local file systems, a successful allocation touches mtime and ctime.
            let end = offset.saturating_add(length);
            let r = SetAttr {
                size: (end > size.max(local)).then_some(end),
                mtime: Some(TimeSet::Now),
                ..Default::default()
            };
            match i.setattr(ino, r).await {
                Ok(_) => reply.ok(),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let _op = crate::metrics::enter("create");
        let mode = (mode & !umask) & 0o7777;
        let access = Access::from_flags(flags);
        if let Some(a) = self
            .inner
            .make_ahead(req, parent, name, FileKind::Regular, mode)
        {
            let (fh, fl) = self.inner.opened_ahead(&a, access);
            let fa = file_attr(&a, self.inner.k(a.ino), 0);
            return reply.created(&TTL, &fa, Generation(0), FileHandle(fh), fl);
        }
        let r = NewNode {
            parent: 0,
            name: name_bytes(name),
            kind: FileKind::Regular,
            mode,
            uid: req.uid(),
            gid: req.gid(),
            exclusive: flags & libc::O_EXCL != 0,
            ..Default::default()
        };
        self.spawn(|i| async move {
            if let Err(e) = i.writable().await {
                return reply.error(errno(&e));
            }
            let r = NewNode {
                parent: i.s(parent),
                ..r
            };
            let e = i.dirs.epoch();
            let epoch = i.lease.epoch();
            let (dir, name) = (r.parent, r.name.clone());
            let res = i.vol.create_open(r).await;
            let resp = match i.entry_changed(dir, &name, res, |r| r.attr) {
                Ok(o) => o,
                Err(e) => return reply.error(errno(&e)),
            };
            let a = resp.attr;
            i.learned(e, &resp.touched);
            if i.listings.is_listed(dir) {
                i.ahead.want(dir);
            }
            match i.opened(a.ino, resp, epoch, access).await {
                Ok((fh, fl)) => {
                    reply.created(&TTL, &i.fattr(&a).await, Generation(0), FileHandle(fh), fl)
                }
                Err(e) => reply.error(errno(&e)),
            }
        });
    }
}
