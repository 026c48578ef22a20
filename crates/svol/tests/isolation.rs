//! Workspaces are walls: a token of W1 can neither see nor touch W2's
//! volumes and apps, by name or by id, through any command. A revoked token
//! stops working at once, also for a mount that is already live.

mod common;

use std::process::Output;
use std::time::Duration;

use common::{eventually, Server};

fn refused(o: &Output, what: &str) {
    assert!(
        !o.status.success(),
        "{what}: should have been refused, got stdout {:?}",
        String::from_utf8_lossy(&o.stdout)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.lines().filter(|l| !l.trim().is_empty()).count() >= 1 && !err.contains("panicked"),
        "{what}: want a one-line error, got {err:?}"
    );
}

fn ok(o: Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn a_token_reaches_nothing_outside_its_workspace() {
    let s = Server::start();
    s.ok(&["workspace", "create", "w1"]);
    s.ok(&["workspace", "create", "w2"]);
    let t1 = s
        .ok(&["token", "create", "--workspace", "w1"])
        .trim()
        .to_string();
    let t2 = s
        .ok(&["token", "create", "--workspace", "w2"])
        .trim()
        .to_string();
    assert!(t1.starts_with("svol_") && t2.starts_with("svol_"));

    // W2's belongings
    let v2_id = ok(s.run_as(&t2, &["volume", "create", "v2"]), "create v2")
        .trim()
        .to_string();
    let src = tempfile::tempdir().expect("tempdir");
    std::fs::write(src.path().join("secret.txt"), b"w2 data").expect("write");
    ok(
        s.run_as(
            &t2,
            &[
                "volume",
                "put",
                "v2",
                src.path().join("secret.txt").to_str().expect("utf8"),
                "/secret.txt",
            ],
        ),
        "put",
    );
    let a2 = ok(s.run_as(&t2, &["app", "create", "--name", "a2"]), "app")
        .trim()
        .to_string();
    let e2 = ok(
        s.run_as(&t2, &["volume", "create", "--ephemeral", "--app", &a2]),
        "ephemeral",
    )
    .trim()
    .to_string();
    let t2_list: serde_json::Value =
        serde_json::from_str(&ok(s.run_as(&t2, &["token", "list", "--json"]), "tokens"))
            .expect("json");
    let t2_id = t2_list[0]["id"].as_str().expect("token id").to_string();
    // W1 has its own volume of the same name: names are per workspace
    ok(s.run_as(&t1, &["volume", "create", "v1"]), "create v1");

    let local = src.path().join("got");
    let mnt = tempfile::tempdir().expect("tempdir");
    let mp = mnt.path().to_str().expect("utf8");
    let secret = src.path().join("secret.txt");
    let secret = secret.to_str().expect("utf8");
    let attempts: Vec<(&str, Vec<&str>)> = vec![
        ("info by name", vec!["volume", "info", "v2"]),
        ("info by id", vec!["volume", "info", &v2_id]),
        ("ls", vec!["volume", "ls", "v2"]),
        ("ls by id", vec!["volume", "ls", &v2_id, "/"]),
        (
            "get",
            vec![
                "volume",
                "get",
                "v2",
                "/secret.txt",
                local.to_str().expect("utf8"),
            ],
        ),
        (
            "get to stdout",
            vec!["volume", "get", &v2_id, "/secret.txt", "-"],
        ),
        ("put", vec!["volume", "put", "v2", secret, "/x.txt"]),
        ("rm", vec!["volume", "rm", "v2", "/secret.txt"]),
        ("cp", vec!["volume", "cp", "v2", "/secret.txt", "/copy.txt"]),
        ("rename", vec!["volume", "rename", "v2", "stolen"]),
        ("delete", vec!["volume", "delete", "v2", "--yes"]),
        ("delete by id", vec!["volume", "delete", &v2_id, "--yes"]),
        ("persist", vec!["volume", "persist", &e2, "mine"]),
        (
            "ephemeral in their app",
            vec!["volume", "create", "--ephemeral", "--app", &a2],
        ),
        ("mount", vec!["mount", "v2", mp, "-d"]),
        ("mount ephemeral", vec!["mount", &e2, mp, "-d"]),
        (
            "run with their volume",
            vec!["run", "-v", "/x=v2", "--", "true"],
        ),
        ("run in their app", vec!["run", "--app", &a2, "--", "true"]),
        ("stop their app", vec!["app", "stop", &a2]),
        ("revoke their token", vec!["token", "revoke", &t2_id]),
        ("revoke their token by secret", vec!["token", "revoke", &t2]),
        (
            "token for their workspace",
            vec!["token", "create", "--workspace", "w2"],
        ),
        ("create a workspace", vec!["workspace", "create", "w3"]),
        ("admin token", vec!["token", "create", "--admin"]),
    ];
    for (what, args) in &attempts {
        refused(&s.run_as(&t1, args), what);
    }
    // Listings show only W1's own things.
    let vols = ok(s.run_as(&t1, &["volume", "list", "--json"]), "list");
    assert!(!vols.contains(&v2_id) && !vols.contains(&e2), "{vols}");
    let apps = ok(s.run_as(&t1, &["app", "list", "--json"]), "apps");
    assert!(!apps.contains(&a2), "{apps}");
    let wss = ok(s.run_as(&t1, &["workspace", "list"]), "workspaces");
    let names: Vec<&str> = wss
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(names, ["w1"], "{wss}");
    let toks = ok(s.run_as(&t1, &["token", "list"]), "tokens");
    assert!(!toks.contains(&t2_id));

    // W2's things are all still there, untouched.
    let got = s
        .cmd()
        .env("SVOL_TOKEN", &t2)
        .args(["volume", "get", "v2", "/secret.txt", "-"])
        .output()
        .expect("get");
    assert_eq!(got.stdout, b"w2 data");
    let files = ok(s.run_as(&t2, &["volume", "ls", "v2"]), "ls");
    assert_eq!(files.trim(), "secret.txt");
    let apps: Vec<serde_json::Value> =
        serde_json::from_str(&ok(s.run_as(&t2, &["app", "list", "--json"]), "apps")).expect("json");
    let a = apps
        .iter()
        .find(|a| a["id"] == a2.as_str())
        .expect("a2 listed");
    assert_eq!(a["state"], "running");
    ok(s.run_as(&t2, &["volume", "info", &e2]), "e2 still there");
    // and the admin of `main` does not see into W2's volumes either
    refused(&s.run(&["volume", "info", "v2"]), "admin reading w2 volume");
}

#[test]
fn a_revoked_token_is_refused_at_once_even_by_a_live_mount() {
    // Short leases so the test can watch the mount's lease keep an app up.
    let s = Server::start_with(&["--lease", "3s", "--app-grace", "2s"]);
    let app = s.ok(&["app", "create"]).trim().to_string();
    let vol = s
        .ok(&["volume", "create", "--ephemeral", "--app", &app])
        .trim()
        .to_string();
    let t = s
        .ok(&["token", "create", "--name", "worker"])
        .trim()
        .to_string();
    let mnt = tempfile::tempdir().expect("tempdir");
    let mp = mnt.path().to_path_buf();
    ok(
        s.run_as(&t, &["mount", &vol, mp.to_str().expect("utf8"), "-d"]),
        "mount with the worker token",
    );
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("fusermount3")
                .arg("-uz")
                .arg(&self.0)
                .status();
        }
    }
    let _guard = Unmount(mp.clone());
    std::fs::write(mp.join("before.txt"), b"written before revocation").expect("write before");
    // The live mount's lease keeps its app running past the grace period.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(s.app_state(&app), "running");

    let list: serde_json::Value =
        serde_json::from_str(&s.ok(&["token", "list", "--json"])).expect("json");
    let id = list
        .as_array()
        .expect("array")
        .iter()
        .find(|t| t["name"] == "worker")
        .and_then(|t| t["id"].as_str())
        .expect("worker token listed")
        .to_string();
    s.ok(&["token", "revoke", &id]);

    // The very next request of the live mount is refused.
    let err = std::fs::write(mp.join("after.txt"), b"x").expect_err("write after revocation");
    assert_eq!(err.raw_os_error(), Some(libc::EACCES), "{err}");
    let err = std::fs::create_dir(mp.join("newdir")).expect_err("mkdir after revocation");
    assert_eq!(err.raw_os_error(), Some(libc::EACCES), "{err}");
    refused(
        &s.run_as(&t, &["volume", "list"]),
        "CLI with the revoked token",
    );
    let o = s.run_as(&t, &["volume", "list"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("authentication failed"));
    // Nothing it tried got through; what it wrote before is intact.
    let ls = s.ok(&["volume", "ls", &vol]);
    assert_eq!(ls.trim(), "before.txt");
    assert!(s.ok(&["token", "list"]).contains("revoked"));
    // Its lease ends too: the session is cut at the mount's next heartbeat,
    // so the app it held stops after the grace period although the mount
    // process is still there.
    eventually(
        Duration::from_secs(20),
        "app stops once the revoked lease is cut",
        || s.app_state(&app) == "stopped",
    );
    assert!(
        std::fs::read_to_string("/proc/self/mountinfo")
            .expect("mountinfo")
            .contains(mp.to_str().expect("utf8")),
        "the mount itself is still there"
    );
}
