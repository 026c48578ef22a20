//! Writing a volume's tree into a local directory without ever leaving it.
//!
//! The names and symlinks come from the server, so they are untrusted: a
//! name with `/`, `..` or NUL is refused, nothing is ever created or
//! written by path — every step is relative to an open directory (`openat`,
//! `mkdirat`, `renameat` with `O_NOFOLLOW`), so a symlink the download
//! itself made (or one already in the target) is never followed. Files are
//! written to a fresh `O_EXCL` temporary name and renamed over the final
//! one. Set-user-id, set-group-id and sticky bits are dropped unless asked
//! for. The walk keeps an explicit stack, so a deep tree costs heap (and
//! one descriptor per level), never the call stack.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::future::Future;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::pin::Pin;

use crate::{Attr, ClientError, DirEntry, FileKind, Progress, Result};

type Fut<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// Where the tree comes from (a volume; a test double in tests).
pub(crate) trait Source: Sync {
    fn list<'a>(&'a self, dir: u64) -> Fut<'a, Vec<DirEntry>>;
    fn link_target<'a>(&'a self, ino: u64) -> Fut<'a, Vec<u8>>;
    fn contents<'a>(
        &'a self,
        ino: u64,
        out: &'a mut (dyn Write + Send),
        progress: &'a Option<Progress>,
    ) -> Fut<'a, ()>;
}

/// What a download may keep of the remote modes.
#[derive(Debug, Clone, Copy, Default)]
pub struct DownloadOptions {
    /// Keep set-user-id, set-group-id and sticky bits (off: dropped, so a
    /// download never plants a setuid program).
    pub keep_special_bits: bool,
}

fn c_name(name: &[u8]) -> Result<CString> {
    let bad = name.is_empty()
        || name == b"."
        || name == b".."
        || name.contains(&b'/')
        || name.contains(&0);
    if bad {
        return Err(ClientError::InvalidArgument(format!(
            "the server sent an unsafe name {:?}; nothing was written for it",
            String::from_utf8_lossy(name)
        )));
    }
    CString::new(name).map_err(|e| ClientError::InvalidArgument(e.to_string()))
}

fn last_err(what: &str) -> ClientError {
    ClientError::Io(format!("{what}: {}", std::io::Error::last_os_error()))
}

fn mode_of(a: &Attr, opts: DownloadOptions) -> libc::mode_t {
    let keep = if opts.keep_special_bits {
        0o7777
    } else {
        0o777
    };
    (a.mode & keep) as libc::mode_t
}

/// Opens directory `name` inside `dir`, creating it if missing; never
/// follows a symlink there.
fn open_subdir(dir: &File, name: &CStr, shown: &str) -> Result<File> {
    // SAFETY: valid descriptor and NUL-terminated name.
    let made = unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), 0o700) };
    if made != 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EEXIST) {
        return Err(last_err(shown));
    }
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: as above.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags) };
    if fd < 0 {
        return Err(last_err(&format!("{shown} (is there a file or symlink?)")));
    }
    // SAFETY: fd is a fresh descriptor we own.
    Ok(unsafe { File::from_raw_fd(fd) })
}

fn open_target_dir(path: &Path) -> Result<File> {
    std::fs::create_dir_all(path)
        .map_err(|e| ClientError::Io(format!("{}: {e}", path.display())))?;
    File::open(path).map_err(|e| ClientError::Io(format!("{}: {e}", path.display())))
}

async fn put_file(cx: &Ctx<'_>, dir: &File, name: &CStr, a: &Attr, shown: &str) -> Result<()> {
    let tmp = CString::new(format!(
        ".{}.svol-part.{:016x}",
        String::from_utf8_lossy(name.to_bytes()),
        rand_u64()
    ))
    .map_err(|e| ClientError::InvalidArgument(e.to_string()))?;
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: valid descriptor and NUL-terminated name.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), tmp.as_ptr(), flags, 0o600) };
    if fd < 0 {
        return Err(last_err(shown));
    }
    // SAFETY: fd is a fresh descriptor we own.
    let mut f = unsafe { File::from_raw_fd(fd) };
    let written: Result<()> = async {
        cx.src.contents(a.ino, &mut f, cx.progress).await?;
        f.sync_all()?;
        // SAFETY: valid descriptor.
        if unsafe { libc::fchmod(f.as_raw_fd(), mode_of(a, cx.opts)) } != 0 {
            return Err(last_err(shown));
        }
        // SAFETY: valid descriptors and names; renameat replaces a name
        // (even a symlink) without following it.
        let r = unsafe {
            libc::renameat(
                dir.as_raw_fd(),
                tmp.as_ptr(),
                dir.as_raw_fd(),
                name.as_ptr(),
            )
        };
        if r != 0 {
            return Err(last_err(shown));
        }
        Ok(())
    }
    .await;
    if written.is_err() {
        // SAFETY: valid descriptor and name.
        unsafe { libc::unlinkat(dir.as_raw_fd(), tmp.as_ptr(), 0) };
    }
    written
}

