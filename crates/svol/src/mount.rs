//! `svol mount` and `svol umount`. With `-d` the command starts itself
//! again in the background and returns once that child reports (through a
//! pipe) that the kernel has the mount, or prints why it failed.

use std::io::{BufRead, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use svol_fuse::{Mount, MountOptions};

/// `--memory-cache` when not given: the mount's own default, written as
/// the help shows it (a test keeps the two equal).
const MEMORY_CACHE: &str = "128M";

#[derive(clap::Args)]
pub(crate) struct MountArgs {
    /// The volume (name or id; NAME@SNAPSHOT mounts a snapshot read-only)
    volume: String,
    /// An empty directory to mount it on
    mountpoint: PathBuf,
    /// Detach: return once the mount is ready
    #[arg(short = 'd', long)]
    detach: bool,
    /// Keep fetched blocks in this directory too, across mounts (each is
    /// checked against its hash before it is served); `svol volume
    /// warmup` fills it ahead
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Most the cache directory may hold for this volume (e.g. 50G)
    #[arg(long, default_value = "10G", value_parser = crate::parse_size, requires = "cache_dir")]
    cache_size: u64,
    /// Refuse every change through this mount (EROFS)
    #[arg(long)]
    read_only: bool,
    /// Mount this directory of the volume instead of its root
    #[arg(long)]
    sub_path: Option<String>,
    /// Let other local users use the mount (off: only the mounting user)
    #[arg(long)]
    allow_other: bool,
    /// Honour set-user-id bits on the volume (off: mounted nosuid)
    #[arg(long)]
    suid: bool,
    /// Honour device nodes on the volume (off: mounted nodev)
    #[arg(long)]
    dev: bool,
    /// Most written, uncommitted data buffered in memory (e.g. 256M, 2G);
    /// writers wait for commits beyond it
    #[arg(long, default_value = "512M", value_parser = crate::parse_size)]
    max_dirty: u64,
    /// Memory for fetched blocks (e.g. 1G)
    #[arg(long, default_value = MEMORY_CACHE, value_parser = crate::parse_size)]
    memory_cache: u64,
    /// Serve Prometheus metrics of this mount at http://ADDR/metrics
    /// (e.g. 127.0.0.1:9420)
    #[arg(long, value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
    /// Mount over a directory that has files (they are hidden until the
    /// volume is unmounted)
    #[arg(long)]
    nonempty: bool,
}

/// What is mounted at `mp`, as /proc/self/mountinfo says: (file system
/// type, source) of the topmost mount there, or None for a plain
/// directory.
fn mounted_at(mp: &Path) -> Option<(String, String)> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    // Spaces and other bytes in paths are written as octal escapes.
    let want = mp
        .to_string_lossy()
        .replace('\\', "\\134")
        .replace(' ', "\\040")
        .replace('\t', "\\011")
        .replace('\n', "\\012");
    info.lines()
        .filter_map(|l| {
            let (head, tail) = l.split_once(" - ")?;
            let point = head.split(' ').nth(4)?;
            let mut t = tail.split(' ');
            Some((point == want).then(|| {
                let fstype = t.next().unwrap_or("").to_string();
                let source = t.next().unwrap_or("").to_string();
                (fstype, source)
            }))
        })
        .flatten()
        .last()
}

/// Refuses a mountpoint that would hide something: another mount, or
/// files (unless asked to).
fn check_mountpoint(mp: &Path, nonempty: bool) -> Result<()> {
    if let Some((fstype, source)) = mounted_at(mp) {
        bail!(
            "{} is already a mount point ({source}, {fstype}); unmount it first \
             (`svol umount {}`) or choose another directory",
            mp.display(),
            mp.display()
        );
    }
    if !nonempty {
        let entries = std::fs::read_dir(mp)
            .with_context(|| format!("mountpoint {}", mp.display()))?
            .count();
        if entries > 0 {
            bail!(
                "{} is not empty ({entries} entr{}): the mount would hide them; \
                 use an empty directory, or --nonempty to mount over them",
                mp.display(),
                if entries == 1 { "y" } else { "ies" }
            );
        }
    }
    Ok(())
}

const READY_FD: &str = "SVOL_MOUNT_READY_FD";
/// The detached child reads its token from this descriptor, so the token
/// never appears in its argv or environment.
const TOKEN_FD: &str = "SVOL_MOUNT_TOKEN_FD";

fn run_dir() -> PathBuf {
    PathBuf::from(std::env::var("XDG_RUNTIME_DIR").unwrap_or_else(|_| "/run".into())).join("svol")
}

