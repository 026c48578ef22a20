//! A private mount namespace whose root mirrors the host's, with empty
//! directories wherever a volume will be mounted — even under paths the
//! host does not have — and nothing the host sees changed.
//!
//! How: a tmpfs becomes the new root; every entry of the host's `/` is
//! bind-mounted into it (recursively, so /proc, /dev, … come along).
//! Where a volume path does not exist on the host, its deepest existing
//! ancestor is shadowed the same way (a tmpfs holding binds of the host
//! directory's entries) and the missing directories are made in that tmpfs.
//! Then `pivot_root` makes the tmpfs `/`. The namespace, and with it every
//! mount made in it, ends when the last process in it exits — so a runner
//! killed with SIGKILL leaves no mount behind on the host.
//!
//! Must run while the process has a single thread (`unshare(CLONE_NEWNS)`
//! refuses threaded processes): before the async runtime starts.

use std::collections::HashSet;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};

fn cstr(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .with_context(|| format!("path {} has a NUL", p.display()))
}

fn check(rc: libc::c_int, what: impl FnOnce() -> String) -> Result<()> {
    if rc != 0 {
        bail!("{}: {}", what(), std::io::Error::last_os_error());
    }
    Ok(())
}

fn mount(
    src: Option<&Path>,
    dst: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Result<()> {
    let src_c = src.map(cstr).transpose()?;
    let dst_c = cstr(dst)?;
    let fs_c = fstype.map(CString::new).transpose()?;
    let data_c = data.map(CString::new).transpose()?;
    let ptr = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: every pointer is null or a NUL-terminated string alive for the call.
    let rc = unsafe {
        libc::mount(
            ptr(&src_c),
            dst_c.as_ptr(),
            ptr(&fs_c),
            flags,
            ptr(&data_c) as *const libc::c_void,
        )
    };
    check(rc, || {
        format!(
            "mounting {} on {}",
            src.map(|p| p.display().to_string())
                .unwrap_or_else(|| fstype.unwrap_or("").into()),
            dst.display()
        )
    })
}

/// An absolute path with no `.`, `..` or repeated slashes; `/` refused.
pub(crate) fn clean_target(raw: &str) -> Result<PathBuf> {
    if raw.contains('\0') {
        bail!("volume path {raw:?} contains a NUL byte");
    }
    let p = Path::new(raw);
    if !p.is_absolute() {
        bail!("volume path {raw:?} must be absolute (like /root/cache)");
    }
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir => bail!("volume path {raw:?} must not contain '..'"),
            Component::Prefix(_) => bail!("volume path {raw:?} is not a Unix path"),
        }
    }
    if out == Path::new("/") {
        bail!("cannot mount a volume at /");
    }
    Ok(out)
}

/// `dst` (inside the new root) gets the same entries as host dir `src`.
fn mirror(src: &Path, dst: &Path, skip: &Path) -> Result<()> {
    let entries = std::fs::read_dir(src).with_context(|| format!("reading {}", src.display()))?;
    for e in entries.flatten() {
        let from = e.path();
        if from == skip {
            continue;
        }
        let to = dst.join(e.file_name());
        let meta = std::fs::symlink_metadata(&from)?;
        let ft = meta.file_type();
        if ft.is_symlink() {
            let target = std::fs::read_link(&from)?;
            std::os::unix::fs::symlink(&target, &to)
                .with_context(|| format!("symlink {}", to.display()))?;
            continue;
        }
        if ft.is_dir() {
            std::fs::create_dir(&to).with_context(|| format!("mkdir {}", to.display()))?;
        } else {
            std::fs::File::create(&to).with_context(|| format!("creating {}", to.display()))?;
        }
        mount(Some(&from), &to, None, libc::MS_BIND | libc::MS_REC, None)?;
    }
    Ok(())
}

fn tmpfs_like(dst: &Path, like: &Path) -> Result<()> {
    let m = std::fs::metadata(like).with_context(|| format!("{}", like.display()))?;
    let opts = format!(
        "mode={:o},uid={},gid={}",
        m.mode() & 0o7777,
        m.uid(),
        m.gid()
    );
    mount(
        None,
        dst,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some(&opts),
    )
    .map(|_| ())
    .or_else(|_| mount(None, dst, Some("tmpfs"), 0, Some(&opts)))
}

