//! `svol whoami`, `svol status` and `svol volume du` through the binary,
//! against a real server and mount.

mod common;

use common::*;

#[test]
fn whoami_status_and_du_describe_what_is_there() {
    let s = Server::start();
    let me: serde_json::Value = serde_json::from_str(&s.ok(&["whoami", "--json"])).expect("json");
    assert_eq!(me["workspace"], "main");
    assert_eq!(me["admin"], true);
    assert_eq!(me["token_source"], s.config().display().to_string());
    assert!(me["server"].as_str().expect("server").contains(&s.addr));
    let text = s.ok(&["whoami"]);
    assert!(text.contains("workspace: main"), "{text}");

    s.create_volume("v");
    let m = s.mount("v", &[]);
    std::fs::create_dir_all(m.p("a/b")).expect("mkdir");
    std::fs::write(m.p("a/b/x"), random_bytes(3 << 20, 1)).expect("write");
    std::fs::write(m.p("a/y"), random_bytes(1000, 2)).expect("write");
    std::fs::write(m.p("t"), b"top").expect("write");

    let du: serde_json::Value =
        serde_json::from_str(&s.ok(&["volume", "du", "v", "--json"])).expect("json");
    assert_eq!(
        (du["bytes"].as_u64(), du["files"].as_u64()),
        (Some((3 << 20) + 1003), Some(3))
    );
    let first = &du["entries"][0];
    assert_eq!(first["path"], "/a", "largest first");
    assert_eq!(
        (first["bytes"].as_u64(), first["files"].as_u64()),
        (Some((3 << 20) + 1000), Some(2))
    );
    let table = s.ok(&["volume", "du", "v", "/a"]);
    assert!(
        table.starts_with("SIZE") && table.contains("/a/b") && table.contains("3.0 MiB"),
        "{table}"
    );

    let mp = m.path().display().to_string();
    let all: Vec<serde_json::Value> =
        serde_json::from_str(&s.ok(&["status", "--json"])).expect("json");
    let mine = all
        .iter()
        .find(|r| r["mountpoint"] == mp.as_str())
        .unwrap_or_else(|| panic!("{mp} not in {all:?}"));
    assert_eq!(mine["volume"], "v");
    let pid: u32 = mine["pid"].as_str().expect("pid").parse().expect("number");
    assert_eq!(pid, mount_pid(m.path()));
    assert!(
        mine["session"].as_str().is_some_and(|t| t.len() == 8),
        "{mine}"
    );
    assert!(mine["cache"]["memory_limit_bytes"]
        .as_u64()
        .is_some_and(|n| n > 0));
    assert!(mine["cache"]["dir"].is_null(), "{mine}");

    // A second mount with a cache directory: status shows what it holds.
    let cache = tempfile::tempdir().expect("tempdir");
    let cache_arg = cache.path().to_str().expect("utf8");
    let m2 = s.mount("v", &["--cache-dir", cache_arg, "--cache-size", "1G"]);
    assert_eq!(
        std::fs::read(m2.p("a/b/x")).expect("read"),
        random_bytes(3 << 20, 1)
    );
    let mp2 = m2.path().display().to_string();
    let all: Vec<serde_json::Value> =
        serde_json::from_str(&s.ok(&["status", "--json"])).expect("json");
    let second = all
        .iter()
        .find(|r| r["mountpoint"] == mp2.as_str())
        .unwrap_or_else(|| panic!("{mp2} not in {all:?}"));
    assert_eq!(second["cache"]["dir_limit_bytes"].as_u64(), Some(1 << 30));
    assert!(
        second["cache"]["dir"]
            .as_str()
            .is_some_and(|d| d.starts_with(cache_arg)),
        "{second}"
    );
    assert!(
        second["cache"]["dir_bytes"]
            .as_u64()
            .is_some_and(|n| n >= 3 << 20),
        "the 3 MiB read is in the cache: {second}"
    );
    let table = s.ok(&["status"]);
    assert!(
        table.starts_with("MOUNTPOINT")
            && table.contains(&mp)
            && table.contains("of 1.0 GiB on disk"),
        "{table}"
    );
    drop(m2);
    drop(m);
    let all: Vec<serde_json::Value> =
        serde_json::from_str(&s.ok(&["status", "--json"])).expect("json");
    assert!(
        all.iter().all(|r| r["mountpoint"] != mp.as_str()),
        "unmounted, still listed"
    );
}

#[test]
fn doctor_passes_a_good_host_and_names_what_is_wrong() {
    let s = Server::start();
    let out = s.run(&["doctor"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}");
    for check in ["FUSE device", "FUSE helper", "server", "token", "clock"] {
        assert!(text.contains(&format!("ok    {check}")), "{check}: {text}");
    }
    let out = s.run(&["--token", "sv-wrong", "doctor"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAIL  token") && text.contains("came from --token"),
        "{text}"
    );

    let keep = tempfile::tempdir().expect("tempdir");
    let config = keep.path().join("client.toml");
    std::fs::copy(s.config(), &config).expect("copy config");
    drop(s);
    let out = cli(&config).arg("doctor").output().expect("doctor");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL  server: cannot reach"), "{text}");
}
