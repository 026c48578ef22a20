//! `GET /metrics` on the server's port: scraped before and after a real
//! workload on a real mount, the counters and gauges move with it.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn server_metrics_follow_a_workload() {
    let s = Server::start();
    let before = scrape(&s.addr);
    assert_eq!(sample(&before, "svol_sessions"), 0.0);
    // SQLite has one writer: nothing is ever retried, and that is shown.
    assert_eq!(
        before.get("svol_meta_transaction_retries_total"),
        Some(&0.0)
    );
    // Names follow Prometheus conventions; nothing names a volume.
    for k in before.keys() {
        assert!(k.starts_with("svol_"), "{k}");
        assert!(!k.contains("vo-"), "{k}");
    }

    s.create_volume("measured");
    let data = random_bytes(4 << 20, 7);
    {
        let m = s.mount("measured", &[]);
        std::fs::write(m.p("a.bin"), &data).expect("write a");
        std::fs::write(m.p("b.bin"), &data).expect("write b (same bytes)");
        let f = std::fs::File::open(m.p("a.bin")).expect("open");
        // SAFETY: flock on a descriptor we own.
        assert_eq!(
            unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&f), libc::LOCK_EX) },
            0
        );
        let during = scrape(&s.addr);
        assert!(sample(&during, "svol_sessions") >= 1.0);
        assert_eq!(sample(&during, "svol_locks_held"), 1.0);
        assert_eq!(sample(&during, "svol_stored_blocks"), 1.0);
        assert_eq!(sample(&during, "svol_logical_bytes"), (8 << 20) as f64);
        assert_eq!(sample(&during, "svol_dedup_ratio"), 2.0);
        let commits = sample(
            &during,
            "svol_rpc_requests_total{method=\"Commit\",code=\"OK\"}",
        );
        assert!(commits >= 2.0, "{commits} commits counted");
        assert!(
            sample(
                &during,
                "svol_rpc_duration_seconds_count{method=\"Commit\"}"
            ) >= commits,
            "every call has its latency"
        );
        assert!(
            sample(&during, "svol_meta_transaction_seconds_count")
                > sample(&before, "svol_meta_transaction_seconds_count")
        );
        assert!(sample(&during, "svol_feed_head") > sample(&before, "svol_feed_head"));
        drop(f);
    }

    // A refused call is counted with its status.
    let foreign = s.run_as("sv-not-a-token", &["volume", "list"]);
    assert!(!foreign.status.success());
    assert!(
        sample(
            &scrape(&s.addr),
            "svol_rpc_requests_total{method=\"ListVolumes\",code=\"UNAUTHENTICATED\"}"
        ) >= 1.0
    );

    s.ok(&["volume", "delete", "measured", "--yes"]);
    eventually(
        Duration::from_secs(30),
        "the block is freed and the session gone",
        || {
            let m = scrape(&s.addr);
            sample(&m, "svol_blocks_freed_total") >= 1.0
                && sample(&m, "svol_stored_blocks") == 0.0
                && sample(&m, "svol_sessions") == 0.0
        },
    );
}

#[test]
fn mount_metrics_follow_a_workload() {
    let s = Server::start();
    s.create_volume("watched");
    let addr = format!("127.0.0.1:{}", free_port());
    let a = s.mount("watched", &[]);
    let b = s.mount("watched", &["--metrics", &addr]);
    let before = scrape(&addr);

    // A writes; B (measured) reads it cold, writes a file, and lists the
    // root, then hears of A's next change.
    let data = random_bytes(6 << 20, 9);
    std::fs::write(a.p("big.bin"), &data).expect("write on a");
    assert_eq!(std::fs::read(b.p("big.bin")).expect("read on b"), data);
    std::fs::write(b.p("from-b.bin"), &data[..(1 << 20)]).expect("write on b");
    let _ = std::fs::read_dir(b.path()).expect("list").count();
    std::fs::write(a.p("from-a.txt"), b"a").expect("second write on a");

    eventually(Duration::from_secs(20), "B hears of A's change", || {
        sample(&scrape(&addr), "svol_mount_invalidations_total")
            > sample(&before, "svol_mount_invalidations_total")
    });
    let after = scrape(&addr);
    let moved = |k: &str| sample(&after, k) - sample(&before, k);
    assert!(moved("svol_mount_read_bytes_total") >= data.len() as f64);
    assert!(moved("svol_mount_written_bytes_total") >= (1 << 20) as f64);
    assert!(moved("svol_mount_block_cache_misses_total") >= 1.0);
    for op in ["read", "write", "create", "lookup"] {
        let k = format!("svol_mount_fuse_operations_total{{op=\"{op}\"}}");
        assert!(moved(&k) >= 1.0, "{k}");
        let count = format!("svol_mount_fuse_operation_seconds_count{{op=\"{op}\"}}");
        assert_eq!(
            sample(&after, &count),
            sample(&after, &k),
            "every {op} is timed"
        );
    }
    assert_eq!(sample(&after, "svol_mount_uploads_in_flight"), 0.0);
    drop(b);
    drop(a);
}

/// Mounts on the server's host move blocks through the block channel
/// (`DATA_DIR/blocks.sock`), both ways, with the same bytes as gRPC; with
/// `--no-block-channel` every block goes by gRPC and the counters stay put.
#[test]
fn mounts_on_the_server_host_use_the_block_channel_unless_told_not_to() {
    for (flags, channel) in [(&[][..], true), (&["--no-block-channel"][..], false)] {
        let s = Server::start_with(flags);
        assert_eq!(s.data().join("blocks.sock").exists(), channel, "{flags:?}");
        s.create_volume("moved");
        let a = s.mount("moved", &[]);
        let b = s.mount("moved", &[]);
        let before = scrape(&s.addr);
        // Three blocks of unique bytes, and a tail.
        let data = random_bytes((12 << 20) + 4321, 31 + channel as u64);
        std::fs::write(a.p("ckpt.bin"), &data).expect("write on a");
        assert_eq!(std::fs::read(b.p("ckpt.bin")).expect("read on b"), data);
        let after = scrape(&s.addr);
        let moved = |k: &str| sample(&after, k) - sample(&before, k);
        let (stored, handed) = (
            moved("svol_block_channel_stored_total"),
            moved("svol_block_channel_files_total"),
        );
        let by_grpc = moved("svol_rpc_requests_total{method=\"GetBlock\",code=\"OK\"}");
        if channel {
            assert!(stored >= 3.0, "{stored} blocks stored through the channel");
            assert!(handed >= 3.0, "{handed} blocks handed out as files");
            assert_eq!(by_grpc, 0.0, "no block read by gRPC");
        } else {
            assert!(
                after.contains_key("svol_block_channel_files_total"),
                "the counter is exported either way"
            );
            assert_eq!((stored, handed), (0.0, 0.0));
            assert!(by_grpc >= 3.0, "{by_grpc} blocks read by gRPC");
        }
    }
}
