//! A mount's cache directory through the binary: `svol volume warmup`
//! fills it ahead, a mount with `--cache-dir` then reads those blocks
//! without asking the server, the cache survives an unmount and remount,
//! and a damaged cached block is never served (it is fetched again).

mod common;

use common::*;

/// Blocks the server handed out: by gRPC, or (a mount on its host) as
/// files through the block channel.
fn block_fetches(s: &Server) -> f64 {
    let m = scrape(&s.addr);
    sample(
        &m,
        "svol_rpc_requests_total{method=\"GetBlock\",code=\"OK\"}",
    ) + sample(&m, "svol_block_channel_files_total")
}

#[test]
fn warmed_blocks_are_read_locally_across_remounts_and_checked() {
    let s = Server::start();
    s.create_volume("ckpt");
    let files: Vec<(String, Vec<u8>)> = (0..3u64)
        .map(|i| (format!("step/{i}.bin"), random_bytes(6 << 20, 40 + i)))
        .collect();
    {
        let w = s.mount("ckpt", &[]);
        std::fs::create_dir_all(w.p("step")).expect("mkdir");
        for (p, d) in &files {
            std::fs::write(w.p(p), d).expect("write");
        }
    }
    let cache = tempfile::tempdir().expect("cache");
    let dir = cache.path().to_str().expect("utf8");
    let out = s.run(&["volume", "warmup", "ckpt", "/step", "--cache-dir", dir]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("3 files: 6 blocks fetched"), "{said}");
    let id =
        serde_json::from_str::<serde_json::Value>(&s.ok(&["volume", "info", "ckpt", "--json"]))
            .expect("json")["id"]
            .as_str()
            .expect("id")
            .to_string();
    let held = std::fs::read_dir(cache.path().join(&id))
        .expect("cache dir")
        .count();
    assert_eq!(held, 6, "two 4 MiB blocks per 6 MiB file");

    // A mount on the warmed cache reads every byte without a GetBlock.
    let before = block_fetches(&s);
    {
        let m = s.mount("ckpt", &["--cache-dir", dir]);
        for (p, d) in &files {
            assert_eq!(&std::fs::read(m.p(p)).expect("read"), d, "{p}");
        }
    }
    assert_eq!(block_fetches(&s), before, "served from the cache dir");

    // A damaged block file is caught by its hash: the bytes read are
    // right, that one block is fetched again, and the file is repaired.
    let victim = std::fs::read_dir(cache.path().join(&id))
        .expect("cache dir")
        .map(|e| e.expect("entry").path())
        .find(|p| {
            !p.file_name()
                .expect("name")
                .to_string_lossy()
                .starts_with('.')
        })
        .expect("a block file");
    let mut bytes = std::fs::read(&victim).expect("read block");
    bytes[1000] ^= 0xff;
    std::fs::write(&victim, &bytes).expect("damage it");
    let before = block_fetches(&s);
    {
        let m = s.mount("ckpt", &["--cache-dir", dir]);
        for (p, d) in &files {
            assert_eq!(&std::fs::read(m.p(p)).expect("read"), d, "{p}");
        }
    }
    assert_eq!(
        block_fetches(&s),
        before + 1.0,
        "only the damaged block fetched"
    );
    let before = block_fetches(&s);
    {
        let m = s.mount("ckpt", &["--cache-dir", dir]);
        for (p, d) in &files {
            assert_eq!(&std::fs::read(m.p(p)).expect("read"), d, "{p}");
        }
    }
    assert_eq!(block_fetches(&s), before, "repaired in the cache");

    // A second warmup finds everything there.
    let out = s.run(&["volume", "warmup", "ckpt", "/step", "--cache-dir", dir]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("0 blocks fetched"));
}
