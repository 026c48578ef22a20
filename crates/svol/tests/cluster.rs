//! Several `svol server`s on one PostgreSQL database and one S3 bucket:
//! mounts on different servers share a volume live, races across servers
//! have one winner, locks and fencing work across servers, and a server
//! killed under writing mounts loses nothing that was fsync'd.

mod common;

use std::fs;
use std::time::Duration;

use common::cluster::Cluster;
use common::*;

#[test]
fn cluster_smoke() {
    let c = Cluster::start(2, &[]);
    c.create_volume("v");
    let a = c.mount(0, "v");
    let b = c.mount(1, "v");
    let data = random_bytes(5 << 20, 3);
    fs::write(a.p("f"), &data).unwrap();
    assert_eq!(fs::read(b.p("f")).unwrap(), data);
    fs::write(b.p("g"), b"x").unwrap();
    eventually(Duration::from_millis(500), "pushed", || a.p("g").exists());
    assert!(dir_bytes(&c.bucket()) >= 5 << 20, "{}", c.logs());
}
