//! `svol admin fsck` and `svol admin gc` on a damaged data directory: a
//! block file deleted by hand is reported with the file that needs it, a
//! block file nothing names is reported and removed on request, and a
//! running server's directory is not touched.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

fn block_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else if p.file_name().is_some_and(|n| n.len() == 62) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn fsck_reports_missing_and_orphan_blocks_and_repairs_orphans() {
    let work = tempfile::tempdir().expect("tempdir");
    let data = work.path().join("data");
    let mut s = Restartable::new(data.clone(), work.path().join("server.log"), &[]);
    s.ok(&["volume", "create", "v"]);
    let local = tempfile::tempdir().expect("tempdir");
    for (name, seed) in [("a.bin", 1u64), ("b.bin", 2)] {
        let f = local.path().join(name);
        std::fs::write(&f, random_bytes(5 << 20, seed)).expect("write");
        s.ok(&[
            "volume",
            "put",
            "v",
            f.to_str().expect("utf8"),
            &format!("/{name}"),
        ]);
    }
    let config = s.config();
    let fsck = |args: &[&str]| {
        let mut a = vec!["admin", "fsck", "--data-dir", data.to_str().expect("utf8")];
        a.extend_from_slice(args);
        run_with_timeout(cli(&config).args(&a), Duration::from_secs(60))
    };
    // Not while a server runs on it.
    let busy = fsck(&[]);
    assert!(!busy.status.success());
    assert!(String::from_utf8_lossy(&busy.stderr).contains("another svol server (pid"));
    s.terminate(Duration::from_secs(20));

    let clean = fsck(&[]);
    let out = String::from_utf8_lossy(&clean.stdout).to_string();
    assert!(clean.status.success() && out.contains("clean"), "{out}");

    let blocks = block_files(&data.join("blocks"));
    assert_eq!(blocks.len(), 4, "two 4 MiB blocks per 5 MiB file");
    std::fs::remove_file(&blocks[0]).expect("delete a block by hand");
    // The same bytes under an owner that never stored them: named by no row.
    let rel = blocks[1]
        .strip_prefix(data.join("blocks"))
        .expect("under blocks");
    let mut parts = rel.components();
    parts.next(); // w<owner>
    let orphan = data.join("blocks/w999").join(parts.as_path());
    std::fs::create_dir_all(orphan.parent().expect("parent")).expect("mkdir");
    std::fs::copy(&blocks[1], &orphan).expect("plant an orphan");

    let found = fsck(&[]);
    let out = String::from_utf8_lossy(&found.stdout).to_string();
    assert_eq!(found.status.code(), Some(1), "{out}");
    assert!(
        out.contains("MISSING block") && out.contains("v:/") && out.contains(".bin"),
        "{out}"
    );
    assert!(
        out.contains("ORPHAN block")
            && out.contains("workspace 999")
            && out.contains("not removed"),
        "{out}"
    );
    assert!(orphan.exists(), "fsck without --repair changes nothing");

    let repaired = fsck(&["--repair", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&repaired.stdout).expect("json");
    assert_eq!(v["removed"], 1);
    assert_eq!(
        v["missing"].as_array().map(Vec::len),
        Some(1),
        "the lost block stays reported"
    );
    assert!(!orphan.exists(), "the orphan is gone");

    let gc = run_with_timeout(
        cli(&config).args(["admin", "gc", "--data-dir", data.to_str().expect("utf8")]),
        Duration::from_secs(60),
    );
    assert!(String::from_utf8_lossy(&gc.stdout).contains("removed 0 orphan block files"));
}
