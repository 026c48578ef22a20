//! A volume's file trash through the binary and two live mounts: files
//! removed on one mount (`rm -rf`, a rename over a file, `volume rm`) are
//! kept, listed by path, restored by path (to where they were or under
//! another path) with their bytes, and the other mount sees them come
//! back; purging frees their blocks; a volume without a trash keeps
//! nothing; bad paths are refused by name.

mod common;

use std::time::Duration;

use common::*;

fn trash(s: &Server, args: &[&str]) -> Vec<serde_json::Value> {
    let mut a = vec!["volume", "trash"];
    a.extend_from_slice(args);
    a.push("--json");
    serde_json::from_str(&s.ok(&a)).expect("trash json")
}

fn paths(list: &[serde_json::Value]) -> Vec<String> {
    let mut p: Vec<String> = list
        .iter()
        .map(|f| f["path"].as_str().expect("path").to_string())
        .collect();
    p.sort();
    p
}

fn info(s: &Server, name: &str) -> serde_json::Value {
    serde_json::from_str(&s.ok(&["volume", "info", name, "--json"])).expect("info json")
}

#[test]
fn removed_files_are_kept_listed_and_restored_across_mounts() {
    let s = Server::start();
    s.ok(&["volume", "create", "work", "--trash", "7d"]);
    assert_eq!(info(&s, "work")["file_trash_seconds"], 7 * 86_400);
    let (a, b) = (s.mount("work", &[]), s.mount("work", &[]));

    let one = random_bytes(3 << 20, 1);
    let two = random_bytes(5 << 20, 2);
    std::fs::create_dir_all(a.p("ckpt/step-1")).expect("mkdir");
    std::fs::write(a.p("ckpt/step-1/model.bin"), &one).expect("write");
    std::fs::write(a.p("ckpt/optim.bin"), &two).expect("write");
    std::fs::write(a.p("cfg"), b"version 1\n").expect("write");
    std::fs::write(a.p("cfg.tmp"), b"version 2\n").expect("write");
    std::fs::rename(a.p("cfg.tmp"), a.p("cfg")).expect("rename over cfg");
    let stored = info(&s, "work")["stored_bytes"].as_u64().expect("stored");
    let blocks = s.block_bytes();

    std::fs::remove_dir_all(a.p("ckpt")).expect("rm -rf");
    assert!(!b.p("ckpt").exists(), "gone on the other mount");
    assert_eq!(s.block_bytes(), blocks, "nothing freed while in the trash");
    let kept = trash(&s, &["work"]);
    assert_eq!(
        paths(&kept),
        ["cfg", "ckpt/optim.bin", "ckpt/step-1/model.bin"]
    );
    let i = info(&s, "work");
    assert_eq!(
        (i["trash_files"].as_u64(), i["files"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(i["stored_bytes"].as_u64(), Some(stored), "its blocks kept");
    assert_eq!(
        paths(&trash(&s, &["work", "ckpt/step-1"])),
        ["ckpt/step-1/model.bin"]
    );
    let table = s.ok(&["volume", "trash", "work"]);
    assert!(
        table.starts_with("ID") && table.contains("ckpt/optim.bin") && table.contains("5.0 MiB"),
        "{table}"
    );

    // The whole directory comes back, with its subdirectory, and the other
    // mount (which saw it go) reads the same bytes.
    s.ok(&["volume", "undelete", "work", "ckpt"]);
    eventually(Duration::from_secs(5), "ckpt back on mount b", || {
        b.p("ckpt/step-1/model.bin").exists()
    });
    assert_eq!(
        std::fs::read(b.p("ckpt/step-1/model.bin")).expect("read"),
        one
    );
    assert_eq!(std::fs::read(b.p("ckpt/optim.bin")).expect("read"), two);
    assert_eq!(paths(&trash(&s, &["work"])), ["cfg"]);

    // The replaced cfg: its path is taken, so it needs another.
    let taken = s.run(&["volume", "undelete", "work", "cfg"]);
    assert!(!taken.status.success());
    let err = String::from_utf8_lossy(&taken.stderr).to_string();
    assert!(err.contains("cfg") && err.contains("exists"), "{err}");
    s.ok(&["volume", "undelete", "work", "cfg", "--as", "old/cfg"]);
    eventually(Duration::from_secs(5), "old/cfg on mount b", || {
        b.p("old/cfg").exists()
    });
    assert_eq!(std::fs::read(b.p("old/cfg")).expect("read"), b"version 1\n");
    assert_eq!(std::fs::read(b.p("cfg")).expect("read"), b"version 2\n");

    // Removed through the CLI: kept too; purged by hand, its blocks go.
    s.ok(&["volume", "rm", "work", "ckpt/optim.bin"]);
    std::fs::remove_file(a.p("ckpt/step-1/model.bin")).expect("rm");
    assert_eq!(
        paths(&trash(&s, &["work"])),
        ["ckpt/optim.bin", "ckpt/step-1/model.bin"]
    );
    s.ok(&[
        "volume",
        "trash",
        "work",
        "ckpt/optim.bin",
        "--purge",
        "--yes",
    ]);
    assert_eq!(paths(&trash(&s, &["work"])), ["ckpt/step-1/model.bin"]);
    eventually(Duration::from_secs(10), "optim.bin's blocks freed", || {
        s.block_bytes() <= blocks - (5 << 20)
    });
    s.ok(&["volume", "trash", "work", "--purge", "--yes"]);
    assert!(trash(&s, &["work"]).is_empty());
    eventually(Duration::from_secs(10), "model.bin's blocks freed", || {
        s.block_bytes() <= blocks - (8 << 20)
    });

    // Nothing to restore, and bad paths, are refused by name.
    let none = s.run(&["volume", "undelete", "work", "ckpt"]);
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("not found"));
    let bad = s.run(&["volume", "undelete", "work", "../etc"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains(".."));
}

#[test]
fn a_volume_without_a_trash_keeps_nothing_until_it_gets_one() {
    let s = Server::start();
    s.create_volume("plain");
    let a = s.mount("plain", &[]);
    std::fs::write(a.p("f"), random_bytes(2 << 20, 3)).expect("write");
    let blocks = s.block_bytes();
    std::fs::remove_file(a.p("f")).expect("rm");
    assert!(trash(&s, &["plain"]).is_empty());
    eventually(Duration::from_secs(10), "freed at once", || {
        s.block_bytes() <= blocks - (2 << 20)
    });
    let hint = s.run(&["volume", "trash", "plain"]);
    assert!(String::from_utf8_lossy(&hint.stderr).contains("--trash"));

    s.ok(&["volume", "set", "plain", "--trash", "1h"]);
    assert_eq!(info(&s, "plain")["file_trash_seconds"], 3600);
    std::fs::write(a.p("g"), b"kept").expect("write");
    std::fs::remove_file(a.p("g")).expect("rm");
    // The mount may have answered the create and the remove ahead of the
    // server; stopped right after, it can send them only when the listing
    // recalls its holds.
    let pid = mount_pid(a.path()) as libc::pid_t;
    // SAFETY: signals to the mount process this test started.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let kept = std::thread::scope(|t| {
        let listed = t.spawn(|| trash(&s, &["plain"]));
        std::thread::sleep(Duration::from_millis(300));
        unsafe { libc::kill(pid, libc::SIGCONT) };
        listed.join().expect("trash")
    });
    assert_eq!(paths(&kept), ["g"]);
    // Files removed more than --since ago are left alone; by id, any.
    std::thread::sleep(Duration::from_millis(1100));
    let recent = s.run(&["volume", "undelete", "plain", "g", "--since", "1s"]);
    assert!(!recent.status.success(), "g was removed over a second ago");
    let id = kept[0]["id"].as_i64().expect("id").to_string();
    s.ok(&["volume", "undelete", "plain", "--id", &id]);
    assert_eq!(std::fs::read(a.p("g")).expect("read"), b"kept");
}
