//! Scenarios run both on one server and on a cluster (mount `a` and mount
//! `b` of one volume, through the same server or through different ones).

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::*;

/// Less than the kernel attribute TTL (1 s): passing proves the server
/// pushed an invalidation rather than the cache timing out.
pub const PUSHED: Duration = Duration::from_millis(500);

pub fn python(script: &str, args: &[&str]) -> Command {
    let mut c = Command::new("python3");
    c.arg("-c").arg(script).args(args);
    c
}

/// Runs `script` to its end; its stdout. Fails the test, with the
/// script's stderr, if it failed.
pub fn python_ok(script: &str, args: &[&str]) -> String {
    let out = python(script, args).output().expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill");
    assert!(ok.success(), "kill {sig} {pid}");
}

/// A line from a child's stdout.
pub fn line(c: &mut Child) -> String {
    let mut l = String::new();
    BufReader::new(c.stdout.as_mut().expect("stdout"))
        .read_line(&mut l)
        .expect("read");
    l.trim().to_string()
}

pub fn tell(c: &mut Child, what: &str) {
    let stdin = c.stdin.as_mut().expect("stdin");
    stdin.write_all(what.as_bytes()).expect("stdin");
    stdin.flush().expect("flush");
}

/// Data (close-to-open) and every kind of metadata change made on `a` is
/// seen on `b`, metadata pushed (faster than the kernel's cache expires).
pub fn every_change_crosses_mounts(a: &MountDir, b: &MountDir) {
    // close-to-open: a file closed on A is read whole on B
    let data = random_bytes(9 << 20, 1);
    fs::write(a.p("big"), &data).unwrap();
    assert_eq!(fs::read(b.p("big")).unwrap(), data);
    // overwrite a range in the middle, seen after close
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = fs::OpenOptions::new().write(true).open(a.p("big")).unwrap();
        f.seek(SeekFrom::Start(5 << 20)).unwrap();
        f.write_all(b"patched").unwrap();
    }
    let mut want = data.clone();
    want[5 << 20..(5 << 20) + 7].copy_from_slice(b"patched");
    assert_eq!(fs::read(b.p("big")).unwrap(), want);

    // create
    assert!(!b.p("new").exists());
    fs::write(a.p("new"), b"x").unwrap();
    eventually(PUSHED, "create seen", || b.p("new").exists());
    // mkdir, symlink, hard link
    fs::create_dir(a.p("dir")).unwrap();
    std::os::unix::fs::symlink("new", a.p("sym")).unwrap();
    fs::hard_link(a.p("new"), a.p("dir/hard")).unwrap();
    eventually(PUSHED, "mkdir/symlink/link seen", || {
        b.p("dir").is_dir()
            && fs::read_link(b.p("sym")).ok() == Some("new".into())
            && b.p("dir/hard").exists()
    });
    assert_eq!(fs::metadata(b.p("new")).unwrap().nlink(), 2);
    // chmod / chown / utimes
    assert_eq!(fs::metadata(b.p("new")).unwrap().mode() & 0o777, 0o644);
    fs::set_permissions(a.p("new"), fs::Permissions::from_mode(0o600)).unwrap();
    eventually(PUSHED, "chmod seen", || {
        fs::metadata(b.p("new")).unwrap().mode() & 0o777 == 0o600
    });
    std::os::unix::fs::chown(a.p("new"), Some(1234), Some(5678)).unwrap();
    eventually(PUSHED, "chown seen", || {
        let m = fs::metadata(b.p("new")).unwrap();
        (m.uid(), m.gid()) == (1234, 5678)
    });
    // truncate
    fs::metadata(b.p("big")).unwrap();
    fs::OpenOptions::new()
        .write(true)
        .open(a.p("big"))
        .unwrap()
        .set_len(1000)
        .unwrap();
    eventually(PUSHED, "truncate seen", || {
        fs::metadata(b.p("big")).unwrap().len() == 1000
    });
    assert_eq!(fs::read(b.p("big")).unwrap(), want[..1000]);
    // rename (and replace)
    fs::write(a.p("other"), b"other").unwrap();
    fs::metadata(b.p("other")).unwrap();
    fs::rename(a.p("new"), a.p("other")).unwrap();
    eventually(PUSHED, "rename seen", || {
        !b.p("new").exists() && fs::read(b.p("other")).ok() == Some(b"x".to_vec())
    });
    // unlink, rmdir
    fs::remove_file(a.p("dir/hard")).unwrap();
    fs::remove_dir(a.p("dir")).unwrap();
    eventually(PUSHED, "unlink/rmdir seen", || !b.p("dir").exists());
    // xattrs
    let st = Command::new("setfattr")
        .args(["-n", "user.k", "-v", "v1"])
        .arg(a.p("other"))
        .status();
    assert!(st
        .expect("setfattr (Debian package attr) is installed")
        .success());
    let out = Command::new("getfattr")
        .args(["--only-values", "-n", "user.k"])
        .arg(b.p("other"))
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"v1");
    // fsync of a file with nothing unwritten changes nothing
    let before = fs::metadata(a.p("other")).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    fs::OpenOptions::new()
        .write(true)
        .open(a.p("other"))
        .unwrap()
        .sync_all()
        .unwrap();
    let after = fs::metadata(b.p("other")).unwrap();
    assert_eq!(
        (before.mtime(), before.mtime_nsec()),
        (after.mtime(), after.mtime_nsec())
    );
    // listing agrees
    let mut la: Vec<_> = fs::read_dir(a.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let mut lb: Vec<_> = fs::read_dir(b.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    la.sort();
    lb.sort();
    assert_eq!(la, lb);
}

/// Six processes, three per mount, race on O_EXCL create, mkdir and link
/// of the same names; every round must have exactly one winner.
pub fn exclusive_races_have_one_winner(a: &MountDir, b: &MountDir) {
    fs::write(a.p("src"), b"s").unwrap();
    // Six processes, three per mount, race on O_EXCL create, mkdir and link
    // of the same names; every round must have exactly one winner.
    let script = r#"
import os, sys
base, rounds = sys.argv[1], int(sys.argv[2])
wins = []
for r in range(rounds):
    for op in ("excl", "mkdir", "link"):
        p = f"{base}/{op}{r}"
        try:
            if op == "excl":
                os.close(os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            elif op == "mkdir":
                os.mkdir(p)
            else:
                os.link(f"{base}/src", p)
            wins.append(f"{op}{r}")
        except FileExistsError:
            pass
print(" ".join(wins))
"#;
    let rounds = 40;
    let kids: Vec<_> = (0..6)
        .map(|i| {
            let base = if i % 2 == 0 { a.path() } else { b.path() };
            Command::new("python3")
                .arg("-c")
                .arg(script)
                .arg(base)
                .arg(rounds.to_string())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("python3")
        })
        .collect();
    let mut wins = std::collections::HashMap::<String, usize>::new();
    for k in kids {
        let out = k.wait_with_output().unwrap();
        assert!(out.status.success());
        for w in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            *wins.entry(w.to_string()).or_default() += 1;
        }
    }
    assert_eq!(wins.len(), rounds * 3, "every name won once: {wins:?}");
    assert!(
        wins.values().all(|&n| n == 1),
        "no name won twice: {wins:?}"
    );
    assert_eq!(
        fs::metadata(a.p("src")).unwrap().nlink() as usize,
        rounds + 1
    );
}

const SQLITE: &str = r#"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
me = sys.argv[2]
last = 0
for i in range(int(sys.argv[3])):
    db.execute("BEGIN IMMEDIATE")
    n = db.execute("SELECT count(*) FROM t").fetchone()[0]
    assert n >= last, (n, last)
    db.execute("INSERT INTO t(who, i, seen) VALUES (?, ?, ?)", (me, i, n))
    db.execute("COMMIT")
    last = n + 1
print("ok")
"#;

/// SQLite with its normal (fcntl) locking, one writer process per mount.
pub fn sqlite_from_two_mounts(a: &MountDir, b: &MountDir) {
    let path_a = a.p("shared.sqlite");
    let init = python(
        "import sqlite3,sys; d=sqlite3.connect(sys.argv[1]); d.execute('CREATE TABLE t(id INTEGER PRIMARY KEY, who TEXT, i INT, seen INT)'); d.commit()",
        &[path_a.to_str().expect("utf8")],
    )
    .status()
    .expect("python");
    assert!(init.success());
    let n = "150";
    let pa = python(SQLITE, &[path_a.to_str().expect("utf8"), "a", n])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python");
    let pb = python(
        SQLITE,
        &[b.p("shared.sqlite").to_str().expect("utf8"), "b", n],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("python");
    for (who, p) in [("a", pa), ("b", pb)] {
        let o = p.wait_with_output().expect("wait");
        assert!(
            o.status.success(),
            "writer {who}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let check = python(
        "import sqlite3,sys; d=sqlite3.connect(sys.argv[1]); print(d.execute('PRAGMA integrity_check').fetchone()[0], d.execute('SELECT count(*), count(DISTINCT seen) FROM t').fetchone())",
        &[b.p("shared.sqlite").to_str().expect("utf8")],
    )
    .output()
    .expect("python");
    // 300 rows, and every transaction saw all the rows before it
    assert_eq!(
        String::from_utf8_lossy(&check.stdout).trim(),
        "ok (300, 300)"
    );
}

/// A's application: takes the lock, writes 300,000 bytes, waits for "go";
/// then (`then`) writes more, fsyncs and closes, reporting each step.
const HOLDER: &str = r#"
import errno, fcntl, os, sys
path, how, size, then = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
f = os.open(path, os.O_RDWR)
(fcntl.lockf if how == "fcntl" else fcntl.flock)(f, fcntl.LOCK_EX)
left = size
while left:
    n = min(left, 1 << 20)
    os.write(f, os.urandom(n))
    left -= n
print("written", flush=True)
sys.stdin.readline()
steps = [("fsync", lambda: os.fsync(f)), ("close", lambda: os.close(f))]
if then == "write":
    steps.insert(0, ("write", lambda: os.write(f, b"a" * 1000)))
out = []
for name, step in steps:
    try:
        step()
        out.append(name + " ok")
    except OSError as e:
        out.append(name + " " + errno.errorcode[e.errno])
print(",".join(out), flush=True)
"#;

/// B's application: waits for the lock, replaces the contents with 1,000
/// bytes, fsyncs, unlocks; prints how long it waited.
const TAKER: &str = r#"
import fcntl, os, sys, time
path, how = sys.argv[1], sys.argv[2]
lock = fcntl.lockf if how == "fcntl" else fcntl.flock
f = os.open(path, os.O_RDWR)
t = time.time()
lock(f, fcntl.LOCK_EX)
waited = time.time() - t
os.ftruncate(f, 0)
os.pwrite(f, b"B" * 1000, 0)
os.fsync(f)
lock(f, fcntl.LOCK_UN)
os.close(f)
print(f"{waited:.2f}")
"#;

/// The report's scenario: A holds an exclusive lock and has written data
/// it has not closed; A's `svol mount` is frozen for 6 s (the lease is
/// 2 s); B takes the lock, writes and closes; A is continued. A's
/// application must get EIO (`then` = its next step after the freeze:
/// "write" or straight to "fsync", the lease running out while that
/// commit is in flight), and the file holds exactly B's data.
pub fn frozen_holder_is_fenced(a: &MountDir, b: &MountDir, how: &str, size: &str, then: &str) {
    std::fs::write(a.p("db"), b"").expect("create");
    eventually(Duration::from_secs(5), "file on b", || b.p("db").exists());
    let db = a.p("db");
    let mut holder = python(HOLDER, &[db.to_str().expect("utf8"), how, size, then])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python");
    assert_eq!(line(&mut holder), "written");
    let pid = mount_pid(a.path());
    signal(pid, "-STOP");
    let frozen = Instant::now();
    if then == "fsync" {
        // A's fsync goes to the frozen mount: its commit is in flight
        // while the lease runs out.
        tell(&mut holder, "go\n");
    }
    let out = run_with_timeout(
        python(TAKER, &[b.p("db").to_str().expect("utf8"), how]).stdout(Stdio::piped()),
        Duration::from_secs(60),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "B: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let waited: f64 = text.trim().parse().expect("seconds");
    assert!(
        waited > 1.0,
        "B got the lock after {waited}s, before A's lease ran out"
    );
    std::thread::sleep(Duration::from_secs(6).saturating_sub(frozen.elapsed()));
    signal(pid, "-CONT");
    if then == "write" {
        tell(&mut holder, "go\n");
    }
    let report = line(&mut holder);
    assert!(holder.wait().expect("wait").success());
    assert!(
        report.contains("EIO") && !report.contains("close ok"),
        "A's application must learn its writes were refused: {report}"
    );
    // Exactly B's data, seen from both mounts.
    let want = vec![b'B'; 1000];
    eventually(Duration::from_secs(5), "B's data on b", || {
        std::fs::read(b.p("db")).ok() == Some(want.clone())
    });
    eventually(Duration::from_secs(5), "B's data on a", || {
        std::fs::read(a.p("db")).ok() == Some(want.clone())
    });
    // A's mount is usable again, under a new session.
    std::fs::write(a.p("after"), b"fine").expect("write after the fence");
    assert_eq!(std::fs::read(b.p("after")).expect("read"), b"fine");
}
