//! Quotas through the binary: two mounts racing to fill a volume's last
//! bytes never take it past its quota (EDQUOT to the writer), `df` on a
//! mount shows the quota as the size and the usage after dedup as used,
//! an inode quota refuses the create past it, and a workspace's quota is
//! an admin's to set.

mod common;

use std::io::Write;
use std::sync::Arc;
use std::sync::Mutex;

use common::*;

fn statvfs(p: &std::path::Path) -> libc::statvfs {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: `st` is written by statvfs before it is read.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
    st
}

fn info(s: &Server, name: &str) -> serde_json::Value {
    serde_json::from_str(&s.ok(&["volume", "info", name, "--json"])).expect("info json")
}

#[test]
fn two_mounts_racing_for_the_last_bytes_stay_within_the_quota() {
    let s = Server::start();
    s.create_volume("capped");
    s.ok(&["volume", "set", "capped", "--max-bytes", "8M"]);
    let (a, b) = (s.mount("capped", &[]), s.mount("capped", &[]));
    let st = statvfs(a.path());
    assert_eq!(
        st.f_blocks * st.f_frsize,
        8 << 20,
        "df shows the quota as the size"
    );

    let written = Arc::new(Mutex::new(Vec::new()));
    let refused = Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> = [(a.path().to_path_buf(), 1u64), (b.path().to_path_buf(), 2)]
        .into_iter()
        .map(|(dir, side)| {
            let (written, refused) = (written.clone(), refused.clone());
            std::thread::spawn(move || {
                for i in 0..20u64 {
                    let name = format!("{side}-{i}");
                    let data = random_bytes(1 << 20, side * 100 + i);
                    let r = std::fs::File::create(dir.join(&name)).and_then(|mut f| {
                        f.write_all(&data)?;
                        f.sync_all()
                    });
                    match r {
                        Ok(()) => written.lock().expect("lock").push((name, data)),
                        Err(e) => {
                            refused.lock().expect("lock").push(e.raw_os_error());
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.join().expect("writer");
    }
    let refused = refused.lock().expect("lock").clone();
    assert_eq!(
        refused,
        vec![Some(libc::EDQUOT); 2],
        "each writer stopped by EDQUOT"
    );
    let stored = info(&s, "capped")["stored_bytes"].as_u64().expect("stored");
    assert!(
        stored <= 8 << 20,
        "{stored} bytes stored past the 8 MiB quota"
    );
    let written = written.lock().expect("lock").clone();
    assert!(written.len() >= 6, "only {} files fit", written.len());
    // What was accepted is whole, seen from the other mount.
    for (name, data) in &written {
        let other = if name.starts_with('1') { &b } else { &a };
        assert_eq!(&std::fs::read(other.p(name)).expect("read"), data, "{name}");
    }
    let st = statvfs(b.path());
    let used = (st.f_blocks - st.f_bfree) * st.f_frsize;
    assert_eq!(
        used,
        stored.div_ceil(st.f_frsize) * st.f_frsize,
        "df's used is the usage"
    );
    // A copy costs nothing after dedup: within the quota still.
    let (first, _) = &written[0];
    std::fs::copy(a.p(first), a.p("copy")).expect("a copy of a block it has");

    // An inode quota refuses the create past it.
    let inodes = info(&s, "capped")["inodes"].as_u64().expect("inodes");
    s.ok(&[
        "volume",
        "set",
        "capped",
        "--max-files",
        &(inodes + 2).to_string(),
    ]);
    std::fs::create_dir(a.p("d1")).expect("first");
    std::fs::write(a.p("d1/x"), b"").expect("second");
    let err = std::fs::write(a.p("d1/y"), b"").expect_err("past the inode quota");
    assert_eq!(err.raw_os_error(), Some(libc::EDQUOT));
    assert_eq!(statvfs(a.path()).f_ffree, 0);
    // Freed by a delete.
    std::fs::remove_file(a.p("d1/x")).expect("rm");
    std::fs::write(a.p("d1/y"), b"").expect("room again");
}

#[test]
fn a_workspace_quota_is_set_by_an_admin_and_counts_every_volume() {
    let s = Server::start();
    s.ok(&["workspace", "create", "team"]);
    let t = s.ok(&["token", "create", "--workspace", "team"]);
    let token = t.trim();
    let user = |args: &[&str]| s.run_as(token, args);
    assert!(user(&["volume", "create", "one"]).status.success());
    assert!(user(&["volume", "create", "two"]).status.success());
    let refused = user(&["workspace", "set", "team", "--max-bytes", "1G"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("admin"));
    s.ok(&[
        "workspace",
        "set",
        "team",
        "--max-bytes",
        "3M",
        "--max-files",
        "100",
    ]);
    let listed: Vec<serde_json::Value> =
        serde_json::from_str(&s.ok(&["workspace", "list", "--json"])).expect("json");
    let team = listed.iter().find(|w| w["name"] == "team").expect("team");
    assert_eq!(
        (team["max_bytes"].as_u64(), team["max_files"].as_u64()),
        (Some(3 << 20), Some(100))
    );
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("a"), random_bytes(2 << 20, 1)).expect("a");
    std::fs::write(dir.path().join("b"), random_bytes(2 << 20, 2)).expect("b");
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    assert!(
        user(&["volume", "put", "one", a.to_str().expect("utf8"), "/a"])
            .status
            .success()
    );
    let over = user(&["volume", "put", "two", b.to_str().expect("utf8"), "/b"]);
    assert!(
        !over.status.success(),
        "the second volume takes the workspace past 3M"
    );
    assert!(
        String::from_utf8_lossy(&over.stderr).contains("quota"),
        "{over:?}"
    );
}