fn put_symlink(dir: &File, name: &CStr, target: &[u8], shown: &str) -> Result<()> {
    let t = CString::new(target).map_err(|_| {
        ClientError::InvalidArgument(format!("{shown}: symlink target contains NUL"))
    })?;
    // An existing non-directory of that name is replaced (not followed).
    // SAFETY: valid descriptor and names.
    unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) };
    // SAFETY: as above.
    if unsafe { libc::symlinkat(t.as_ptr(), dir.as_raw_fd(), name.as_ptr()) } != 0 {
        return Err(last_err(shown));
    }
    Ok(())
}

fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    // SAFETY: b is a valid 8-byte buffer.
    unsafe { libc::getrandom(b.as_mut_ptr().cast(), 8, 0) };
    u64::from_ne_bytes(b) ^ u64::from(std::process::id())
}

/// What stays the same for every file of one download.
struct Ctx<'a> {
    src: &'a dyn Source,
    opts: DownloadOptions,
    progress: &'a Option<Progress>,
}

/// One directory being written: its open descriptor, the entries still to
/// write and the local path (for messages).
struct Frame {
    dir: File,
    todo: Vec<DirEntry>,
    shown: String,
}

/// Writes `a` (file, symlink or directory tree) to the local path `local`.
pub(crate) async fn download(
    src: &dyn Source,
    a: &Attr,
    local: &Path,
    opts: DownloadOptions,
    progress: &Option<Progress>,
) -> Result<()> {
    let cx = Ctx {
        src,
        opts,
        progress,
    };
    let is_dir = a.is_dir();
    if !is_dir {
        // The target's own name was chosen by the user, not the server.
        let parent = match local.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let name = local.file_name().ok_or_else(|| {
            ClientError::InvalidArgument(format!("{}: not a file name", local.display()))
        })?;
        let dir = open_target_dir(parent)?;
        let name = CString::new(name.as_bytes())
            .map_err(|e| ClientError::InvalidArgument(e.to_string()))?;
        let shown = local.display().to_string();
        return write_one(&cx, &dir, &name, a, &shown).await;
    }
    let root = open_target_dir(local)?;
    // SAFETY: valid descriptor.
    unsafe { libc::fchmod(root.as_raw_fd(), mode_of(a, opts)) };
    let mut stack = vec![Frame {
        dir: root,
        todo: reversed(src.list(a.ino).await?),
        shown: local.display().to_string(),
    }];
    while let Some(top) = stack.last_mut() {
        let Some(e) = top.todo.pop() else {
            stack.pop();
            continue;
        };
        let name = c_name(&e.name)?;
        let shown = format!("{}/{}", top.shown, String::from_utf8_lossy(&e.name));
        let ea = e.attr;
        if ea.is_dir() {
            let sub = open_subdir(&top.dir, &name, &shown)?;
            // SAFETY: valid descriptor.
            unsafe { libc::fchmod(sub.as_raw_fd(), mode_of(&ea, opts)) };
            let todo = reversed(src.list(ea.ino).await?);
            stack.push(Frame {
                dir: sub,
                todo,
                shown,
            });
        } else {
            write_one(&cx, &top.dir, &name, &ea, &shown).await?;
        }
    }
    Ok(())
}

fn reversed(mut v: Vec<DirEntry>) -> Vec<DirEntry> {
    v.reverse();
    v
}

async fn write_one(cx: &Ctx<'_>, dir: &File, name: &CStr, a: &Attr, shown: &str) -> Result<()> {
    if a.kind == FileKind::Symlink {
        let t = cx.src.link_target(a.ino).await?;
        put_symlink(dir, name, &t, shown)
    } else if a.kind == FileKind::Regular {
        put_file(cx, dir, name, a, shown).await
    } else {
        // Devices, FIFOs and sockets are not recreated by a download.
        tracing::warn!("{shown}: special file skipped");
        Ok(())
    }
}

#[cfg(test)]
mod tests;
