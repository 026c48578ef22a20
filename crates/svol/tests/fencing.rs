//! Coordination that holds when clients stall, servers restart and mounts
//! fall behind: a client frozen past its lease is fenced (its application
//! gets EIO and the next lock holder's data stays), locks outlive a server
//! restart, and a mount whose invalidations were dropped drops its caches.
//! Real server processes, real FUSE mounts, real applications (Python).

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::shared::{self, line, python, signal, tell};
use common::{eventually, mount_log, mount_pid, run_with_timeout, Restartable, Server};

fn frozen_holder_is_fenced(how: &str, size: &str, then: &str) {
    let s = Server::start_with(&["--lease", "2s"]);
    s.create_volume("v");
    let a = s.mount("v", &[]);
    let b = s.mount("v", &[]);
    shared::frozen_holder_is_fenced(&a, &b, how, size, then);
}

#[test]
fn a_frozen_fcntl_holder_is_fenced_and_the_next_holders_data_stays() {
    frozen_holder_is_fenced("fcntl", "300000", "write");
}

#[test]
fn a_frozen_flock_holder_is_fenced_and_the_next_holders_data_stays() {
    frozen_holder_is_fenced("flock", "300000", "write");
}

#[test]
fn a_lease_that_runs_out_during_a_commit_fails_it() {
    // 64 MiB of fresh data: its blocks are uploading when A freezes, and
    // A's fsync (the commit) is queued behind the freeze.
    frozen_holder_is_fenced("flock", "67108864", "fsync");
}

/// Tries (or, with "wait", waits for) an exclusive flock; retries while
/// the mount is still reconnecting to a restarted server. Prints "locked"
/// with the seconds waited, or the errno name.
const TRY: &str = r#"
import errno, fcntl, os, sys, time
path, mode = sys.argv[1], sys.argv[2]
start = time.time()
for attempt in range(100):
    try:
        f = os.open(path, os.O_RDWR)
        fcntl.flock(f, fcntl.LOCK_EX | (0 if mode == "wait" else fcntl.LOCK_NB))
        print(f"locked {time.time() - start:.2f}", flush=True)
        break
    except OSError as e:
        if e.errno in (errno.EIO, errno.ENOTCONN) and attempt < 99:
            time.sleep(0.2)
            continue
        print(errno.errorcode[e.errno], flush=True)
        break
"#;

const HOLD: &str = r#"
import fcntl, os, sys
f = os.open(sys.argv[1], os.O_RDWR)
fcntl.flock(f, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.readline()
os.close(f)
"#;

fn try_lock(path: &std::path::Path, mode: &str) -> String {
    let out = run_with_timeout(
        python(TRY, &[path.to_str().expect("utf8"), mode]).stdout(Stdio::piped()),
        Duration::from_secs(60),
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Locks live in the database: after `kill -9` of the server and a start
/// on the same data dir, a holder that reconnects within its lease keeps
/// its lock; one that does not come back loses it when its lease runs out,
/// and the waiter gets it then.
#[test]
fn locks_survive_a_server_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut srv = Restartable::new(
        dir.path().join("data"),
        dir.path().join("server.log"),
        &["--lease", "4s"],
    );
    srv.ok(&["volume", "create", "v"]);
    let a = srv.mount("v");
    let b = srv.mount("v");
    std::fs::write(a.p("lockfile"), b"x").expect("write");
    eventually(Duration::from_secs(5), "file on b", || {
        b.p("lockfile").exists()
    });
    let lockfile = a.p("lockfile");
    let mut holder = python(HOLD, &[lockfile.to_str().expect("utf8")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python");
    assert_eq!(line(&mut holder), "locked");

    srv.kill9();
    srv.start();
    // A reconnected and resumed its session: the lock is still A's, also
    // once more than a lease has passed.
    assert_eq!(try_lock(&b.p("lockfile"), "try"), "EAGAIN");
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(try_lock(&b.p("lockfile"), "try"), "EAGAIN");
    tell(&mut holder, "done\n");
    assert!(holder.wait().expect("wait").success());
    assert!(try_lock(&b.p("lockfile"), "wait").starts_with("locked"));

    // Now A takes it again and never comes back (its mount dies with the
    // server): after the restart, B's waiting lock is granted once A's
    // lease has run out.
    let mut holder = python(HOLD, &[lockfile.to_str().expect("utf8")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python");
    assert_eq!(line(&mut holder), "locked");
    srv.kill9();
    signal(mount_pid(a.path()), "-KILL");
    let _ = holder.kill();
    let _ = holder.wait();
    srv.start();
    let got = try_lock(&b.p("lockfile"), "wait");
    let waited: f64 = got
        .strip_prefix("locked ")
        .unwrap_or_else(|| panic!("B: {got}"))
        .parse()
        .expect("seconds");
    assert!(
        waited < 15.0,
        "B waited {waited}s for a lease of 4s to run out"
    );
}

/// A mount that stops reading (frozen) while the other mount changes a
/// lot falls more than its queue behind: the server drops what does not
/// fit and, once the mount catches up, tells it to drop its caches. It
/// says so in its log and serves the current state.
#[test]
fn a_mount_that_fell_behind_drops_its_caches() {
    let s = Server::start_with(&["--session-queue", "16"]);
    s.create_volume("v");
    let a = s.mount("v", &[]);
    let b = s.mount("v", &[]);
    std::fs::write(a.p("f"), b"version-0").expect("write");
    eventually(Duration::from_secs(5), "f on b", || {
        std::fs::read(b.p("f")).ok().as_deref() == Some(&b"version-0"[..])
    });
    let pid = mount_pid(b.path());
    signal(pid, "-STOP");
    for i in 0..200 {
        std::fs::write(a.p(&format!("g{i}")), b"g").expect("create");
    }
    std::fs::write(a.p("f"), b"version-1").expect("rewrite");
    signal(pid, "-CONT");
    eventually(
        Duration::from_secs(10),
        "b notices it missed invalidations",
        || mount_log(b.path()).contains("invalidations were lost"),
    );
    assert_eq!(std::fs::read(b.p("f")).expect("read"), b"version-1");
    let names = std::fs::read_dir(b.path()).expect("ls").count();
    assert_eq!(names, 201, "every file a made is listed on b");
}