pub(crate) fn pid_file(mp: &Path) -> PathBuf {
    let key: String = mp
        .to_string_lossy()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    run_dir().join(format!("mount{key}.pid"))
}

fn read_token_fd(fd: &str) -> Result<String> {
    use std::io::Read;
    let fd: i32 = fd.parse().context("bad token descriptor")?;
    // SAFETY: the parent passed us this fd for exactly this purpose.
    let mut f = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let mut t = String::new();
    f.read_to_string(&mut t).context("reading the token")?;
    Ok(t)
}

/// Our own arguments for the detached child, without `-d` and without the
/// token (which goes through a pipe).
fn child_args() -> Vec<String> {
    let mut out = Vec::new();
    let mut args = crate::invocation::args().into_iter();
    while let Some(a) = args.next() {
        match a.as_str() {
            "-d" | "--detach" => {}
            "--token" => {
                args.next();
            }
            _ if a.starts_with("--token=") => {}
            _ => out.push(a),
        }
    }
    out
}

pub(crate) async fn mount(
    a: MountArgs,
    server: &Option<String>,
    token: &Option<String>,
) -> Result<i32> {
    svol_sdk::check_volume_ref(&a.volume)?;
    if let Some(p) = &a.sub_path {
        svol_sdk::check_remote_path(p)?;
    }
    let mp = std::fs::canonicalize(&a.mountpoint)
        .with_context(|| format!("mountpoint {}", a.mountpoint.display()))?;
    if !mp.is_dir() {
        bail!("mountpoint {} is not a directory", mp.display());
    }
    // The detached child was checked by its parent, and finds the
    // directory as the parent left it.
    if std::env::var(READY_FD).is_err() {
        check_mountpoint(&mp, a.nonempty)?;
    }
    if a.detach {
        let token = token.clone().or_else(|| std::env::var("SVOL_TOKEN").ok());
        return detach(&mp, token);
    }
    let ready_fd = std::env::var(READY_FD)
        .ok()
        .and_then(|v| v.parse::<i32>().ok());
    if let Some(fd) = ready_fd {
        // Helpers we start (fusermount3 stays alive for auto-unmount) must
        // not inherit the pipe, or the parent never sees it close.
        // SAFETY: fcntl on an fd number only changes its flags.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    let token = match std::env::var(TOKEN_FD) {
        Ok(fd) => Some(read_token_fd(&fd)?),
        Err(_) => token.clone(),
    };
    let client = crate::connect(server, &token).await?;
    let vol = client.volume(&a.volume).await?;
    let opts = MountOptions {
        read_only: a.read_only,
        sub_path: a.sub_path.clone(),
        cache_dir: a.cache_dir.clone(),
        cache_size: a.cache_size,
        memory_cache: a.memory_cache,
        app: String::new(),
        allow_other: a.allow_other,
        suid: a.suid,
        dev: a.dev,
        max_dirty: a.max_dirty,
        purpose: String::new(),
    };
    // Bound before mounting, so a taken address fails the mount.
    let metrics = match a.metrics {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("--metrics {addr}"))?,
        ),
        None => None,
    };
    // What `svol status` shows of this mount's caches.
    let cache_note = serde_json::json!({
        "cache_dir": a.cache_dir.as_ref().map(|d| d.join(&vol.info().id)),
        "cache_limit": a.cache_dir.as_ref().map(|_| a.cache_size),
        "memory_cache": a.memory_cache,
    });
    let mut m = Mount::new(vol, &mp, opts).await?;
    if let Some(listener) = metrics {
        tokio::spawn(serve_metrics(listener));
    }
    let _ = std::fs::create_dir_all(run_dir());
    let pidf = pid_file(&mp);
    let _ = std::fs::write(&pidf, std::process::id().to_string());
    let _ = std::fs::write(pidf.with_extension("cache"), cache_note.to_string());
    if let Some(fd) = ready_fd {
        // SAFETY: the parent passed us this fd for exactly this message.
        let mut f = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        let _ = f.write_all(b"ok\n");
    }
    let _unmounter = m.unmounter();
    let mp2 = mp.clone();
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => return,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
        unmount(&mp2);
    });
    let res = tokio::task::spawn_blocking(move || m.run()).await?;
    let _ = std::fs::remove_file(&pidf);
    let _ = std::fs::remove_file(pidf.with_extension("cache"));
    res.with_context(|| format!("serving {}", mp.display()))?;
    // A clean end needs no log; after a failure it stays for the post-mortem.
    let _ = std::fs::remove_file(pidf.with_extension("log"));
    Ok(0)
}

