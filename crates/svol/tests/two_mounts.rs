//! Two `svol mount` processes of one volume, as if on two hosts.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::time::Duration;

use common::shared::{self, PUSHED};
use common::*;

#[test]
fn data_and_every_metadata_change_cross_mounts() {
    let s = Server::start();
    s.create_volume("shared");
    let a = s.mount("shared", &[]);
    let b = s.mount("shared", &[]);
    shared::every_change_crosses_mounts(&a, &b);
}

#[test]
fn exclusive_operations_have_one_winner_across_mounts() {
    let s = Server::start();
    s.create_volume("race");
    let a = s.mount("race", &[]);
    let b = s.mount("race", &[]);
    shared::exclusive_races_have_one_winner(&a, &b);
}

#[test]
fn read_only_and_sub_path_mounts() {
    let s = Server::start();
    s.create_volume("v");
    let rw = s.mount("v", &[]);
    fs::create_dir_all(rw.p("models/llama")).unwrap();
    fs::write(rw.p("models/llama/w.bin"), b"weights").unwrap();
    fs::write(rw.p("top.txt"), b"top").unwrap();

    let ro = s.mount("v", &["--read-only"]);
    assert_eq!(fs::read(ro.p("models/llama/w.bin")).unwrap(), b"weights");
    let err = fs::write(ro.p("x"), b"no").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc_erofs()), "{err}");
    assert!(fs::remove_file(ro.p("top.txt")).is_err());
    assert!(ro.p("top.txt").exists());

    let sub = s.mount("v", &["--sub-path", "/models"]);
    assert!(sub.p("llama/w.bin").exists());
    assert!(!sub.p("top.txt").exists());
    fs::write(sub.p("llama/new"), b"n").unwrap();
    assert_eq!(fs::read(rw.p("models/llama/new")).unwrap(), b"n");
    let o = s.run(&["mount", "v", "/tmp", "--sub-path", "/top.txt", "-d"]);
    assert!(!o.status.success());
}

fn libc_erofs() -> i32 {
    30
}

#[test]
fn unlinked_but_open_file_stays_readable() {
    let s = Server::start();
    s.create_volume("u");
    let a = s.mount("u", &[]);
    let b = s.mount("u", &[]);
    let data = random_bytes(6 << 20, 7);
    fs::write(a.p("f"), &data).unwrap();
    let mut f = fs::File::open(b.p("f")).unwrap();
    fs::remove_file(a.p("f")).unwrap();
    eventually(PUSHED, "unlink seen", || !b.p("f").exists());
    let mut got = Vec::new();
    std::io::Read::read_to_end(&mut f, &mut got).unwrap();
    assert_eq!(got, data);
    drop(f);
}

#[test]
fn reader_with_an_old_open_survives_a_rewrite_on_another_mount() {
    use std::io::{Read, Seek, SeekFrom};
    let s = Server::start();
    s.create_volume("rw");
    let a = s.mount("rw", &[]);
    let b = s.mount("rw", &[]);
    let old = random_bytes(40 << 20, 11);
    let new = random_bytes(40 << 20, 12);
    fs::write(a.p("f"), &old).unwrap();
    let mut f = fs::File::open(b.p("f")).unwrap();
    let mut head = vec![0u8; 4096];
    f.read_exact(&mut head).unwrap();
    assert_eq!(head, old[..4096]);
    // A replaces every chunk; the old blocks lose their last reference.
    // (Chunk 8 is past the readahead window of the first read.)
    fs::write(a.p("f"), &new).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    f.seek(SeekFrom::Start(33 << 20)).unwrap();
    let mut tail = vec![0u8; 4096];
    f.read_exact(&mut tail)
        .expect("no I/O error for a reader whose blocks were replaced");
    let at = 33 << 20;
    assert!(
        tail == old[at..at + 4096] || tail == new[at..at + 4096],
        "the bytes are the old or the new contents, never anything else"
    );
    drop(f);
    assert_eq!(fs::read(b.p("f")).unwrap(), new);
}

