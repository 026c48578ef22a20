//! `svol admin dump` piped into `svol admin load`: a new data directory
//! whose server holds byte-identical volumes (contents, modes, times,
//! links), the snapshots, and the other workspaces with their tokens. A
//! dump cut short is refused and leaves the new directory empty.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// Everything a user can see of a tree: per entry its path, kind, mode,
/// size, mtime (ns), link count, symlink target and bytes.
fn picture(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for p in entries_under(root) {
        let m = std::fs::symlink_metadata(&p).expect("lstat");
        let rel = p
            .strip_prefix(root)
            .expect("under root")
            .display()
            .to_string();
        let what = if m.file_type().is_symlink() {
            format!("-> {}", std::fs::read_link(&p).expect("readlink").display())
        } else if m.is_file() {
            let data = std::fs::read(&p).expect("read");
            format!("{} bytes, blake3 {}", data.len(), blake3::hash(&data))
        } else {
            "dir".to_string()
        };
        out.push(format!(
            "{rel}: mode {:o} nlink {} mtime {}.{:09} {what}",
            m.mode(),
            m.nlink(),
            m.mtime(),
            m.mtime_nsec()
        ));
    }
    out.sort();
    out
}

fn dump_into(from: &Path, to: &Path) -> (std::process::Output, std::process::Output) {
    let mut dump = Command::new(svol_bin())
        .args(["admin", "dump", "--data-dir", from.to_str().expect("utf8")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dump");
    let pipe = dump.stdout.take().expect("dump stdout");
    let load = run_with_timeout(
        Command::new(svol_bin())
            .args(["admin", "load", "--data-dir", to.to_str().expect("utf8")])
            .stdin(pipe),
        Duration::from_secs(120),
    );
    (dump.wait_with_output().expect("dump"), load)
}

#[test]
fn dump_then_load_gives_identical_volumes_snapshots_and_tokens() {
    let work = tempfile::tempdir().expect("tempdir");
    let (old, new) = (work.path().join("old"), work.path().join("new"));
    let mut s = Restartable::new(old.clone(), work.path().join("old.log"), &[]);
    s.ok(&["volume", "create", "data"]);
    s.ok(&["workspace", "create", "team"]);
    let team_token = s
        .ok(&["token", "create", "--workspace", "team"])
        .trim()
        .to_string();
    let team = |config: &Path, args: &[&str]| {
        let mut c = cli(config);
        c.env("SVOL_TOKEN", &team_token);
        ok(c, args)
    };
    let local = tempfile::tempdir().expect("tempdir");
    let secret = local.path().join("secret");
    std::fs::write(&secret, random_bytes(300_000, 77)).expect("write");
    team(&s.config(), &["volume", "create", "private"]);
    team(
        &s.config(),
        &[
            "volume",
            "put",
            "private",
            secret.to_str().expect("utf8"),
            "/s",
        ],
    );

    let before = {
        let m = s.mount("data");
        std::fs::create_dir_all(m.p("models/v1")).expect("mkdir");
        std::fs::write(m.p("models/v1/weights.bin"), random_bytes(9 << 20, 1)).expect("big");
        for i in 0..150u64 {
            std::fs::write(
                m.p(&format!("models/v1/shard-{i:03}")),
                random_bytes(100 + (i as usize * 97) % 5000, i + 10),
            )
            .expect("small");
        }
        std::fs::write(m.p("empty"), b"").expect("empty");
        std::os::unix::fs::symlink("models/v1/weights.bin", m.p("latest")).expect("symlink");
        std::fs::hard_link(m.p("models/v1/shard-000"), m.p("hard")).expect("link");
        std::fs::set_permissions(m.p("hard"), std::fs::Permissions::from_mode(0o640))
            .expect("chmod");
        let old_time = Command::new("touch")
            .args(["-h", "-d", "2001-02-03 04:05:06.789"])
            .arg(m.p("models/v1/shard-001"))
            .status()
            .expect("touch");
        assert!(old_time.success());
        picture(m.path())
    };
    s.ok(&["volume", "snapshot", "data", "--as", "kept"]);
    {
        // After the snapshot: the live volume moves on, the snapshot not.
        let m = s.mount("data");
        std::fs::remove_file(m.p("models/v1/shard-002")).expect("rm");
        std::fs::write(m.p("after"), b"written after the snapshot").expect("write");
    }
    let live_before = picture(s.mount("data").path());
    let old_config = std::fs::read_to_string(s.config()).expect("client.toml");
    s.terminate(Duration::from_secs(20));

    let (dump, load) = dump_into(&old, &new);
    assert!(
        dump.status.success(),
        "dump: {}",
        String::from_utf8_lossy(&dump.stderr)
    );
    assert!(
        load.status.success(),
        "load: {}",
        String::from_utf8_lossy(&load.stderr)
    );
    assert!(String::from_utf8_lossy(&load.stderr).contains("loaded"));
    assert!(
        !new.join("client.toml").exists(),
        "no token in clear travels in a dump"
    );

    let fsck = run_with_timeout(
        Command::new(svol_bin()).args(["admin", "fsck", "--data-dir", new.to_str().expect("utf8")]),
        Duration::from_secs(60),
    );
    assert!(
        fsck.status.success(),
        "{}",
        String::from_utf8_lossy(&fsck.stdout)
    );

    let s2 = Restartable::new(new.clone(), work.path().join("new.log"), &[]);
    assert_ne!(
        std::fs::read_to_string(s2.config()).expect("new client.toml"),
        old_config
    );
    assert_eq!(picture(s2.mount("data").path()), live_before);
    assert_eq!(picture(s2.mount("data@kept").path()), before);
    // The other workspace, with its token, and still only its own.
    let got = local.path().join("got");
    team(
        &s2.config(),
        &[
            "volume",
            "get",
            "private",
            "/s",
            got.to_str().expect("utf8"),
        ],
    );
    assert_eq!(
        std::fs::read(&got).expect("read"),
        std::fs::read(&secret).expect("read")
    );
    let mut c = cli(&s2.config());
    c.env("SVOL_TOKEN", &team_token);
    let foreign = run_with_timeout(c.args(["volume", "info", "data"]), Duration::from_secs(30));
    assert!(
        !foreign.status.success(),
        "the team token reaches only team"
    );
    // The loaded server takes writes.
    s2.ok(&["volume", "create", "fresh"]);
}

#[test]
fn a_cut_dump_or_a_used_directory_is_refused_and_nothing_is_loaded() {
    let work = tempfile::tempdir().expect("tempdir");
    let old = work.path().join("old");
    let mut s = Restartable::new(old.clone(), work.path().join("old.log"), &[]);
    s.ok(&["volume", "create", "v"]);
    let f = work.path().join("f");
    std::fs::write(&f, random_bytes(6 << 20, 5)).expect("write");
    s.ok(&["volume", "put", "v", f.to_str().expect("utf8"), "/f"]);
    // Not while its server runs.
    let busy = run_with_timeout(
        Command::new(svol_bin()).args([
            "admin",
            "dump",
            "--data-dir",
            old.to_str().expect("utf8"),
            "-o",
            work.path().join("x.tar").to_str().expect("utf8"),
        ]),
        Duration::from_secs(30),
    );
    assert!(!busy.status.success());
    assert!(!work.path().join("x.tar").exists());
    s.terminate(Duration::from_secs(20));

    let tar = work.path().join("all.tar");
    let dump = run_with_timeout(
        Command::new(svol_bin()).args([
            "admin",
            "dump",
            "--data-dir",
            old.to_str().expect("utf8"),
            "-o",
            tar.to_str().expect("utf8"),
        ]),
        Duration::from_secs(60),
    );
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let whole = std::fs::read(&tar).expect("read dump");
    for cut_at in [whole.len() / 3, whole.len() - 2048] {
        let cut = work.path().join(format!("cut-{cut_at}.tar"));
        std::fs::write(&cut, &whole[..cut_at]).expect("write cut");
        let target = work.path().join(format!("new-{cut_at}"));
        let load = run_with_timeout(
            Command::new(svol_bin()).args([
                "admin",
                "load",
                "--data-dir",
                target.to_str().expect("utf8"),
                "-i",
                cut.to_str().expect("utf8"),
            ]),
            Duration::from_secs(60),
        );
        let err = String::from_utf8_lossy(&load.stderr).to_string();
        assert_eq!(load.status.code(), Some(1), "{err}");
        assert!(err.contains("cut short"), "{err}");
        assert_eq!(
            std::fs::read_dir(&target).expect("target").count(),
            0,
            "a refused load leaves the directory empty"
        );
    }
    // A directory already in use is never loaded over.
    let load = run_with_timeout(
        Command::new(svol_bin()).args([
            "admin",
            "load",
            "--data-dir",
            old.to_str().expect("utf8"),
            "-i",
            tar.to_str().expect("utf8"),
        ]),
        Duration::from_secs(60),
    );
    assert!(String::from_utf8_lossy(&load.stderr).contains("not empty"));
    assert!(!load.status.success());
}
