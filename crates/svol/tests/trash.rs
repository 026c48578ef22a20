//! The trash through the binary: a deleted volume (or a stopped volume's
//! app) is listed in the trash with its size, restored under a name with
//! its data, and purged on demand, when its space comes back. (Retention
//! running out is tested on a clock the test moves, in the server's
//! `state_tests`.)

mod common;

use std::time::Duration;

use common::*;

fn trash(s: &Server) -> Vec<serde_json::Value> {
    serde_json::from_str(&s.ok(&["trash", "list", "--json"])).expect("trash json")
}

#[test]
fn a_deleted_volume_waits_in_the_trash_until_restored_or_purged() {
    let s = Server::start_with(&["--trash-retention", "1h"]);
    s.create_volume("models");
    let data = random_bytes(5 << 20, 3);
    {
        let m = s.mount("models", &[]);
        std::fs::write(m.p("w.bin"), &data).expect("write");
    }
    let id =
        serde_json::from_str::<serde_json::Value>(&s.ok(&["volume", "info", "models", "--json"]))
            .expect("json")["id"]
            .as_str()
            .expect("id")
            .to_string();
    let full = s.block_bytes();
    s.ok(&["volume", "delete", "models", "--yes"]);
    assert!(!s.ok(&["volume", "list"]).contains("models"));
    let t = trash(&s);
    assert_eq!(t.len(), 1);
    assert_eq!(
        (t[0]["id"].as_str(), t[0]["name"].as_str()),
        (Some(&id[..]), Some("models"))
    );
    assert_eq!(t[0]["bytes"].as_u64(), Some(5 << 20));
    let (deleted, purge) = (
        t[0]["deleted"].as_i64().unwrap_or(0),
        t[0]["purge"].as_i64().unwrap_or(0),
    );
    assert_eq!(purge - deleted, 3600, "kept for the server's retention");
    assert_eq!(s.block_bytes(), full, "nothing freed while in the trash");

    // Restored under a new name, with its data.
    s.ok(&["trash", "restore", &id, "--as", "models-back"]);
    assert!(trash(&s).is_empty());
    {
        let m = s.mount("models-back", &[]);
        assert_eq!(std::fs::read(m.p("w.bin")).expect("read"), data);
    }
    // Stopping a volume's app (the dashboard's trash icon) trashes it too.
    let app = serde_json::from_str::<serde_json::Value>(&s.ok(&[
        "volume",
        "info",
        "models-back",
        "--json",
    ]))
    .expect("json")["app"]
        .as_str()
        .expect("app")
        .to_string();
    s.ok(&["app", "stop", &app]);
    assert_eq!(trash(&s).len(), 1);
    // An unknown id is refused by name.
    let bad = s.run(&["trash", "restore", "vo-0000000000000000"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("vo-0000000000000000"));
    // Purged: gone for good, and the space comes back.
    s.ok(&["trash", "purge", &id, "--yes"]);
    assert!(trash(&s).is_empty());
    eventually(Duration::from_secs(30), "the blocks are freed", || {
        s.block_bytes() + (5 << 20) <= full
    });
}

#[test]
fn with_no_retention_a_delete_is_final() {
    let s = Server::start_with(&["--trash-retention", "0"]);
    s.create_volume("tmp");
    {
        let m = s.mount("tmp", &[]);
        std::fs::write(m.p("x"), random_bytes(2 << 20, 9)).expect("write");
    }
    let full = s.block_bytes();
    s.ok(&["volume", "delete", "tmp", "--yes"]);
    assert!(trash(&s).is_empty());
    let out = s.run(&["trash", "list"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no trash"));
    eventually(Duration::from_secs(30), "the blocks are freed", || {
        s.block_bytes() + (2 << 20) <= full
    });
}
