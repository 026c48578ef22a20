//! Finding 5 of the trust issue as a real power cut: the server's data
//! directory lives on a layer that loses every write not fsynced (see
//! `common/powercut.rs`). 300 MiB are written through a mount, closed,
//! reopened and fsynced; then the server is SIGKILLed and the power goes.
//! Every fsynced byte must come back, with its hash.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::powercut::PowerCut;
use common::*;

fn hash_file(p: &std::path::Path) -> blake3::Hash {
    let mut f = std::fs::File::open(p).unwrap();
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    h.finalize()
}

#[test]
fn fsynced_data_survives_a_power_cut() {
    let work = tempfile::tempdir().unwrap();
    let backing = work.path().join("disk");
    let disk = work.path().join("mnt");
    std::fs::create_dir_all(&backing).unwrap();
    std::fs::create_dir_all(&disk).unwrap();
    let mut power = PowerCut::mount(&backing, &disk);

    // The layer really loses unsynced data (else this test proves nothing).
    std::fs::write(disk.join("control"), b"never fsynced").unwrap();
    let mut synced = std::fs::File::create(disk.join("synced")).unwrap();
    synced.write_all(b"fsynced").unwrap();
    synced.sync_all().unwrap();
    drop(synced);
    power.cut();
    assert_eq!(std::fs::read(disk.join("control")).unwrap(), b"");
    assert_eq!(std::fs::read(disk.join("synced")).unwrap(), b"fsynced");

    let mut server = Restartable::new(disk.join("data"), work.path().join("server.log"), &[]);
    server.ok(&["volume", "create", "cut"]);
    let a = server.mount("cut");
    // 300 MiB written and closed (committed without fsync on close and
    // every 128 MiB), then reopened and fsynced: the fsync must cover it all.
    let mut h = blake3::Hasher::new();
    {
        let mut f = std::fs::File::create(a.p("big.bin")).unwrap();
        for i in 0..75u64 {
            let chunk = random_bytes(4 << 20, 1000 + i);
            h.update(&chunk);
            f.write_all(&chunk).unwrap();
        }
    }
    let want = h.finalize();
    std::fs::File::open(a.p("big.bin"))
        .unwrap()
        .sync_all()
        .unwrap();
    // A new file made durable by fsyncing its directory only (its bytes
    // are small enough to live in the metadata, which that fsync covers).
    std::fs::create_dir(a.p("dir")).unwrap();
    std::fs::write(a.p("dir/small"), b"small file").unwrap();
    std::fs::File::open(a.p("dir")).unwrap().sync_all().unwrap();
    // Closed but never fsynced: the cut may tear its blocks.
    let loose = random_bytes(9 << 20, 77);
    std::fs::write(a.p("loose.bin"), &loose).unwrap();
    // What the cut will throw away (at least SQLite's shared-memory
    // index, which is never fsynced).
    assert!(
        power.unsynced_files() > 0,
        "nothing left for the cut to lose"
    );

    server.kill9();
    power.cut();
    server.start();

    // A fresh mount (no client cache) reads everything back.
    let b = server.mount("cut");
    eventually(Duration::from_secs(30), "big.bin visible", || {
        b.p("big.bin").exists()
    });
    assert_eq!(std::fs::metadata(b.p("big.bin")).unwrap().len(), 300 << 20);
    assert_eq!(hash_file(&b.p("big.bin")), want, "fsynced bytes lost");
    assert_eq!(std::fs::read(b.p("dir/small")).unwrap(), b"small file");
    // The same bytes written again are stored whole, even where the cut
    // left torn copies of their blocks.
    std::fs::write(b.p("again.bin"), &loose).unwrap();
    std::fs::File::open(b.p("again.bin"))
        .unwrap()
        .sync_all()
        .unwrap();
    let c = server.mount("cut");
    assert!(std::fs::read(c.p("again.bin")).unwrap() == loose);
    drop(c);
    // The first mount reconnected by itself and reads it too.
    assert_eq!(hash_file(&a.p("big.bin")), want);
    drop(a);
    drop(b);
    drop(server);
}
