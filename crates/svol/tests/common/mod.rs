//! Test harness: a real `svol server` process in a temp dir, real
//! `svol mount -d` FUSE mounts, and the CLI run the way a user runs it.
#![allow(dead_code)]

pub mod cluster;
pub mod powercut;
pub mod shared;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn svol_bin() -> &'static str {
    env!("CARGO_BIN_EXE_svol")
}

pub struct Server {
    pub dir: tempfile::TempDir,
    pub addr: String,
    child: Child,
}

impl Server {
    pub fn start() -> Server {
        Self::start_with(&[])
    }

    /// A server with extra flags (`--lease 2s`, `--app-grace 3s`, …).
    pub fn start_with(extra: &[&str]) -> Server {
        assert!(
            Path::new("/dev/fuse").exists(),
            "/dev/fuse is missing: FUSE tests cannot run"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let log = std::fs::File::create(dir.path().join("server.log")).expect("server log");
        let (child, addr) = spawn_server(&dir.path().join("data"), "127.0.0.1:0", extra, log);
        Server { dir, addr, child }
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("data/client.toml")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the server wrote to stderr (its log) so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn cmd(&self) -> Command {
        cli(&self.config())
    }

    /// Runs the CLI; returns its output (never hangs longer than 60 s).
    pub fn run(&self, args: &[&str]) -> Output {
        run_with_timeout(self.cmd().args(args), Duration::from_secs(60))
    }

    pub fn ok(&self, args: &[&str]) -> String {
        ok(self.cmd(), args)
    }

    pub fn create_volume(&self, name: &str) -> String {
        self.ok(&["volume", "create", name]).trim().to_string()
    }

    pub fn mount(&self, vol: &str, extra: &[&str]) -> MountDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut args = vec!["mount", vol, dir.path().to_str().expect("utf8"), "-d"];
        args.extend_from_slice(extra);
        self.ok(&args);
        MountDir {
            dir,
            bin: svol_bin(),
        }
    }

    /// The CLI as the holder of `token` (instead of the admin token).
    pub fn run_as(&self, token: &str, args: &[&str]) -> Output {
        let mut c = self.cmd();
        c.env("SVOL_TOKEN", token);
        run_with_timeout(c.args(args), Duration::from_secs(60))
    }

    /// `svol run …` in the background, as a user would start it.
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.cmd()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn svol")
    }

    /// `svol app list --json`, parsed.
    pub fn apps(&self) -> Vec<serde_json::Value> {
        serde_json::from_str(&self.ok(&["app", "list", "--all", "--json"])).expect("app list json")
    }

    pub fn app_state(&self, id: &str) -> String {
        self.apps()
            .iter()
            .find(|a| a["id"] == id)
            .and_then(|a| a["state"].as_str().map(str::to_string))
            .unwrap_or_else(|| panic!("app {id} not listed"))
    }

    /// Total bytes of block files on the server.
    pub fn block_bytes(&self) -> u64 {
        dir_bytes(&self.data().join("blocks"))
    }
}

/// Starts `svol server` and waits for its "listening on" line; returns the
/// process and the address it listens on. Its log goes to `log`.
fn spawn_server(data: &Path, listen: &str, extra: &[&str], log: std::fs::File) -> (Child, String) {
    spawn_server_env(data, listen, extra, &[], log)
}

