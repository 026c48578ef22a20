//! What a local user on the server host or a client host can see: file
//! modes of the data directory, secrets in argv, environment and logs, and
//! who may use a mount.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::*;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn session_ids(data: &Path) -> Vec<String> {
    let out = Command::new("python3")
        .arg("-c")
        .arg("import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); [print(r[0]) for r in c.execute('select id from sessions')]")
        .arg(data.join("meta.db"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Finding 7: data dir 0700, database, blocks and client.toml 0600; a
/// token given on the command line of `svol mount -d` is not in the mount
/// process's argv or environment; neither the token nor the session id is
/// in the server's or the mount's log.
#[test]
fn no_secrets_on_disk_for_others_in_argv_or_in_logs() {
    // Everything the server and the mount can log, dependencies included.
    std::env::set_var("SVOL_LOG", "debug");
    let s = Server::start();
    s.create_volume("v");
    let token = s
        .ok(&["token", "create", "--name", "worker"])
        .trim()
        .to_string();
    assert!(token.starts_with("svol_"));
    let dir = tempfile::tempdir().unwrap();
    let mp = dir.path();
    let o = s.run(&["--token", &token, "mount", "v", mp.to_str().unwrap(), "-d"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::write(mp.join("f"), vec![7u8; 300_000]).unwrap();
    let pid = mount_pid(mp);
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let has = |hay: &[u8], needle: &str| hay.windows(needle.len()).any(|w| w == needle.as_bytes());
    let shown = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(shown.contains("mount v"), "that is the mount: {shown}");
    assert!(!has(&cmdline, &token), "token in argv: {shown}");
    assert!(!has(&environ, &token), "token in the environment");
    let sessions = session_ids(&s.data());
    assert_eq!(sessions.len(), 1);

    let data = s.data();
    assert_eq!(mode(&data), 0o700);
    for f in ["meta.db", "meta.db-wal", "meta.db-shm", "client.toml"] {
        assert_eq!(mode(&data.join(f)), 0o600, "{f}");
    }
    let files = entries_under(&data.join("blocks"));
    assert!(files.iter().any(|f| f.is_file()), "some block was written");
    for f in files {
        let want = if f.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&f), want, "{}", f.display());
    }

    let log_path = std::path::PathBuf::from(
        std::env::var("XDG_RUNTIME_DIR").unwrap_or_else(|_| "/run".into()),
    );
    let mut mount_logs = String::new();
    for e in std::fs::read_dir(log_path.join("svol")).unwrap().flatten() {
        if e.path().extension().is_some_and(|x| x == "log") {
            mount_logs += &std::fs::read_to_string(e.path()).unwrap_or_default();
        }
    }
    let o = s.run(&["umount", mp.to_str().unwrap()]);
    assert!(o.status.success());
    let server_log = s.log();
    assert!(
        server_log.contains("session opened"),
        "the server logged at debug level"
    );
    for (what, log) in [("server", &server_log), ("mount", &mount_logs)] {
        assert!(!log.contains(&token), "token in the {what} log");
        for id in &sessions {
            assert!(!log.contains(id.as_str()), "session id in the {what} log");
        }
    }
}

/// Finding 7: without `--allow-other` only the mounting user may use a
/// mount; mounts are nosuid and nodev unless asked.
#[test]
fn mounts_are_private_nosuid_and_nodev_by_default() {
    let s = Server::start();
    s.create_volume("v");
    let m = s.mount("v", &[]);
    std::fs::write(m.p("hello"), b"hi").unwrap();
    let as_nobody = |path: &Path| {
        Command::new("runuser")
            .args(["-u", "nobody", "--", "cat"])
            .arg(path)
            .output()
            .unwrap()
    };
    let o = as_nobody(&m.p("hello"));
    assert!(!o.status.success(), "another user read a private mount");
    let opts = mount_options(m.path());
    assert!(opts.contains(&"nosuid".to_string()), "{opts:?}");
    assert!(opts.contains(&"nodev".to_string()), "{opts:?}");

    let shared = s.mount("v", &["--allow-other", "--suid", "--dev"]);
    std::fs::set_permissions(shared.p("hello"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = as_nobody(&shared.p("hello"));
    assert!(
        o.status.success(),
        "--allow-other lets others in: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.stdout, b"hi");
    let opts = mount_options(shared.path());
    assert!(!opts.contains(&"nosuid".to_string()), "{opts:?}");
}

fn mount_options(mp: &Path) -> Vec<String> {
    let mp = std::fs::canonicalize(mp).unwrap();
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let line = mounts
        .lines()
        .find(|l| l.split(' ').nth(1) == Some(mp.to_str().unwrap()))
        .unwrap_or_else(|| panic!("{} is not mounted", mp.display()));
    line.split(' ')
        .nth(3)
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect()
}