/// An explicit modification time set on an open file after writing it
/// (what `tar -x` does: write, futimens, close) is the time that stays,
/// on this mount and on the other one.
#[test]
fn a_time_set_after_writing_survives_the_close() {
    let s = Server::start();
    s.create_volume("times");
    let a = s.mount("times", &[]);
    let b = s.mount("times", &[]);
    let when = 978_307_200; // 2001-01-01
    shared::python_ok(
        "import os,sys\nfd=os.open(sys.argv[1],os.O_CREAT|os.O_WRONLY,0o644)\n\
         os.write(fd,b'x'*100000)\nos.utime(fd,(int(sys.argv[2]),int(sys.argv[2])))\nos.close(fd)",
        &[a.p("f").to_str().expect("utf8"), &when.to_string()],
    );
    assert_eq!(fs::metadata(a.p("f")).unwrap().mtime(), when);
    assert_eq!(fs::metadata(b.p("f")).unwrap().mtime(), when);

    // The real program: an archive of files with old times, extracted on
    // A, compared by tar itself on B (times included).
    let src = tempfile::tempdir().unwrap();
    for i in 0..20 {
        let p = src.path().join(format!("file{i}"));
        fs::write(&p, random_bytes(1000 + i * 7000, i as u64)).unwrap();
        let t = std::time::UNIX_EPOCH + Duration::from_secs(when as u64 + i as u64 * 86_400);
        fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(t)
            .unwrap();
    }
    let tarball = src.path().join("../svol-times.tar");
    let ok = |c: &mut Command| {
        let o = c.output().expect("tar");
        assert!(
            o.status.success(),
            "{c:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    };
    ok(Command::new("tar")
        .arg("-cf")
        .arg(&tarball)
        .arg("-C")
        .arg(src.path())
        .arg("."));
    ok(Command::new("tar")
        .arg("-xf")
        .arg(&tarball)
        .arg("-C")
        .arg(a.path()));
    ok(Command::new("tar")
        .arg("-df")
        .arg(&tarball)
        .arg("-C")
        .arg(b.path()));
    let _ = fs::remove_file(&tarball);
}

/// git's checkout writes a file, `fstat`s it while still open, records
/// that mtime in its index, then closes. The close must not move the
/// mtime: otherwise `git status` on any mount finds every file "changed"
/// and reads it all back. Here in a directory the mount made and listed,
/// where its closes join the queue of what it made ahead.
#[test]
fn the_mtime_seen_after_writing_is_the_one_the_file_keeps() {
    let s = Server::start();
    s.create_volume("mtimes");
    let a = s.mount("mtimes", &[]);
    let b = s.mount("mtimes", &[]);
    fs::create_dir(a.p("d")).expect("mkdir");
    assert_eq!(fs::read_dir(a.p("d")).expect("list").count(), 0);
    let seen = shared::python_ok(
        "import os,sys,time\nfor i in range(200):\n    p=os.path.join(sys.argv[1],str(i))\n    \
         fd=os.open(p,os.O_CREAT|os.O_WRONLY,0o644)\n    os.write(fd,b'x'*(100+i))\n    \
         time.sleep(0.001)\n    os.write(fd,b'y')\n    \
         print(i,os.fstat(fd).st_mtime_ns)\n    os.close(fd)",
        &[a.p("d").to_str().expect("utf8")],
    );
    assert_eq!(seen.lines().count(), 200);
    let ns = |m: &fs::Metadata| m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128;
    for line in seen.lines() {
        let (i, want) = line.split_once(' ').expect("line");
        let want: i128 = want.parse().expect("ns");
        for (side, m) in [("A", &a), ("B", &b)] {
            let got = ns(&fs::metadata(m.p(&format!("d/{i}"))).expect("stat"));
            assert_eq!(got, want, "d/{i} on {side}: mtime moved after fstat");
        }
    }
}

/// A write-only open that has its file to itself goes around the page
/// cache (direct.rs); the pages other opens cached must never be read
/// stale for it: not those left from before it opened, not those of a
/// reader opened (and mapped) while it writes, not those of a reader that
/// was there first. Mount B reads the end result.
#[test]
fn direct_writes_never_leave_a_stale_page_on_their_mount() {
    let s = Server::start();
    s.create_volume("direct");
    let a = s.mount("direct", &[]);
    let b = s.mount("direct", &[]);
    let out = shared::python_ok(
        r#"
import mmap, os, sys
p = os.path.join(sys.argv[1], "ckpt")
MiB = 1 << 20
def whole(fd):
    return os.pread(fd, 4 * MiB, 0)
with open(p, "wb") as f:
    f.write(b"a" * MiB)
r = os.open(p, os.O_RDONLY)  # its pages stay cached after the close
assert whole(r) == b"a" * MiB
os.close(r)
w = os.open(p, os.O_WRONLY)
os.pwrite(w, b"b" * 65536, 0)
r = os.open(p, os.O_RDONLY)  # opened while the writer is
assert os.pread(r, 65537, 0) == b"b" * 65536 + b"a", "a page from before the writer"
m = mmap.mmap(r, MiB, prot=mmap.PROT_READ)  # shared, through the cache
assert m[65535:65537] == b"ba", "a mapped page from before the writer"
os.pwrite(w, b"c" * 100, MiB)
os.pwrite(w, b"e" * 10, 65530)
got = whole(r)
assert len(got) == MiB + 100 and got[-101:] == b"a" + b"c" * 100, "a write while reading"
assert m[65529:65541] == b"b" + b"e" * 10 + b"a", "a write while mapped"
m.close()
os.close(r)
os.close(w)
r = os.open(p, os.O_RDONLY)
m = mmap.mmap(r, 0, prot=mmap.PROT_READ)
want = b"b" * 65530 + b"e" * 10 + b"a" * (MiB - 65540) + b"c" * 100
assert whole(r) == m[:] == want, "after the close"
m.close()
os.close(r)
r = os.open(p, os.O_RDONLY)  # a reader first: the writer shares its cache
assert os.pread(r, 10, 0) == b"b" * 10
w = os.open(p, os.O_WRONLY)
os.pwrite(w, b"d" * 10, 0)
assert os.pread(r, 11, 0) == b"d" * 10 + b"b", "the reader that was there first"
os.close(w)
os.close(r)
print("ok")
"#,
        &[a.path().to_str().expect("utf8")],
    );
    assert_eq!(out.trim(), "ok");
    let want = [
        vec![b'd'; 10],
        vec![b'b'; 65530 - 10],
        vec![b'e'; 10],
        vec![b'a'; (1 << 20) - 65540],
        vec![b'c'; 100],
    ]
    .concat();
    assert!(
        fs::read(b.p("ckpt")).expect("read on B") == want,
        "B reads what A wrote"
    );
}

/// `tail -f` across mounts: a reader keeps its file open and polls
/// fstat + pread while a writer on the other mount appends and fsyncs; the
/// reader sees every fsync'd byte (size and readable bytes agree), and all
/// of it once the writer closes.
#[test]
fn an_open_reader_follows_a_growing_file_from_another_mount() {
    let s = Server::start();
    s.create_volume("log");
    let a = s.mount("log", &[]);
    let b = s.mount("log", &[]);
    fs::write(a.p("app.log"), b"").unwrap();
    eventually(Duration::from_secs(5), "log on b", || {
        b.p("app.log").exists()
    });
    let reader = Command::new("python3")
        .arg("-c")
        .arg(
            r#"
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
want, got, short = int(sys.argv[2]), b"", 0
deadline = time.time() + 30
while len(got) < want and time.time() < deadline:
    size = os.fstat(fd).st_size
    if size > len(got):
        d = os.pread(fd, size - len(got), len(got))
        if len(d) < size - len(got):
            short += 1
        got += d
    else:
        time.sleep(0.005)
sys.stdout.buffer.write(got)
print(f"\nshort={short}", file=sys.stderr)
"#,
        )
        .arg(b.p("app.log"))
        .arg((200 * 50).to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut want = Vec::new();
    {
        use std::io::Write;
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(a.p("app.log"))
            .unwrap();
        for i in 0..200 {
            let line = format!("{i:05} {}\n", "x".repeat(43));
            f.write_all(line.as_bytes()).unwrap();
            want.extend_from_slice(line.as_bytes());
            if i % 20 == 19 {
                f.sync_data().unwrap();
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    let out = reader.wait_with_output().expect("reader");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stdout == want,
        "the reader got {} of {} bytes ({})",
        out.stdout.len(),
        want.len(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// Close-to-open when a name is recreated: A unlinks `g`, creates it,
/// writes generation n and closes, 300 times; B opens and reads `g` in a
/// loop. Both log the machine's monotonic clock: a read on B that began
/// after A's close of generation n returned and ended before A unlinked it
/// must read generation n — not the empty file B may have seen created.
#[test]
fn close_to_open_holds_when_a_name_is_recreated() {
    let s = Server::start();
    s.create_volume("recreate");
    let a = s.mount("recreate", &[]);
    let b = s.mount("recreate", &[]);
    fs::write(a.p("g"), b"gen 0000").unwrap();
    eventually(Duration::from_secs(5), "g on b", || b.p("g").exists());
    let writer = Command::new("python3")
        .arg("-c")
        .arg(
            r#"
import os, sys, time
g = sys.argv[1]
for n in range(1, 301):
    t_unlink = time.monotonic()
    os.unlink(g)
    fd = os.open(g, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    os.write(fd, b"gen %04d" % n)
    os.close(fd)
    print(n, t_unlink, time.monotonic(), flush=True)
    time.sleep(0.002)
"#,
        )
        .arg(a.p("g"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let reader = Command::new("python3")
        .arg("-c")
        .arg(
            r#"
import os, sys, time
g, end = sys.argv[1], time.time() + float(sys.argv[2])
while time.time() < end:
    t0 = time.monotonic()
    try:
        with open(g, "rb") as f:
            got = f.read()
    except FileNotFoundError:
        continue
    print(t0, time.monotonic(), got.decode() or "EMPTY", flush=True)
"#,
        )
        .arg(b.p("g"))
        .arg("4")
        .output()
        .expect("python3");
    let w = writer.wait_with_output().expect("writer");
    assert!(w.status.success());
    // n -> (when A began unlinking generation n-1's file, when A's close of n returned)
    let gens: Vec<(u64, f64, f64)> = String::from_utf8_lossy(&w.stdout)
        .lines()
        .map(|l| {
            let v: Vec<&str> = l.split_whitespace().collect();
            (
                v[0].parse().unwrap(),
                v[1].parse().unwrap(),
                v[2].parse().unwrap(),
            )
        })
        .collect();
    let mut judged = 0;
    let mut stale = Vec::new();
    for l in String::from_utf8_lossy(&reader.stdout).lines() {
        let v: Vec<&str> = l.split_whitespace().collect();
        let (t0, t1): (f64, f64) = (v[0].parse().unwrap(), v[1].parse().unwrap());
        let got = v[2..].join(" ");
        // The generation whose close returned before this read began and
        // whose file was not unlinked until after it ended.
        let Some(&(n, _, _)) = gens.iter().rev().find(|(_, _, closed)| *closed < t0) else {
            continue;
        };
        let next_unlink = gens.iter().find(|(m, _, _)| *m == n + 1).map(|g| g.1);
        if next_unlink.is_some_and(|u| u < t1) {
            continue; // A moved on while B read: any generation is fair
        }
        judged += 1;
        if got != format!("gen {n:04}") {
            stale.push((n, got));
        }
    }
    assert!(
        judged > 20,
        "too few reads fell between a close and the next unlink: {judged}"
    );
    assert!(
        stale.is_empty(),
        "{} of {judged} opens after a close read something else: {:?}",
        stale.len(),
        &stale[..stale.len().min(5)]
    );
}

/// B keeps a listing of the directory and answers "no such name" from it
/// (listings.rs); a name A creates (by create, mkdir, link or rename) must
/// be there on B the moment A's call returns: the server recalls B's
/// listing before A's change returns (recall.rs). A client that ignored
/// recalls fails this at once; that the server waits for the recall (and
/// does not merely race its push against A's reply) is checked without
/// timing luck in the server's `sessions` tests.
#[test]
fn a_name_made_on_one_mount_is_at_once_visible_on_another_that_listed_the_directory() {
    let s = Server::start();
    s.create_volume("recall");
    let a = s.mount("recall", &[]);
    let b = s.mount("recall", &[]);
    fs::create_dir(a.p("d")).unwrap();
    fs::write(a.p("d/seed"), b"x").unwrap();
    eventually(Duration::from_secs(5), "d/seed on b", || {
        b.p("d/seed").exists()
    });
    for i in 0..300 {
        // B misses a name: it (re)lists d, watched, and keeps the listing.
        assert!(!b.p(&format!("d/none{i}")).exists());
        let name = match i % 4 {
            0 => {
                fs::File::create_new(a.p(&format!("d/c{i}"))).unwrap();
                format!("d/c{i}")
            }
            1 => {
                fs::create_dir(a.p(&format!("d/m{i}"))).unwrap();
                format!("d/m{i}")
            }
            2 => {
                fs::hard_link(a.p("d/seed"), a.p(&format!("d/l{i}"))).unwrap();
                format!("d/l{i}")
            }
            _ => {
                fs::write(a.p(&format!("d/t{i}")), b"r").unwrap();
                fs::rename(a.p(&format!("d/t{i}")), a.p(&format!("d/r{i}"))).unwrap();
                format!("d/r{i}")
            }
        };
        assert!(
            b.p(&name).exists(),
            "{name}: made on A, absent on B right after (round {i})"
        );
        // B's listing follows B's own changes too.
        fs::File::create_new(b.p(&format!("d/b{i}"))).unwrap();
        assert!(a.p(&format!("d/b{i}")).exists(), "d/b{i} on A");
        assert!(b.p(&format!("d/b{i}")).exists(), "d/b{i} on B");
    }
}

/// B answers `stat` from its listing of a directory (listings.rs): a
/// change A makes to a listed entry's attributes — mode, size by a rewrite
/// or a truncate, link count, times — recalls that listing before A's call
/// returns, so B's next `stat` is exact; B's own changes update its
/// listing. (Attributes the kernel caches from server answers are only
/// invalidated by push, within milliseconds: each check here starts from a
/// fresh listing in a directory of its own.)
#[test]
fn attributes_answered_from_a_listing_follow_changes_on_either_mount() {
    use std::os::unix::fs::PermissionsExt;
    let s = Server::start();
    s.create_volume("attrs");
    let a = s.mount("attrs", &[]);
    let b = s.mount("attrs", &[]);
    let touch = |p: std::path::PathBuf| {
        let t = Command::new("touch")
            .args(["-m", "-d", "2001-02-03 04:05:06"])
            .arg(p)
            .status()
            .unwrap();
        assert!(t.success());
    };
    for i in 0..20 {
        for kind in 0..6 {
            let d = format!("d{i}-{kind}");
            let f = format!("{d}/f");
            fs::create_dir(a.p(&d)).unwrap();
            fs::write(a.p(&f), b"12345").unwrap();
            // B lists the directory (a miss) and answers from it.
            assert!(!b.p(&format!("{d}/none")).exists());
            assert_eq!(fs::metadata(b.p(&f)).unwrap().len(), 5, "{f}: size");
            let on_b = || fs::metadata(b.p(&f)).unwrap();
            match kind {
                0 => {
                    fs::set_permissions(a.p(&f), fs::Permissions::from_mode(0o601)).unwrap();
                    assert_eq!(on_b().mode() & 0o777, 0o601, "{f}: chmod on A");
                }
                1 => {
                    fs::write(a.p(&f), vec![7u8; 1000 + i]).unwrap();
                    assert_eq!(on_b().len(), 1000 + i as u64, "{f}: rewrite on A");
                }
                2 => {
                    let w = fs::OpenOptions::new().write(true).open(a.p(&f)).unwrap();
                    w.set_len(3).unwrap();
                    assert_eq!(on_b().len(), 3, "{f}: truncate on A");
                }
                3 => {
                    fs::hard_link(a.p(&f), a.p(&format!("{d}/h"))).unwrap();
                    assert_eq!(on_b().nlink(), 2, "{f}: link on A");
                }
                4 => {
                    touch(a.p(&f));
                    let want = fs::metadata(a.p(&f)).unwrap().mtime();
                    assert_eq!(on_b().mtime(), want, "{f}: mtime set on A");
                }
                _ => {
                    // B's own changes: its listing takes the replies.
                    fs::set_permissions(b.p(&f), fs::Permissions::from_mode(0o640)).unwrap();
                    fs::write(b.p(&f), b"from b, longer").unwrap();
                    assert_eq!(
                        (on_b().mode() & 0o777, on_b().len()),
                        (0o640, 14),
                        "{f} on B"
                    );
                    let on_a = fs::metadata(a.p(&f)).unwrap();
                    assert_eq!((on_a.mode() & 0o777, on_a.len()), (0o640, 14), "{f} on A");
                }
            }
        }
    }
}

/// A mount that holds a directory makes names there ahead of the server
/// (ahead.rs): `creat` and `mkdir` return before the server knows, and the
/// creates go out in batches. Another mount must not notice: every name A
/// made is there on B as soon as A's call returned (B's first look recalls
/// A's hold, and A lands its queue before it answers), with the inode
/// number A's application saw, refused to B's O_EXCL, readable, renamable
/// and removable like any other.
#[test]
fn names_made_ahead_are_visible_on_the_other_mount_as_soon_as_made() {
    let s = Server::start();
    s.create_volume("ahead");
    let a = s.mount("ahead", &[]);
    let b = s.mount("ahead", &[]);
    fs::create_dir(a.p("d")).unwrap();
    let mut names = 0;
    for round in 0..20 {
        // A misses a name (it lists d), then makes a burst there: plain
        // files, a directory, and a file with data inside that directory.
        assert!(!a.p(&format!("d/miss{round}")).exists());
        for i in 0..50 {
            fs::File::create_new(a.p(&format!("d/f{round}-{i}"))).unwrap();
        }
        fs::create_dir(a.p(&format!("d/s{round}"))).unwrap();
        fs::write(a.p(&format!("d/s{round}/x")), round.to_string()).unwrap();
        names += 51;
        let last = format!("d/f{round}-49");
        let (ma, mb) = (
            fs::metadata(a.p(&last)).unwrap(),
            fs::metadata(b.p(&last)).unwrap(),
        );
        assert_eq!(ma.ino(), mb.ino(), "{last}: inode numbers differ");
        assert_eq!(ma.mtime(), mb.mtime(), "{last}: mtimes differ");
        assert_eq!(
            fs::read_to_string(b.p(&format!("d/s{round}/x"))).unwrap(),
            round.to_string()
        );
        let listed = fs::read_dir(b.p("d")).unwrap().count();
        assert_eq!(listed, names, "round {round}: B lists d");
        let taken = fs::File::create_new(b.p(&format!("d/f{round}-0"))).unwrap_err();
        assert_eq!(taken.kind(), std::io::ErrorKind::AlreadyExists);
        // B makes a name there too; A sees it at once.
        fs::File::create_new(b.p(&format!("d/b{round}"))).unwrap();
        names += 1;
        assert!(a.p(&format!("d/b{round}")).exists(), "d/b{round} on A");
    }
    // Names made ahead behave like any other: renamed and removed on A,
    // seen so on B; the directories made ahead count their links.
    fs::rename(a.p("d/f0-1"), a.p("d/renamed")).unwrap();
    fs::remove_file(a.p("d/f0-2")).unwrap();
    assert!(b.p("d/renamed").exists());
    assert!(!b.p("d/f0-2").exists());
    assert!(!b.p("d/f0-1").exists());
    assert_eq!(fs::metadata(b.p("d")).unwrap().nlink(), 2 + 20);
    assert_eq!(fs::metadata(a.p("d")).unwrap().nlink(), 2 + 20);
    fs::File::open(a.p("d")).unwrap().sync_all().unwrap();
}

/// What pjdfstest found: a change right after a mkdir made ahead must wait
/// for the batch carrying that mkdir, and link counts after a rename out
/// of a directory made ahead are the server's, not a per-create snapshot.
#[test]
fn a_name_made_ahead_takes_changes_at_once_and_counts_links_right() {
    use std::os::unix::fs::PermissionsExt;
    let s = Server::start();
    s.create_volume("ahead2");
    let a = s.mount("ahead2", &[]);
    let b = s.mount("ahead2", &[]);
    fs::create_dir(a.p("d")).unwrap();
    assert!(!a.p("d/nothing").exists());
    for i in 0..40 {
        let dir = a.p(&format!("d/m{i}"));
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o711)).unwrap();
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o7777, 0o711, "d/m{i}");
        let file = a.p(&format!("d/m{i}/f"));
        fs::File::create_new(&file).unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
    }
    // A file made ahead, written, given a mode and times on its open fd
    // (as tar does), closed: the other mount opens it at once and finds
    // all of it.
    use std::io::Write;
    let old = std::time::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    for i in 0..40 {
        let name = format!("d/w{i}");
        let mut f = fs::File::create_new(a.p(&name)).unwrap();
        f.write_all(format!("generation {i}").as_bytes()).unwrap();
        f.set_permissions(fs::Permissions::from_mode(0o640))
            .unwrap();
        f.set_times(fs::FileTimes::new().set_modified(old).set_accessed(old))
            .unwrap();
        drop(f);
        assert_eq!(
            fs::read_to_string(b.p(&name)).unwrap(),
            format!("generation {i}")
        );
        for m in [&a, &b] {
            let md = fs::metadata(m.p(&name)).unwrap();
            assert_eq!(md.mode() & 0o7777, 0o640, "{name}");
            assert_eq!(md.mtime(), 1_000_000_000, "{name}");
            assert_eq!(md.len(), format!("generation {i}").len() as u64, "{name}");
        }
    }
    for i in 0..40 {
        let mb = fs::metadata(b.p(&format!("d/m{i}"))).unwrap();
        assert_eq!(mb.mode() & 0o7777, 0o711, "d/m{i} on B");
        let fb = fs::metadata(b.p(&format!("d/m{i}/f"))).unwrap();
        assert_eq!(fb.mode() & 0o7777, 0o600, "d/m{i}/f on B");
    }
    // A directory made ahead moves into another made ahead: the parents'
    // link counts are those the server keeps, on both mounts.
    fs::create_dir(a.p("d/from")).unwrap();
    fs::create_dir(a.p("d/from/sub")).unwrap();
    fs::create_dir(a.p("d/to")).unwrap();
    fs::rename(a.p("d/from/sub"), a.p("d/to/sub")).unwrap();
    for m in [&a, &b] {
        assert_eq!(fs::metadata(m.p("d/from")).unwrap().nlink(), 2);
        assert_eq!(fs::metadata(m.p("d/to")).unwrap().nlink(), 3);
        assert_eq!(fs::metadata(m.p("d")).unwrap().nlink(), 2 + 42);
        assert_eq!(fs::read_dir(m.p("d")).unwrap().count(), 40 + 40 + 2);
    }
}

/// The kernel keeps a listed entry's attributes (listings.rs) and a
/// recall drops them before it is answered. B stats 60 files over and over
/// while A changes each once (the mtime of even ones, the size of odd
/// ones); every stat on B that began after A's change returned must show
/// it — a kernel copy the recall missed would show the old one for
/// seconds.
#[test]
fn attributes_the_kernel_keeps_are_dropped_before_a_change_returns() {
    let s = Server::start();
    s.create_volume("kept");
    let a = s.mount("kept", &[]);
    let b = s.mount("kept", &[]);
    const N: usize = 60;
    for i in 0..N {
        fs::create_dir(a.p(&format!("d{i}"))).unwrap();
        fs::write(a.p(&format!("d{i}/f")), b"1234").unwrap();
    }
    let reader = Command::new("python3")
        .arg("-c")
        .arg(
            r#"
import os, sys, time
root, n, end = sys.argv[1], int(sys.argv[2]), time.monotonic() + float(sys.argv[3])
paths = [os.path.join(root, f"d{i}", "f") for i in range(n)]
while time.monotonic() < end:
    for i, p in enumerate(paths):
        t0 = time.monotonic()
        st = os.stat(p)
        print(i, t0, time.monotonic(), st.st_mtime_ns, st.st_size)
"#,
        )
        .arg(b.path())
        .arg(N.to_string())
        .arg("4")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let writer = Command::new("python3")
        .arg("-c")
        .arg(
            r#"
import os, sys, time
root, n = sys.argv[1], int(sys.argv[2])
time.sleep(1.0)  # B has listed every directory and stat'ed every file
for i in range(n):
    p = os.path.join(root, f"d{i}", "f")
    if i % 2 == 0:
        os.utime(p, ns=(1_000_000_000 * (1000 + i), 1_000_000_000 * (1000 + i)))
    else:
        os.truncate(p, 1000 + i)
    print(i, time.monotonic(), flush=True)
    time.sleep(0.03)
"#,
        )
        .arg(a.path())
        .arg(N.to_string())
        .output()
        .expect("python3");
    assert!(writer.status.success());
    let out = reader.wait_with_output().expect("reader");
    assert!(out.status.success());
    let changed: Vec<f64> = String::from_utf8_lossy(&writer.stdout)
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(changed.len(), N);
    let (mut judged, mut stale) = (0, Vec::new());
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let v: Vec<&str> = l.split_whitespace().collect();
        let i: usize = v[0].parse().unwrap();
        let t0: f64 = v[1].parse().unwrap();
        let (mtime_ns, size): (u128, u64) = (v[3].parse().unwrap(), v[4].parse().unwrap());
        if t0 <= changed[i] {
            continue;
        }
        judged += 1;
        let fresh = if i % 2 == 0 {
            mtime_ns == 1_000_000_000 * (1000 + i as u128)
        } else {
            size == 1000 + i as u64
        };
        if !fresh {
            stale.push(l.to_string());
        }
    }
    assert!(
        judged > 10 * N,
        "only {judged} stats on B came after a change"
    );
    assert!(
        stale.is_empty(),
        "{} of {judged} stats on B after A's change showed the old attributes: {:?}",
        stale.len(),
        &stale[..stale.len().min(5)]
    );
}

/// B keeps listing a directory while A changes the same few files again
/// and again (times on some, sizes on others, each change to a larger
/// value): B's listing is not recalled but sent each change's attributes
/// (sessions.rs `Listed`), so every stat on B that began after one of
/// A's changes returned must show that change or a later one — an update
/// applied out of order, or a late reply put over a newer update, would
/// show an older value.
#[test]
fn attributes_pushed_into_a_kept_listing_are_never_older_than_a_returned_change() {
    let s = Server::start();
    s.create_volume("hot");
    let a = s.mount("hot", &[]);
    let b = s.mount("hot", &[]);
    const N: usize = 4;
    const ROUNDS: usize = 150;
    fs::create_dir(a.p("hot")).unwrap();
    for j in 0..N {
        fs::write(a.p(&format!("hot/f{j}")), b"1234").unwrap();
    }
    let reader = Command::new("python3")
        .arg("-c")
        .arg(
            r#"
import os, sys, time
root, n, end = sys.argv[1], int(sys.argv[2]), time.monotonic() + float(sys.argv[3])
paths = [os.path.join(root, "hot", f"f{j}") for j in range(n)]
# A name looked up in vain makes B list the directory (listings.rs).
assert not os.path.exists(os.path.join(root, "hot", "nope"))
while time.monotonic() < end:
    for j, p in enumerate(paths):
        t0 = time.monotonic()
        st = os.stat(p)
        print(j, t0, st.st_mtime_ns // 1_000_000_000, st.st_size)
"#,
        )
        .arg(b.path())
        .arg(N.to_string())
        .arg("6")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let writer = Command::new("python3")
        .arg("-c")
        .arg(
            r#"
import os, sys, time
root, n, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
time.sleep(1.0)  # B has listed the directory
for k in range(rounds):
    for j in range(n):
        p = os.path.join(root, "hot", f"f{j}")
        v = 1000 + k
        if j % 2 == 0:
            os.utime(p, (v, v))
        else:
            os.truncate(p, v)
        print(j, v, time.monotonic(), flush=True)
"#,
        )
        .arg(a.path())
        .arg(N.to_string())
        .arg(ROUNDS.to_string())
        .output()
        .expect("python3");
    assert!(
        writer.status.success(),
        "{}",
        String::from_utf8_lossy(&writer.stderr)
    );
    let out = reader.wait_with_output().expect("reader");
    assert!(out.status.success());
    // Per file, the value each change set and when it had returned.
    let mut changes: Vec<Vec<(f64, u64)>> = vec![Vec::new(); N];
    for l in String::from_utf8_lossy(&writer.stdout).lines() {
        let v: Vec<&str> = l.split_whitespace().collect();
        let j: usize = v[0].parse().unwrap();
        changes[j].push((v[2].parse().unwrap(), v[1].parse().unwrap()));
    }
    assert_eq!(changes.iter().map(Vec::len).sum::<usize>(), N * ROUNDS);
    let (mut judged, mut stale) = (0, Vec::new());
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let v: Vec<&str> = l.split_whitespace().collect();
        let j: usize = v[0].parse().unwrap();
        let t0: f64 = v[1].parse().unwrap();
        let seen: u64 = if j % 2 == 0 {
            v[2].parse().unwrap()
        } else {
            v[3].parse().unwrap()
        };
        let Some(&(_, want)) = changes[j].iter().rev().find(|(t, _)| *t < t0) else {
            continue;
        };
        judged += 1;
        if seen < want {
            stale.push(format!("{l} (want >= {want})"));
        }
    }
    assert!(
        judged > 1000,
        "only {judged} stats on B came after a change"
    );
    assert!(
        stale.is_empty(),
        "{} of {judged} stats on B showed attributes older than a returned change: {:?}",
        stale.len(),
        &stale[..stale.len().min(5)]
    );
}

/// A mount reading through a directory of small files gets the next ones'
/// contents with one open and opens those without the server (peeks.rs).
/// What it got is only ever served as the version a listing says is
/// current: a rewrite, an unlink or a rename on A is seen at once, a
/// listing made again later does not bring the old bytes back, and a file
/// opened from its peeked contents stays readable after an unlink.
#[test]
fn contents_fetched_ahead_never_outlive_a_change_on_another_mount() {
    let s = Server::start();
    s.create_volume("peek");
    let a = s.mount("peek", &[]);
    let b = s.mount("peek", &[]);
    fs::create_dir(a.p("d")).unwrap();
    let v1 = |i: usize| format!("v1 of {i:03}").repeat(10).into_bytes();
    for i in 0..200 {
        fs::write(a.p(&format!("d/f{i:03}")), v1(i)).unwrap();
    }
    for round in 0..2 {
        for i in 0..200 {
            let got = fs::read(b.p(&format!("d/f{i:03}"))).unwrap();
            assert_eq!(got, v1(i), "f{i:03} on B, round {round}");
        }
    }
    // B keeps f160 open from what it peeked; A removes it.
    let mut kept = fs::File::open(b.p("d/f160")).unwrap();
    let v2 = b"v2 of 150, same length as v1 of 150 ......... and more".to_vec();
    fs::write(a.p("d/f150"), &v2).unwrap();
    fs::remove_file(a.p("d/f151")).unwrap();
    fs::rename(a.p("d/f152"), a.p("d/g152")).unwrap();
    fs::remove_file(a.p("d/f160")).unwrap();
    assert_eq!(fs::read(b.p("d/f150")).unwrap(), v2, "rewritten on A");
    assert!(!b.p("d/f151").exists(), "unlinked on A");
    assert!(!b.p("d/f152").exists(), "renamed away on A");
    assert_eq!(fs::read(b.p("d/g152")).unwrap(), v1(152), "renamed on A");
    let mut got = Vec::new();
    std::io::Read::read_to_end(&mut kept, &mut got).unwrap();
    assert_eq!(got, v1(160), "an open file outlives its unlink");
    let nlink = std::os::unix::fs::MetadataExt::nlink(&kept.metadata().unwrap());
    assert_eq!(nlink, 0, "an open file unlinked on A has no links on B");
    // Once B lists the directory again (after its rest), the version it
    // lists is the new one: the old peeked bytes must not come back.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!b.p("d/none").exists());
    for round in 0..2 {
        for i in (140..200).filter(|i| ![151, 152, 160].contains(i)) {
            let want = if i == 150 { v2.clone() } else { v1(i) };
            let got = fs::read(b.p(&format!("d/f{i:03}"))).unwrap();
            assert_eq!(got, want, "f{i:03} on B after the changes, round {round}");
        }
    }
}

/// A mount asks the kernel for a block of readahead (it offers 128 KiB),
/// and what a sequential reader then gets on the other mount is the file,
/// byte for byte, including reads that straddle two blocks.
#[test]
fn a_big_file_is_read_ahead_and_arrives_whole_on_the_other_mount() {
    use std::io::Read;
    use std::os::unix::fs::FileExt;
    let s = Server::start();
    s.create_volume("ra");
    let a = s.mount("ra", &[]);
    let b = s.mount("ra", &[]);
    let dev = fs::metadata(b.path()).unwrap().dev();
    let knob = format!(
        "/sys/class/bdi/{}:{}/read_ahead_kb",
        libc::major(dev),
        libc::minor(dev)
    );
    eventually(Duration::from_secs(5), "readahead widened", || {
        fs::read_to_string(&knob).is_ok_and(|v| v.trim() == "4096")
    });

    let data = random_bytes((13 << 20) + 12345, 21);
    fs::write(a.p("big"), &data).unwrap();
    let mut f = fs::File::open(b.p("big")).unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    assert!(
        got == data,
        "sequential read on B differs from what A wrote"
    );
    for at in [(4 << 20) - 100, (8 << 20) - 1, data.len() as u64 - 10] {
        let mut piece = vec![0u8; 300];
        let n = f.read_at(&mut piece, at).unwrap();
        let want = &data[at as usize..(at as usize + 300).min(data.len())];
        assert_eq!(&piece[..n], want, "read of 300 bytes at {at}");
    }
}

/// Unlinks and renames in a directory A holds go ahead of the server too
/// (ahead.rs), so B's kernel may still have a name A removed. Once A's
/// call returned: an open on B of a name A removed fails, even through a
/// name B's kernel still has (its open recalls A's hold, finds the file
/// gone, and the kernel looks the name up again); a name A moved is
/// found under its new name with what A wrote; and in the end B lists
/// exactly what A left. That the removals really went ahead is checked
/// in the server's counts of plain `Unlink` and `Rename` calls.
#[test]
fn names_removed_or_moved_ahead_are_gone_on_the_other_mount() {
    let s = Server::start();
    s.create_volume("gone");
    let a = s.mount("gone", &[]);
    let b = s.mount("gone", &[]);
    let plain = |method: &str| {
        sample(
            &scrape(&s.addr),
            &format!("svol_rpc_requests_total{{method=\"{method}\",code=\"OK\"}}"),
        )
    };
    fs::create_dir(a.p("d")).unwrap();
    assert!(!a.p("d/miss").exists(), "A lists d");
    let n = 300;
    for i in 0..n {
        fs::write(a.p(&format!("d/f{i}")), format!("file {i}")).unwrap();
    }
    // B's lookups there recalled A's hold, and with it A's listing; once
    // that recall has cooled down A lists d again, and keeps the listing
    // while B only reads.
    for i in 0..n {
        assert!(b.p(&format!("d/f{i}")).exists());
    }
    std::thread::sleep(Duration::from_millis(1100));
    assert!(!a.p("d/miss1").exists(), "A lists d");
    // B opens every file (its kernel keeps the names for a second), then
    // A removes or moves each (its first change takes the hold back, so
    // the next go ahead), and B at once tries the old names, newest
    // first, and the new ones.
    for i in 0..n {
        assert_eq!(
            fs::read_to_string(b.p(&format!("d/f{i}"))).unwrap(),
            format!("file {i}")
        );
    }
    let (unlinks, renames) = (plain("Unlink"), plain("Rename"));
    for i in 0..n {
        let old = a.p(&format!("d/f{i}"));
        if i % 2 == 0 {
            fs::remove_file(old).unwrap();
        } else {
            fs::rename(old, a.p(&format!("d/g{i}"))).unwrap();
        }
    }
    // (A name moved may still lead to its file for the milliseconds a
    // name change takes to reach B's kernel; a name removed may not.)
    for i in (0..n).rev().filter(|i| i % 2 == 0) {
        let old = format!("d/f{i}");
        match fs::read_to_string(b.p(&old)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            other => panic!("{old} on B after A's unlink returned: {other:?}"),
        }
    }
    for i in (0..n).filter(|i| i % 2 == 1) {
        assert_eq!(
            fs::read_to_string(b.p(&format!("d/g{i}"))).unwrap(),
            format!("file {i}")
        );
    }
    // Without B looking, A keeps its hold: the rest go ahead in batches.
    // (A lists d again once its last listing's recall has cooled down.)
    std::thread::sleep(Duration::from_millis(1100));
    assert!(!a.p("d/miss2").exists(), "A lists d");
    for i in 0..n {
        fs::write(a.p(&format!("d/h{i}")), format!("h {i}")).unwrap();
    }
    for i in 0..n {
        let h = format!("d/h{i}");
        match i % 3 {
            0 => fs::remove_file(a.p(&h)).unwrap(),
            1 => fs::rename(a.p(&h), a.p(&format!("d/k{i}"))).unwrap(),
            // Replacing a name, as `mv` onto an old file and git's
            // `index.lock` do.
            _ => fs::rename(a.p(&h), a.p(&format!("d/g{}", i | 1))).unwrap(),
        }
    }
    let went_ahead = (n as f64 * 2.0) - (plain("Unlink") - unlinks) - (plain("Rename") - renames);
    assert!(
        went_ahead >= n as f64,
        "only {went_ahead} of {} removals and moves went ahead of the server",
        2 * n
    );
    let mut want: Vec<String> = (0..n)
        .filter(|i| i % 2 == 1)
        .map(|i| format!("g{i}"))
        .chain((0..n).filter(|i| i % 3 == 1).map(|i| format!("k{i}")))
        .collect();
    want.sort();
    want.dedup();
    let listed = |m: &MountDir| {
        let mut v: Vec<String> = fs::read_dir(m.p("d"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    assert_eq!(listed(&b), want, "B lists what A left");
    assert_eq!(listed(&a), want, "A lists what it left");
    for i in (0..n).filter(|i| i % 3 == 2) {
        let g = format!("d/g{}", i | 1);
        assert_eq!(
            fs::read_to_string(b.p(&g)).unwrap(),
            format!("h {i}"),
            "{g}"
        );
    }
    // The replaced and removed files' blocks and inodes are gone from the
    // server too: B's view of the directory's link count and times agree.
    let (ma, mb) = (
        fs::metadata(a.p("d")).unwrap(),
        fs::metadata(b.p("d")).unwrap(),
    );
    assert_eq!((ma.nlink(), ma.mtime()), (mb.nlink(), mb.mtime()));
    fs::File::open(a.p("d")).unwrap().sync_all().unwrap();
}

/// A small file B lists, rewritten on A: its new contents come to B with
/// its new attributes, before A's close returns, so B opens and reads the
/// new version without asking the server (close-to-open in one push). B
/// must read exactly what A wrote each time, never an older version, and
/// the server's count of `Open` calls shows B did not ask for them.
#[test]
fn a_small_file_rewritten_on_one_mount_arrives_whole_with_its_update() {
    let s = Server::start();
    s.create_volume("pushed");
    let a = s.mount("pushed", &[]);
    let b = s.mount("pushed", &[]);
    let opens = || {
        sample(
            &scrape(&s.addr),
            "svol_rpc_requests_total{method=\"Open\",code=\"OK\"}",
        )
    };
    fs::create_dir(a.p("d")).unwrap();
    for name in ["log", "other"] {
        fs::write(a.p(&format!("d/{name}")), b"start").unwrap();
    }
    // B lists d (a miss), and has read the file once.
    eventually(Duration::from_secs(5), "d/log on B", || {
        b.p("d/log").exists()
    });
    assert!(!b.p("d/miss").exists());
    assert_eq!(fs::read(b.p("d/log")).unwrap(), b"start");
    let before = opens();
    let rounds = 100;
    for n in 0..rounds {
        // Lengths and bytes differ each time, one write beyond 4 KiB.
        let body = format!("round {n} ").repeat(1 + n % 7 + if n == 50 { 900 } else { 0 });
        fs::write(a.p("d/log"), &body).unwrap();
        assert_eq!(
            fs::read_to_string(b.p("d/log")).unwrap(),
            body,
            "round {n} on B right after A's close"
        );
    }
    let asked = opens() - before;
    // A's own opens (one per round) go to the server; B's need not.
    assert!(
        asked < rounds as f64 * 1.5,
        "{asked} opens for {rounds} rounds: B asked the server for pushed contents"
    );
}
