//! Finding 8 of the trust issue: a mount's write buffers are bounded. A
//! 20 GiB sparse-ish write (a piece of every chunk it touches, never
//! fsynced until the end) with `--max-dirty 64M` keeps the mount process
//! small: writers wait for commits instead of the mount growing.

mod common;

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;

use common::*;

/// A `/proc/PID/status` field in KiB (`VmHWM`: peak RSS, `VmRSS`: now).
fn status_kib(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn peak_rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmHWM")
}

#[test]
fn a_20_gib_sparse_write_stays_within_max_dirty() {
    const GIB: u64 = 1 << 30;
    const STEP: u64 = 128 << 20;
    let s = Server::start();
    s.create_volume("big");
    let m = s.mount("big", &["--max-dirty", "64M", "--memory-cache", "16M"]);
    let pid = mount_pid(m.path());
    let before = peak_rss_kib(pid);
    let piece = random_bytes(1 << 20, 7);
    {
        let mut f = std::fs::File::create(m.p("sparse")).unwrap();
        let mut off = 2 << 20;
        while off < 20 * GIB {
            f.seek(SeekFrom::Start(off)).unwrap();
            f.write_all(&piece).unwrap();
            off += STEP;
        }
        f.set_len(20 * GIB).unwrap();
        f.sync_all().unwrap();
    }
    let peak = peak_rss_kib(pid);
    let pieces = (20 * GIB / STEP) as usize;
    eprintln!(
        "{pieces} chunks touched ({} MiB if all were buffered); mount peak RSS {} MiB (was {} MiB)",
        pieces * 3,
        peak >> 10,
        before >> 10
    );
    // Unbounded, the touched chunks alone would be 480 MiB of buffers (a piece ends 1 MiB short of its chunk, so no chunk fills and is sent early).
    assert!(
        peak < 200 << 10,
        "the mount grew to {} MiB with --max-dirty 64M",
        peak >> 10
    );
    let f = std::fs::File::open(m.p("sparse")).unwrap();
    assert_eq!(f.metadata().unwrap().len(), 20 * GIB);
    for k in [0u64, 1, 77, 159] {
        let mut got = vec![0u8; piece.len()];
        f.read_exact_at(&mut got, k * STEP + (2 << 20)).unwrap();
        assert_eq!(got, piece, "piece {k}");
        let mut hole = vec![1u8; 4096];
        f.read_exact_at(&mut hole, k * STEP + (3 << 20)).unwrap();
        assert!(hole.iter().all(|b| *b == 0), "hole after piece {k}");
    }
    let mut tail = Vec::new();
    let mut g = std::fs::File::open(m.p("sparse")).unwrap();
    g.seek(SeekFrom::Start(20 * GIB - 10)).unwrap();
    g.read_to_end(&mut tail).unwrap();
    assert_eq!(tail, vec![0u8; 10]);
}

fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS")
}

/// The daemons keep freed big buffers while they work (`heap.rs`), but an
/// idle mount or server must not sit on the memory of its last burst: after
/// a 384 MiB write on A and its read on B, both mounts (16 MiB of block
/// cache each) and the server fall back near their resting size, and the
/// reader never holds more than its cache and its read-ahead.
#[test]
fn idle_daemons_hand_back_the_memory_of_a_burst() {
    let s = Server::start();
    s.create_volume("burst");
    let a = s.mount("burst", &["--memory-cache", "16M"]);
    let b = s.mount("burst", &["--memory-cache", "16M"]);
    let data = random_bytes(384 << 20, 11);
    {
        let mut f = std::fs::File::create(a.p("f")).unwrap();
        f.write_all(&data).unwrap();
        f.sync_all().unwrap();
    }
    let mut back = Vec::with_capacity(data.len());
    std::fs::File::open(b.p("f"))
        .unwrap()
        .read_to_end(&mut back)
        .unwrap();
    assert!(back == data, "B read what A wrote");
    drop(back);
    let pids = [
        ("mount A", mount_pid(a.path())),
        ("mount B", mount_pid(b.path())),
        ("server", s.pid()),
    ];
    let busy: Vec<u64> = pids.iter().map(|(_, p)| peak_rss_kib(*p)).collect();
    // The reader holds its 16 MiB of cache, 8 blocks read ahead and what
    // is in flight — not the file (it grew to 793 MiB here when every
    // block read through the channel took fresh memory).
    assert!(
        busy[1] < 192 << 10,
        "mount B peaked at {} MiB reading 384 MiB with a 16 MiB cache",
        busy[1] >> 10
    );
    let mut last = Vec::new();
    let settled = std::time::Instant::now();
    while settled.elapsed() < std::time::Duration::from_secs(30) {
        last = pids.iter().map(|(_, p)| rss_kib(*p)).collect();
        if last.iter().all(|k| *k < 96 << 10) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    for (((name, _), peak), now) in pids.iter().zip(&busy).zip(&last) {
        eprintln!("{name}: peak {} MiB, idle {} MiB", peak >> 10, now >> 10);
        assert!(
            *now < 96 << 10,
            "{name} still holds {} MiB 30 s after the burst (peak {} MiB)",
            now >> 10,
            peak >> 10
        );
    }
}
