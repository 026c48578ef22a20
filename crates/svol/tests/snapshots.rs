//! Snapshots through the binary: taken while two mounts write (each file
//! as of one instant, everything fsync'd before it present), metadata only
//! (the block directory does not grow), read-only when mounted, restored in
//! place (refused while mounted) and cloned to a writable volume.

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

const FILE: usize = 100_000;

fn content(side: u64, i: i64) -> Vec<u8> {
    random_bytes(FILE, side * 1_000_000 + i as u64)
}

/// Writes `{side}-{i}` for i = 0, 1, … (write, fsync, close) until told
/// to stop; `synced` is the last i whose fsync returned.
fn writer(
    dir: std::path::PathBuf,
    side: u64,
    stop: Arc<AtomicBool>,
    synced: Arc<AtomicI64>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut i = 0i64;
        while !stop.load(Ordering::SeqCst) {
            let mut f = std::fs::File::create(dir.join(format!("{side}-{i}"))).expect("create");
            f.write_all(&content(side, i)).expect("write");
            f.sync_all().expect("fsync");
            drop(f);
            synced.store(i, Ordering::SeqCst);
            i += 1;
        }
    })
}

#[test]
fn a_snapshot_taken_while_two_mounts_write_is_consistent_and_costs_no_blocks() {
    let s = Server::start();
    s.create_volume("ckpt");
    let (a, b) = (s.mount("ckpt", &[]), s.mount("ckpt", &[]));
    std::fs::write(a.p("base.bin"), random_bytes(9 << 20, 7)).expect("seed");

    let stop = Arc::new(AtomicBool::new(false));
    let synced = [Arc::new(AtomicI64::new(-1)), Arc::new(AtomicI64::new(-1))];
    let writers = [
        writer(a.path().to_path_buf(), 1, stop.clone(), synced[0].clone()),
        writer(b.path().to_path_buf(), 2, stop.clone(), synced[1].clone()),
    ];
    eventually(Duration::from_secs(30), "both mounts are writing", || {
        synced.iter().all(|x| x.load(Ordering::SeqCst) >= 3)
    });
    let before = [
        synced[0].load(Ordering::SeqCst),
        synced[1].load(Ordering::SeqCst),
    ];
    assert_eq!(
        s.ok(&["volume", "snapshot", "ckpt", "--as", "mid"]).trim(),
        "ckpt@mid"
    );
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.join().expect("writer");
    }

    let snap = s.mount("ckpt@mid", &[]);
    assert_eq!(
        std::fs::read(snap.p("base.bin")).expect("base"),
        random_bytes(9 << 20, 7)
    );
    let mut seen = [0i64; 2];
    for e in std::fs::read_dir(snap.path()).expect("list") {
        let name = e.expect("entry").file_name().into_string().expect("utf8");
        let Some((side, i)) = name.split_once('-') else {
            continue;
        };
        let (side, i): (u64, i64) = (side.parse().expect("side"), i.parse().expect("i"));
        let got = std::fs::read(snap.p(&name)).expect("read");
        // One instant of the file: not yet written, or whole — never a mix.
        assert!(
            got.is_empty() || got == content(side, i),
            "{name}: {} bytes, not as of one instant",
            got.len()
        );
        if !got.is_empty() {
            seen[side as usize - 1] = seen[side as usize - 1].max(i + 1);
        }
    }
    for (side, last) in [(1u64, before[0]), (2, before[1])] {
        for i in 0..=last {
            let name = format!("{side}-{i}");
            assert_eq!(
                std::fs::read(snap.p(&name)).unwrap_or_default(),
                content(side, i),
                "{name} was fsync'd before the snapshot"
            );
        }
    }
    // Later writes on the volume are not in the snapshot.
    let after = synced[0].load(Ordering::SeqCst);
    assert!(after > before[0] || seen[0] > before[0]);
    // Read-only, refused by the kernel mount and by the server.
    let err = std::fs::write(snap.p("new"), b"x").expect_err("a snapshot is read-only");
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    let put = s.run(&["volume", "put", "ckpt@mid", "/etc/hostname", "/x"]);
    assert!(!put.status.success());

    // Metadata only: with the mounts quiet, a snapshot adds no block.
    drop((a, b));
    let blocks = s.block_bytes();
    s.ok(&["volume", "snapshot", "ckpt", "--as", "quiet"]);
    assert_eq!(s.block_bytes(), blocks, "a snapshot copies no block");
    let listed: Vec<serde_json::Value> =
        serde_json::from_str(&s.ok(&["volume", "snapshots", "ckpt", "--json"])).expect("json");
    let names: Vec<_> = listed
        .iter()
        .map(|v| v["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(names, ["ckpt@mid", "ckpt@quiet"]);
    assert!(
        !s.ok(&["volume", "list"]).contains("ckpt@"),
        "snapshots are not volumes to list"
    );
}

#[test]
fn a_snapshot_restores_in_place_and_clones_to_a_writable_volume() {
    let s = Server::start();
    s.create_volume("work");
    let m = s.mount("work", &[]);
    std::fs::create_dir(m.p("d")).expect("mkdir");
    std::fs::write(m.p("d/x"), b"first").expect("x");
    std::fs::write(m.p("y"), random_bytes(200_000, 1)).expect("y");
    s.ok(&["volume", "snapshot", "work", "--as", "s1"]);
    std::fs::write(m.p("d/x"), b"second").expect("x again");
    std::fs::remove_file(m.p("y")).expect("rm y");
    std::fs::write(m.p("z"), b"new").expect("z");

    // Mounted: restore is refused, naming why.
    let out = s.run(&["volume", "restore", "work", "s1", "--yes"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("mounted"),
        "{out:?}"
    );
    drop(m);
    s.ok(&["volume", "restore", "work", "s1", "--yes"]);
    let m = s.mount("work", &[]);
    assert_eq!(std::fs::read(m.p("d/x")).expect("x"), b"first");
    assert_eq!(
        std::fs::read(m.p("y")).expect("y"),
        random_bytes(200_000, 1)
    );
    assert!(!m.p("z").exists());
    std::fs::write(m.p("after-restore"), b"ok").expect("writable again");

    // A clone is a volume of its own: writable, apart from the snapshot.
    s.ok(&["volume", "clone", "work@s1", "copy"]);
    let c = s.mount("copy", &[]);
    assert_eq!(std::fs::read(c.p("d/x")).expect("x"), b"first");
    std::fs::write(c.p("d/x"), b"clone's own").expect("write clone");
    let snap = s.mount("work@s1", &[]);
    assert_eq!(std::fs::read(snap.p("d/x")).expect("x"), b"first");
    drop((m, c, snap));

    // The volume takes its snapshots with it.
    s.ok(&["volume", "delete", "work", "--yes"]);
    assert!(!s.run(&["volume", "info", "work@s1"]).status.success());
    assert!(s.ok(&["volume", "info", "copy"]).contains("copy"));
}

/// A mount answers creates and closes in a directory it holds before the
/// server has them (they go out in batches). A snapshot or a clone asked
/// for after a close returned must still hold that file, and the volume's
/// counts must include it: the server recalls the mount's holds first. The mount is
/// stopped (SIGSTOP) right after the last close, so what it had not sent
/// by then can reach the server only through that recall.
#[test]
fn snapshots_clones_and_counts_hold_every_file_closed_before_they_were_asked_for() {
    let s = Server::start();
    s.create_volume("burst");
    let a = s.mount("burst", &[]);
    let pid = mount_pid(a.path()) as libc::pid_t;
    // Each round in a directory of its own that this mount made and
    // listed, and so holds once its first create there asks (a recall
    // ends a hold and drops the listing).
    let write_then_stopped = |round: usize, call: &[&str]| {
        let dir = a.p(&format!("d{round}"));
        std::fs::create_dir(&dir).expect("mkdir");
        assert_eq!(std::fs::read_dir(&dir).expect("list").count(), 0);
        for i in 0..500 {
            std::fs::write(dir.join(i.to_string()), format!("file {round}/{i}")).expect("write");
        }
        // SAFETY: signals to the mount process this test started.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        std::thread::scope(|t| {
            let asked = t.spawn(|| s.run(call));
            std::thread::sleep(Duration::from_millis(300));
            unsafe { libc::kill(pid, libc::SIGCONT) };
            let out = asked.join().expect("call");
            assert!(out.status.success(), "{call:?}: {out:?}");
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
    };
    write_then_stopped(0, &["volume", "snapshot", "burst", "--as", "s1"]);
    write_then_stopped(1, &["volume", "clone", "burst", "copy"]);
    // The volume's counts, too.
    let info = write_then_stopped(2, &["volume", "info", "burst", "--json"]);
    let info: serde_json::Value = serde_json::from_str(&info).expect("info json");
    assert_eq!(info["files"], 1500, "{info}");

    for (volume, rounds) in [("burst@s1", 1), ("copy", 2)] {
        let m = s.mount(volume, &[]);
        for round in 0..rounds {
            for i in 0..500 {
                assert_eq!(
                    std::fs::read_to_string(m.p(&format!("d{round}/{i}"))).ok(),
                    Some(format!("file {round}/{i}")),
                    "{volume}: d{round}/{i} was closed before it was asked for"
                );
            }
        }
    }
}
