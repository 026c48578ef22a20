//! Two `svol mount` processes of one volume, as if on two hosts.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;
use std::time::Duration;

use common::*;

/// Less than the kernel attribute TTL (1 s): passing proves the server
/// pushed an invalidation rather than the cache timing out.
const PUSHED: Duration = Duration::from_millis(500);

#[test]
fn data_and_every_metadata_change_cross_mounts() {
    let s = Server::start();
    s.create_volume("shared");
    let a = s.mount("shared", &[]);
    let b = s.mount("shared", &[]);

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

#[test]
fn exclusive_operations_have_one_winner_across_mounts() {
    let s = Server::start();
    s.create_volume("race");
    let a = s.mount("race", &[]);
    let b = s.mount("race", &[]);
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
