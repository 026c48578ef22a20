//! Metadata operations per second straight on a store, no server or FUSE:
//! `cargo run --release -p svol-meta --example metabench [-- postgres://…]`.
use std::time::Instant;

use svol_meta::*;

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = std::env::args()
        .nth(1)
        .unwrap_or_else(|| dir.path().join("m.db").to_string_lossy().into_owned());
    let s = MetaStore::open(&spec).expect("open");
    let ws = s.create_workspace("w").expect("workspace");
    let v = s
        .create_volume(ws.id, "v", Timespec::now())
        .expect("volume")
        .root;
    let node = NewNode {
        kind: FileKind::Regular,
        mode: 0o644,
        uid: 0,
        gid: 0,
        rdev: 0,
        target: vec![],
    };
    let n = 10_000;
    let rate = |what: &str, t: Instant| {
        println!("{what:8} {:8.0}/s", n as f64 / t.elapsed().as_secs_f64());
    };
    let t = Instant::now();
    for i in 0..n {
        s.create(
            v,
            v,
            format!("f{i}").as_bytes(),
            &node,
            true,
            &Cx::at(Timespec::now()),
        )
        .expect("create");
    }
    rate("create", t);
    let t = Instant::now();
    for i in 0..n {
        s.lookup(v, v, format!("f{i}").as_bytes()).expect("lookup");
    }
    rate("lookup", t);
    let t = Instant::now();
    for i in 0..n {
        s.rename(
            v,
            v,
            format!("f{i}").as_bytes(),
            v,
            format!("g{i}").as_bytes(),
            RenameFlags::default(),
            &Cx::at(Timespec::now()),
        )
        .expect("rename");
    }
    rate("rename", t);
    let t = Instant::now();
    for i in 0..n {
        s.unlink(
            v,
            v,
            format!("g{i}").as_bytes(),
            false,
            &Cx::at(Timespec::now()),
        )
        .expect("unlink");
    }
    rate("unlink", t);
}