async fn serve_metrics(listener: tokio::net::TcpListener) {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(|| async {
            (
                [(
                    axum::http::header::CONTENT_TYPE,
                    "text/plain; version=0.0.4",
                )],
                svol_fuse::metrics::render(),
            )
        }),
    );
    if let Err(e) = axum::serve(listener, app).await {
        tracing::warn!("metrics server: {e}");
    }
}

/// Unmounts a svol mount: politely, then lazily if it is busy.
pub(crate) fn unmount(mp: &Path) {
    if !fusermount(mp, false) {
        fusermount(mp, true);
    }
}

fn fusermount(mp: &Path, lazy: bool) -> bool {
    let mut c = Command::new("fusermount3");
    c.arg(if lazy { "-uz" } else { "-u" }).arg(mp);
    c.stderr(Stdio::null());
    c.status().map(|s| s.success()).unwrap_or(false)
}

/// A pipe holding `data` whose read end the child inherits.
fn pipe_with(data: &[u8]) -> Result<OwnedFd> {
    let mut fds = [0i32; 2];
    // SAFETY: fds is a valid out-array of two ints.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        bail!("pipe: {}", std::io::Error::last_os_error());
    }
    // SAFETY: pipe() just created these two descriptors and nothing else owns them.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // A token is far smaller than a pipe's buffer: this never blocks.
    std::fs::File::from(w)
        .write_all(data)
        .context("passing the token")?;
    Ok(r)
}

fn detach(mp: &Path, token: Option<String>) -> Result<i32> {
    let mut fds = [0i32; 2];
    // SAFETY: fds is a valid out-array of two ints.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        bail!("pipe: {}", std::io::Error::last_os_error());
    }
    // SAFETY: pipe() just created these two descriptors and nothing else owns them.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let args = child_args();
    let token_pipe = token.map(|t| pipe_with(t.as_bytes())).transpose()?;
    let _ = std::fs::create_dir_all(run_dir());
    let log = pid_file(mp).with_extension("log");
    let logf =
        std::fs::File::create(&log).with_context(|| format!("log file {}", log.display()))?;
    let mut cmd = crate::invocation::again();
    cmd.args(&args)
        .env(READY_FD, fds[1].to_string())
        .env_remove("SVOL_TOKEN")
        .stdin(Stdio::null())
        .stdout(logf.try_clone()?)
        .stderr(logf);
    // SAFETY: setsid is async-signal-safe; detaches the child from our terminal.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    if let Some(r) = &token_pipe {
        use std::os::fd::AsRawFd;
        cmd.env(TOKEN_FD, r.as_raw_fd().to_string());
    }
    let mut child = cmd.spawn().context("starting the mount process")?;
    drop(w);
    drop(token_pipe);
    let mut buf = String::new();
    let _ = std::io::BufReader::new(std::fs::File::from(r)).read_line(&mut buf);
    if buf.starts_with("ok") {
        return Ok(0);
    }
    let _ = child.wait();
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    let last = log_text
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or("the mount process exited");
    bail!("{}", last.trim_start_matches("svol: error: "))
}

pub(crate) async fn umount(mp: &Path) -> Result<i32> {
    let mp = std::fs::canonicalize(mp).with_context(|| format!("mountpoint {}", mp.display()))?;
    match mounted_at(&mp) {
        None => bail!("{} is not a mount point: nothing to unmount", mp.display()),
        Some((fstype, source)) if !fstype.starts_with("fuse") => bail!(
            "{} is a {fstype} mount of {source}, not a svol mount: use umount(8)",
            mp.display()
        ),
        Some(_) => {}
    }
    let out = Command::new("fusermount3")
        .arg("-u")
        .arg(&mp)
        .output()
        .context("running fusermount3")?;
    if !out.status.success() {
        bail!(
            "unmounting {}: {}",
            mp.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    // Wait for that mount's client to finish cleanly.
    if let Ok(pid) = std::fs::read_to_string(pid_file(&mp)) {
        if let Ok(pid) = pid.trim().parse::<i32>() {
            for _ in 0..100 {
                // SAFETY: kill with signal 0 only checks that the process exists.
                if unsafe { libc::kill(pid, 0) } != 0 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_memory_cache_default_is_the_mounts_own() {
        assert_eq!(
            crate::parse_size(super::MEMORY_CACHE),
            Ok(svol_fuse::DEFAULT_MEMORY_CACHE)
        );
    }
}
