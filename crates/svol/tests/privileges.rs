//! What a write takes from a file, through real mounts: a write loses the
//! file's capabilities; a write by a user without CAP_FSETID also loses
//! its set-ID bits, as on a local file system; root keeps them. The kernel
//! leaves this to svol (HANDLE_KILLPRIV_V2), so a write(2) costs no
//! `getxattr(security.capability)` request — counted on the mount.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::*;

/// `cap_net_raw+ep`, as the kernel stores it (VFS_CAP_REVISION_2).
const CAPS: &str = "0x0100000200200000000000000000000000000000";

fn set_caps(p: &Path) {
    let o = Command::new("setfattr")
        .args(["-n", "security.capability", "-v", CAPS])
        .arg(p)
        .output()
        .expect("setfattr (Debian's attr package)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn has_caps(p: &Path) -> bool {
    Command::new("getfattr")
        .args(["-n", "security.capability"])
        .arg(p)
        .output()
        .expect("getfattr")
        .status
        .success()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("stat").permissions().mode() & 0o7777
}

fn append(p: &Path, data: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(p)
        .expect("open");
    f.write_all(data).expect("write");
}

#[test]
fn writes_take_capabilities_and_set_id_bits_as_a_local_disk_does() {
    let s = Server::start();
    s.create_volume("v");
    let addr = format!("127.0.0.1:{}", free_port());
    let a = s.mount("v", &["--allow-other", "--metrics", &addr]);
    let b = s.mount("v", &[]);
    std::fs::set_permissions(a.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");

    // Root writes: capabilities go, set-ID bits stay (CAP_FSETID).
    let f = a.p("tool");
    std::fs::write(&f, b"#!/bin/sh\n").expect("write");
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o6777)).expect("chmod");
    set_caps(&f);
    assert!(has_caps(&b.p("tool")), "set on A, seen on B");
    append(&f, b"echo one\n");
    std::fs::File::open(&f)
        .expect("open")
        .sync_all()
        .expect("fsync");
    assert!(!has_caps(&f), "a write kept the capabilities");
    assert!(!has_caps(&b.p("tool")));
    assert_eq!(mode(&b.p("tool")), 0o6777, "root keeps set-ID bits");

    // Another user writes: the set-ID bits go too, seen from B.
    set_caps(&f);
    let o = Command::new("runuser")
        .args(["-u", "nobody", "--", "sh", "-c", "echo two >> \"$0\""])
        .arg(&f)
        .output()
        .expect("runuser");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        mode(&b.p("tool")),
        0o0777,
        "set-ID bits of a write by nobody"
    );
    assert!(!has_caps(&b.p("tool")));
    assert_eq!(
        std::fs::read(b.p("tool")).expect("read"),
        b"#!/bin/sh\necho one\ntwo\n"
    );
    // A chown drops set-ID bits as on a local disk, even by root.
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o6755)).expect("chmod");
    std::os::unix::fs::chown(&f, Some(65534), None).expect("chown");
    assert_eq!(mode(&b.p("tool")), 0o0755);

    // Writes to an existing file ask the kernel for no capability check.
    let g = a.p("log");
    std::fs::write(&g, b"").expect("create");
    let getxattrs = |m: &std::collections::HashMap<String, f64>| {
        sample(m, "svol_mount_fuse_operations_total{op=\"getxattr\"}")
    };
    let before = getxattrs(&scrape(&addr));
    {
        let mut w = std::fs::OpenOptions::new()
            .append(true)
            .open(&g)
            .expect("open");
        for i in 0..200 {
            writeln!(w, "line {i}").expect("write");
            w.flush().expect("flush");
        }
    }
    let after = getxattrs(&scrape(&addr));
    // One per write(2) without HANDLE_KILLPRIV_V2; the kernel may still
    // ask once when the file is first opened for writing.
    assert!(
        after - before <= 1.0,
        "{} getxattr requests for 200 writes",
        after - before
    );
    let text = std::fs::read_to_string(b.p("log")).expect("read");
    assert_eq!(text.lines().count(), 200);
}