fn spawn_server_env(
    data: &Path,
    listen: &str,
    extra: &[&str],
    env: &[(&str, String)],
    log: std::fs::File,
) -> (Child, String) {
    // Tests that delete expect the space back at once; the trash's own
    // tests ask for a retention.
    let trash: &[&str] = if extra.contains(&"--trash-retention") {
        &[]
    } else {
        &["--trash-retention", "0"]
    };
    let mut child = Command::new(svol_bin())
        .args(["server", "--listen", listen, "--data-dir"])
        .arg(data)
        .args(extra)
        .args(trash)
        .envs(env.iter().map(|(k, v)| (*k, v)))
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("start server");
    let out = child.stdout.take().expect("stdout");
    let mut line = String::new();
    let mut reader = BufReader::new(out);
    reader.read_line(&mut line).expect("read server output");
    // Keep draining so the server never writes into a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    let addr = line
        .split("listening on ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("server did not say where it listens: {line:?}"))
        .to_string();
    (child, addr)
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn dir_bytes(p: &Path) -> u64 {
    match std::fs::read_dir(p) {
        Ok(rd) => rd
            .flatten()
            .map(|e| {
                let m = e.metadata().expect("metadata");
                if m.is_dir() {
                    dir_bytes(&e.path())
                } else {
                    m.len()
                }
            })
            .sum(),
        Err(_) => 0,
    }
}

/// The CLI as a user with `SVOL_CONFIG` = `config` runs it.
pub fn cli(config: &Path) -> Command {
    let mut c = Command::new(svol_bin());
    c.env("SVOL_CONFIG", config)
        .env_remove("SVOL_SERVER")
        .env_remove("SVOL_TOKEN")
        .stdin(Stdio::null());
    c
}

/// Runs `svol ARGS`, which must succeed; returns its stdout.
pub fn ok(mut c: Command, args: &[&str]) -> String {
    let o = run_with_timeout(c.args(args), Duration::from_secs(60));
    assert!(
        o.status.success(),
        "svol {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn run_with_timeout(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn svol");
    let start = Instant::now();
    loop {
        if let Some(_status) = child.try_wait().expect("wait") {
            return child.wait_with_output().expect("output");
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("command did not finish within {limit:?}: {cmd:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub struct MountDir {
    pub dir: tempfile::TempDir,
    bin: &'static str,
}

impl MountDir {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
}

impl Drop for MountDir {
    fn drop(&mut self) {
        let out = Command::new(self.bin)
            .arg("umount")
            .arg(self.dir.path())
            .output();
        if !matches!(out, Ok(ref o) if o.status.success()) {
            let _ = Command::new("fusermount3")
                .arg("-uz")
                .arg(self.dir.path())
                .status();
        }
    }
}

/// Polls `f` until it is true or `limit` passes; returns the time it took.
pub fn eventually(limit: Duration, what: &str, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
    start.elapsed()
}

pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        | 1;
    let mut v = Vec::with_capacity(n);
    while v.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(n);
    v
}

/// A free TCP port on loopback (for a server that must come back on the
/// same address after a restart).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A `svol server` on a fixed data directory and port that a test kills
/// (SIGKILL) and starts again; clients keep its address.
pub struct Restartable {
    pub data: PathBuf,
    pub port: u16,
    extra: Vec<String>,
    env: Vec<(&'static str, String)>,
    child: Option<Child>,
    log: PathBuf,
}

impl Restartable {
    pub fn new(data: PathBuf, log: PathBuf, extra: &[&str]) -> Self {
        Self::with_env(data, log, extra, Vec::new())
    }

    /// A server started with these environment variables too.
    pub fn with_env(
        data: PathBuf,
        log: PathBuf,
        extra: &[&str],
        env: Vec<(&'static str, String)>,
    ) -> Self {
        let mut s = Self {
            data,
            port: free_port(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            env,
            child: None,
            log,
        };
        s.start();
        s
    }

    pub fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("server log");
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        let listen = format!("127.0.0.1:{}", self.port);
        let (child, _) = spawn_server_env(&self.data, &listen, &extra, &self.env, log);
        self.child = Some(child);
    }

    /// SIGTERM, as a service manager stops it; returns how long the
    /// server took to exit (panics past `limit`).
    pub fn terminate(&mut self, limit: Duration) -> Duration {
        let mut c = self.child.take().expect("running");
        let start = Instant::now();
        // SAFETY: sends a signal to our own child, which we have not reaped.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        loop {
            if c.try_wait().expect("wait").is_some() {
                return start.elapsed();
            }
            if start.elapsed() > limit {
                let _ = c.kill();
                let _ = c.wait();
                panic!("the server did not exit within {limit:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn config(&self) -> PathBuf {
        self.data.join("client.toml")
    }

    pub fn ok(&self, args: &[&str]) -> String {
        ok(cli(&self.config()), args)
    }

    pub fn mount(&self, vol: &str) -> MountDir {
        let dir = tempfile::tempdir().expect("tempdir");
        self.ok(&["mount", vol, dir.path().to_str().expect("utf8"), "-d"]);
        MountDir {
            dir,
            bin: svol_bin(),
        }
    }

    /// The log this server (and its earlier runs) wrote.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Restartable {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Where `svol mount -d` keeps its pid file and log for `mp`.
fn mount_file(mp: &Path, ext: &str) -> PathBuf {
    let key: String = std::fs::canonicalize(mp)
        .expect("mountpoint")
        .to_string_lossy()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let run = std::env::var("XDG_RUNTIME_DIR").unwrap_or_else(|_| "/run".into());
    Path::new(&run)
        .join("svol")
        .join(format!("mount{key}.{ext}"))
}

/// What the `svol mount -d` process serving `mp` has logged so far.
pub fn mount_log(mp: &Path) -> String {
    std::fs::read_to_string(mount_file(mp, "log")).unwrap_or_default()
}

/// The `svol mount -d` process serving `mp` (from its pid file).
pub fn mount_pid(mp: &Path) -> u32 {
    let f = mount_file(mp, "pid");
    std::fs::read_to_string(&f)
        .expect("mount pid file")
        .trim()
        .parse()
        .expect("pid")
}

/// Every file and directory below `p` (depth first).
pub fn entries_under(p: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![p.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            if e.file_type().expect("file type").is_dir() {
                todo.push(e.path());
            }
            out.push(e.path());
        }
    }
    out
}

/// Every sample of the exposition, by its name and labels.
pub fn scrape(addr: &str) -> std::collections::HashMap<String, f64> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain"),
        "{head}"
    );
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

pub fn sample(m: &std::collections::HashMap<String, f64>, key: &str) -> f64 {
    m.get(key).copied().unwrap_or(0.0)
}