/// Splits `t` into its deepest ancestor that exists on the host (resolved,
/// symlinks followed) and the components below it that do not.
fn existing_prefix(t: &Path) -> (PathBuf, Vec<std::ffi::OsString>) {
    let mut missing = Vec::new();
    let mut cur = t.to_path_buf();
    loop {
        if let Ok(real) = std::fs::canonicalize(&cur) {
            missing.reverse();
            return (real, missing);
        }
        match (cur.file_name().map(|n| n.to_os_string()), cur.parent()) {
            (Some(n), Some(parent)) => {
                missing.push(n);
                cur = parent.to_path_buf();
            }
            _ => {
                missing.reverse();
                return (PathBuf::from("/"), missing);
            }
        }
    }
}

/// Enters a new mount namespace whose root shows the host's files plus an
/// empty directory at each of `targets`. Returns the targets as seen in the
/// new root (existing host paths resolved through symlinks).
pub(crate) fn enter(targets: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let cwd = std::env::current_dir().ok();
    // SAFETY: unshare only changes this (still single-threaded) process.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNS) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EPERM) {
            bail!(
                "svol run needs root (CAP_SYS_ADMIN) to give the command its own mount namespace"
            );
        }
        bail!("unshare(CLONE_NEWNS): {e}");
    }
    // Nothing we mount from here on propagates back to the host.
    mount(
        None,
        Path::new("/"),
        None,
        libc::MS_REC | libc::MS_PRIVATE,
        None,
    )?;

    let base = if Path::new("/run").is_dir() {
        PathBuf::from("/run/svol")
    } else {
        std::env::temp_dir().join("svol")
    };
    std::fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
    let stage = base.join(format!("ns-{}", std::process::id()));
    let _ = std::fs::remove_dir(&stage);
    std::fs::create_dir(&stage).with_context(|| format!("creating {}", stage.display()))?;
    let built = build(&stage, targets);
    let out = built.and_then(|resolved| {
        pivot(&stage)?;
        Ok(resolved)
    });
    // The host keeps no trace. After the pivot the same path shows the
    // copy of the stage that the bind of the host's /run took along;
    // before it (on error), the stage itself. Either way: detach, rmdir.
    if let Ok(c) = cstr(&stage) {
        // SAFETY: valid C string; failing (nothing mounted) is harmless.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
    let _ = std::fs::remove_dir(&stage);
    let out = out?;
    if let Some(cwd) = cwd {
        let _ = std::env::set_current_dir(cwd);
    }
    Ok(out)
}

fn build(stage: &Path, targets: &[PathBuf]) -> Result<Vec<PathBuf>> {
    mount(None, stage, Some("tmpfs"), 0, Some("mode=755"))?;
    mirror(Path::new("/"), stage, stage)?;
    let mut shadowed: HashSet<PathBuf> = HashSet::new();
    let mut resolved = Vec::new();
    for t in targets {
        let (existing, missing) = existing_prefix(t);
        let inside = |p: &Path| stage.join(p.strip_prefix("/").unwrap_or(p));
        if !missing.is_empty() && existing != Path::new("/") && shadowed.insert(existing.clone()) {
            let at = inside(&existing);
            tmpfs_like(&at, &existing)?;
            mirror(&existing, &at, stage)?;
        }
        let mut full = existing.clone();
        for m in &missing {
            full.push(m);
        }
        std::fs::create_dir_all(inside(&full))
            .with_context(|| format!("making mountpoint {}", full.display()))?;
        if !inside(&full).is_dir() {
            bail!("volume path {} exists and is not a directory", t.display());
        }
        resolved.push(full);
    }
    Ok(resolved)
}

fn pivot(stage: &Path) -> Result<()> {
    std::env::set_current_dir(stage)?;
    let dot = CString::new(".")?;
    // SAFETY: pivot_root(".", ".") stacks the old root on the new one; the
    // pointers are valid C strings.
    let rc = unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) };
    if rc == 0 {
        // SAFETY: detaches the old root, now mounted on top of ".".
        let rc = unsafe { libc::umount2(dot.as_ptr(), libc::MNT_DETACH) };
        check(rc, || "detaching the old root".into())?;
    } else {
        // pivot_root refuses some roots (an initramfs): move and chroot.
        mount(
            Some(Path::new(".")),
            Path::new("/"),
            None,
            libc::MS_MOVE,
            None,
        )?;
        // SAFETY: valid C string.
        check(unsafe { libc::chroot(dot.as_ptr()) }, || "chroot".into())?;
    }
    std::env::set_current_dir("/")?;
    Ok(())
}
