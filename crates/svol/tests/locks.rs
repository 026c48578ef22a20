//! fcntl and flock locks across two mounts of one volume, granted by the
//! server: exclusion, blocking waits, F_GETLK, data written under a lock
//! seen by the next holder, release when the holder's client dies, and
//! SQLite (which locks with fcntl) used from both mounts at once.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::shared;
use common::{eventually, Server};

fn python(script: &str, args: &[&str]) -> Command {
    let mut c = Command::new("python3");
    c.arg("-c").arg(script).args(args);
    c
}

const HOLD: &str = r#"
import fcntl, os, sys, time
path, how, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
f = open(path, "r+")
if how == "fcntl":
    fcntl.lockf(f, fcntl.LOCK_EX)
else:
    fcntl.flock(f, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(secs)
f.seek(0); f.write("written under the lock by A\n"); f.flush()
f.close()   # releases the lock (and commits the data first)
"#;

const TAKE: &str = r#"
import errno, fcntl, os, struct, sys, time
path, how = sys.argv[1], sys.argv[2]
f = open(path, "r+")
lock = (lambda fl: fcntl.lockf(f, fl)) if how == "fcntl" else (lambda fl: fcntl.flock(f, fl))
try:
    lock(fcntl.LOCK_EX | fcntl.LOCK_NB)
    print("error: got the lock while A holds it"); sys.exit(1)
except OSError as e:
    assert e.errno in (errno.EAGAIN, errno.EACCES), e
if how == "fcntl":
    # F_GETLK names A's write lock
    probe = struct.pack("hhqqi", fcntl.F_WRLCK, 0, 0, 0, 0)
    got = struct.unpack("hhqqi", fcntl.fcntl(f, fcntl.F_GETLK, probe))
    assert got[0] == fcntl.F_WRLCK, got
t = time.time()
lock(fcntl.LOCK_EX)          # waits for A
waited = time.time() - t
f.seek(0)
print(f"{waited:.2f} {f.readline().strip()}")
"#;

/// Starts a process holding a lock on `path` for `secs`; returns once held.
fn hold(path: &std::path::Path, how: &str, secs: &str) -> std::process::Child {
    let mut holder = python(HOLD, &[path.to_str().expect("utf8"), how, secs])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python");
    let mut line = String::new();
    use std::io::BufRead;
    std::io::BufReader::new(holder.stdout.as_mut().expect("stdout"))
        .read_line(&mut line)
        .expect("read");
    assert_eq!(line.trim(), "locked");
    holder
}

fn exclusion(how: &str) {
    let s = Server::start();
    s.create_volume("v");
    let a = s.mount("v", &[]);
    let b = s.mount("v", &[]);
    std::fs::write(a.p("lockfile"), "initial contents of the file....\n").expect("write");
    eventually(Duration::from_secs(5), "file on b", || {
        b.p("lockfile").exists()
    });
    let mut holder = hold(&a.p("lockfile"), how, "1.5");
    let out = python(TAKE, &[b.p("lockfile").to_str().expect("utf8"), how])
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let (waited, seen) = text.trim().split_once(' ').expect("waited and line");
    let waited: f64 = waited.parse().expect("seconds");
    assert!(
        waited > 0.5,
        "B got the lock after {waited}s, before A let go"
    );
    assert_eq!(
        seen, "written under the lock by A",
        "B must read what A wrote under the lock"
    );
    assert!(holder.wait().expect("wait").success());
}

#[test]
fn fcntl_locks_exclude_across_mounts() {
    exclusion("fcntl");
}

#[test]
fn flock_locks_exclude_across_mounts() {
    exclusion("flock");
}

#[test]
fn a_dead_clients_locks_are_released_when_its_lease_ends() {
    let s = Server::start_with(&["--lease", "2s"]);
    s.create_volume("v");
    let b = s.mount("v", &[]);
    // Mount A in the foreground so the test can SIGKILL its client.
    let adir = tempfile::tempdir().expect("tempdir");
    let mut client = s
        .cmd()
        .args(["mount", "v", adir.path().to_str().expect("utf8")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mount");
    let ap = adir.path().to_path_buf();
    eventually(Duration::from_secs(10), "mount a ready", || {
        std::fs::read_to_string("/proc/self/mountinfo")
            .map(|m| m.contains(ap.to_str().unwrap_or("?")))
            .unwrap_or(false)
    });
    std::fs::write(ap.join("f"), "x").expect("write");
    let mut holder = hold(&ap.join("f"), "fcntl", "600");
    let try_b = || {
        python(
            "import fcntl,sys; f=open(sys.argv[1],'r+')\ntry:\n fcntl.lockf(f, fcntl.LOCK_EX|fcntl.LOCK_NB); print('got')\nexcept OSError: print('busy')",
            &[b.p("f").to_str().expect("utf8")],
        )
        .output()
        .expect("python")
    };
    assert_eq!(
        String::from_utf8_lossy(&try_b().stdout).trim(),
        "busy",
        "A's lock holds on B"
    );
    client.kill().expect("SIGKILL the client");
    let _ = client.wait();
    let t = Instant::now();
    let got = python(
        "import fcntl,sys; f=open(sys.argv[1],'r+'); fcntl.lockf(f, fcntl.LOCK_EX); print('got')",
        &[b.p("f").to_str().expect("utf8")],
    )
    .output()
    .expect("python");
    assert_eq!(String::from_utf8_lossy(&got.stdout).trim(), "got");
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "took {:?}",
        t.elapsed()
    );
    let _ = holder.kill();
    let _ = holder.wait();
    let _ = Command::new("fusermount3")
        .arg("-uz")
        .arg(&ap)
        .stderr(Stdio::null())
        .status();
}

/// SQLite with its normal (fcntl) locking, one writer process per mount.
#[test]
fn sqlite_from_two_mounts_stays_consistent() {
    let s = Server::start();
    s.create_volume("db");
    let a = s.mount("db", &[]);
    let b = s.mount("db", &[]);
    shared::sqlite_from_two_mounts(&a, &b);
}
