//! Finding 5 of the trust issue: what `fsync` returned for survives the
//! server being killed, again and again, while two mounts write.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

/// Writes `name` whole and fsyncs it; any error (the server is down) is
/// retried after a pause. Returns once `fsync` succeeded.
fn write_fsynced(path: &Path, data: &[u8], stop: &AtomicBool) -> bool {
    loop {
        let res = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(path)?;
            f.write_all(data)?;
            f.sync_all()
        })();
        match res {
            Ok(()) => return true,
            Err(_) if stop.load(Ordering::Relaxed) => return false,
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

type Written = Arc<Mutex<Vec<(PathBuf, String, blake3::Hash)>>>;

fn writer(mount: PathBuf, who: &'static str, stop: Arc<AtomicBool>, done: Written) {
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let seed = i * 2 + u64::from(who == "b");
        let len = 1000 + (seed as usize * 7919) % (1 << 20);
        let data = random_bytes(len, seed);
        let name = format!("{who}-{i}");
        if write_fsynced(&mount.join(&name), &data, &stop) {
            done.lock()
                .unwrap()
                .push((mount.clone(), name, blake3::hash(&data)));
        }
        i += 1;
    }
}

/// 50 times: SIGKILL the server in the middle of writes from two mounts
/// and start it again. The mounts reconnect by themselves, and every file
/// whose `fsync` returned reads back with its hash, through both mounts.
#[test]
fn fifty_server_kills_lose_no_fsynced_byte() {
    let work = tempfile::tempdir().unwrap();
    let mut server = Restartable::new(
        work.path().join("data"),
        work.path().join("server.log"),
        &["--lease", "30s"],
    );
    server.ok(&["volume", "create", "crashy"]);
    let a = server.mount("crashy");
    let b = server.mount("crashy");
    let stop = Arc::new(AtomicBool::new(false));
    let done: Written = Arc::default();
    let writers: Vec<_> = [(a.path().to_path_buf(), "a"), (b.path().to_path_buf(), "b")]
        .into_iter()
        .map(|(m, who)| {
            let (stop, done) = (stop.clone(), done.clone());
            std::thread::spawn(move || writer(m, who, stop, done))
        })
        .collect();
    let mut x = 0x9e3779b97f4a7c15u64;
    for cycle in 0..50 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        std::thread::sleep(Duration::from_millis(150 + x % 350));
        server.kill9();
        std::thread::sleep(Duration::from_millis(x % 100));
        server.start();
        let before = done.lock().unwrap().len();
        // Writes resume on their own before the next kill.
        let t = Instant::now();
        while done.lock().unwrap().len() == before {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "no write succeeded within 30 s after restart {cycle}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let written = done.lock().unwrap().clone();
    assert!(written.len() >= 100, "only {} files written", written.len());
    let mut bytes = 0usize;
    for (mount, name, hash) in &written {
        for m in [a.path(), b.path()] {
            let got = std::fs::read(m.join(name))
                .unwrap_or_else(|e| panic!("{name} (written through {}): {e}", mount.display()));
            assert_eq!(blake3::hash(&got), *hash, "{name} differs");
            bytes += got.len();
        }
    }
    eprintln!(
        "{} fsynced files ({} MiB read back) survived 50 kills",
        written.len(),
        bytes >> 20
    );
}

/// A block whose bytes changed on the server's disk is never served as
/// data: the read fails with EIO and the server logs which block.
#[test]
fn a_corrupt_block_reads_as_eio_not_wrong_bytes() {
    let s = Server::start();
    s.create_volume("rot");
    let m = s.mount("rot", &[]);
    let data = random_bytes(5 << 20, 5);
    std::fs::write(m.p("f"), &data).unwrap();
    drop(m);
    let blocks: Vec<PathBuf> = entries_under(&s.data().join("blocks"))
        .into_iter()
        .filter(|p| p.is_file())
        .collect();
    assert_eq!(blocks.len(), 2, "{blocks:?}");
    for b in &blocks {
        let mut bytes = std::fs::read(b).unwrap();
        bytes[100] ^= 1;
        std::fs::write(b, bytes).unwrap();
    }
    let m = s.mount("rot", &[]);
    let err = std::fs::read(m.p("f")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    assert!(
        s.log().contains("corrupt"),
        "the server logged the corrupt block"
    );
}
