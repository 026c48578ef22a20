//! The daemons as people who run storage expect them to behave: SIGTERM
//! stops a server with live mounts within its grace period (and the mounts
//! carry on with its successor), one server per data directory, mount
//! points that would hide something are refused, and a closed pipe ends a
//! printing command quietly.

mod common;

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

#[test]
fn sigterm_with_live_mounts_exits_within_the_grace_and_the_mounts_carry_on() {
    let work = tempfile::tempdir().expect("tempdir");
    let mut s = Restartable::new(
        work.path().join("data"),
        work.path().join("server.log"),
        &[],
    );
    s.ok(&["volume", "create", "v"]);
    let (a, b) = (s.mount("v"), s.mount("v"));
    std::fs::write(a.p("before"), b"1").expect("write");
    assert_eq!(std::fs::read(b.p("before")).expect("read"), b"1");

    let took = s.terminate(Duration::from_secs(20));
    assert!(
        took < Duration::from_secs(10),
        "SIGTERM took {took:?} with two mounts attached"
    );
    // Its data directory is free again: the next server takes it.
    s.start();
    eventually(Duration::from_secs(30), "mount a writes again", || {
        std::fs::write(a.p("after"), b"2").is_ok()
    });
    eventually(Duration::from_secs(30), "mount b sees it", || {
        std::fs::read(b.p("after")).ok().as_deref() == Some(&b"2"[..])
    });
}

#[test]
fn a_second_server_on_one_data_dir_is_refused_by_name() {
    let s = Server::start();
    let before = std::fs::read_to_string(s.config()).expect("client.toml");
    let out = run_with_timeout(
        Command::new(svol_bin())
            .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(s.data()),
        Duration::from_secs(30),
    );
    assert!(!out.status.success(), "a second server started");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("another svol server (pid ") && err.contains(&s.data().display().to_string()),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(s.config()).expect("client.toml"),
        before,
        "client.toml untouched"
    );
    s.ok(&["volume", "list"]);
}

#[test]
fn mount_points_that_would_hide_something_are_refused() {
    let s = Server::start();
    s.create_volume("v");
    let full = tempfile::tempdir().expect("tempdir");
    std::fs::write(full.path().join("mine.txt"), b"local").expect("write");
    let mp = full.path().to_str().expect("utf8");
    let out = s.run(&["mount", "v", mp, "-d"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not empty") && err.contains("--nonempty"),
        "{err}"
    );

    let m = s.mount("v", &[]);
    let mp = m.path().to_str().expect("utf8");
    let out = s.run(&["mount", "v", mp, "-d", "--nonempty"]);
    assert!(!out.status.success(), "a second mount stacked on the first");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already a mount point"), "{err}");

    // Asked for, a non-empty directory is mounted over (and comes back).
    let over = s.mount("v", &[]);
    drop(over);
    let out = s.run(&[
        "mount",
        "v",
        full.path().to_str().expect("utf8"),
        "-d",
        "--nonempty",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !full.path().join("mine.txt").exists(),
        "hidden by the mount"
    );
    s.ok(&["umount", full.path().to_str().expect("utf8")]);
    assert_eq!(
        std::fs::read(full.path().join("mine.txt")).expect("back"),
        b"local"
    );

    let plain = tempfile::tempdir().expect("tempdir");
    let out = s.run(&["umount", plain.path().to_str().expect("utf8")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not a mount point"), "{err}");
    assert!(!err.contains("Invalid argument"), "{err}");
}

#[test]
fn a_closed_pipe_ends_a_printing_command_quietly() {
    let mut child = Command::new(svol_bin())
        .args(["completion", "bash"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("svol completion");
    let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    out.read_line(&mut first).expect("first line");
    assert!(!first.is_empty());
    drop(out); // as `| head -1` does
    let done = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&done.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_ne!(done.status.code(), Some(101), "exit 101 is a panic");
}

#[test]
fn deleting_a_mounted_volume_is_refused_unless_forced() {
    let s = Server::start();
    s.create_volume("busy");
    let m = s.mount("busy", &[]);
    std::fs::write(m.p("f"), b"data").expect("write");
    let out = s.run(&["volume", "delete", "busy", "--yes"]);
    assert!(!out.status.success(), "deleted under a live mount");
    let err = String::from_utf8_lossy(&out.stderr);
    let mp = m.path().display().to_string();
    assert!(
        err.contains("in use by 1 client") && err.contains(&mp) && err.contains("--force"),
        "{err}"
    );
    assert_eq!(std::fs::read(m.p("f")).expect("still there"), b"data");

    // Forced: once the mount learns (its session ends with the volume),
    // its calls fail cleanly with ENOENT; none hangs.
    s.ok(&["volume", "delete", "busy", "--yes", "--force"]);
    eventually(
        Duration::from_secs(10),
        "the mount sees the volume gone",
        || {
            let read = std::fs::read(m.p("f"));
            let write = std::fs::write(m.p("g"), b"x");
            matches!((read, write), (Err(r), Err(w))
            if r.raw_os_error() == Some(libc::ENOENT) && w.raw_os_error() == Some(libc::ENOENT))
        },
    );
    drop(m);
    // Once unmounted, nothing holds it: a new volume of that name is free.
    s.create_volume("busy");
    s.ok(&["volume", "delete", "busy", "--yes"]);
}
