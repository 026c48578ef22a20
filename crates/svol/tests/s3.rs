//! `svol server --blocks s3://…`: file data goes to a real S3 server
//! (s3s-fs, started here), not to the data directory, and comes back
//! through another mount; deleting the volume deletes the objects; a
//! server does not start on a bucket it cannot use.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{dir_bytes, eventually, random_bytes, Server};
use svol_testkit::S3Server;

fn start_s3(bucket: &str) -> S3Server {
    S3Server::start(&[bucket])
}

#[test]
fn file_data_lives_in_s3_and_goes_with_its_volume() {
    let s3 = start_s3("svol-blocks");
    // The object_store conventions: the server reads these.
    for (k, v) in s3.env() {
        std::env::set_var(k, v);
    }
    // A bucket that is not there: the server refuses to start, naming it.
    let data = tempfile::tempdir().expect("tempdir");
    let out = common::run_with_timeout(
        Command::new(common::svol_bin())
            .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data.path())
            .args(["--blocks", "s3://no-such-bucket/x"]),
        Duration::from_secs(30),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started on a missing bucket");
    assert!(err.contains("s3://no-such-bucket/x"), "{err}");

    let s = Server::start_with(&["--blocks", "s3://svol-blocks/cluster-1"]);
    s.create_volume("v");
    let a = s.mount("v", &[]);
    let b = s.mount("v", &[]);
    let data = random_bytes(9 << 20, 7);
    std::fs::write(a.p("weights.bin"), &data).expect("write");
    assert_eq!(std::fs::read(b.p("weights.bin")).expect("read"), data);

    let prefix = s3.bucket_dir("svol-blocks").join("cluster-1");
    let in_s3 = dir_bytes(&prefix);
    assert!(
        in_s3 >= 9 << 20,
        "the blocks are objects in S3 ({in_s3} bytes)"
    );
    assert!(
        !s.data().join("blocks").exists() || dir_bytes(&s.data().join("blocks")) == 0,
        "no block in the data dir"
    );
    drop((a, b));
    s.ok(&["volume", "delete", "v", "--yes"]);
    eventually(
        Duration::from_secs(20),
        "objects deleted with the volume",
        || dir_bytes(&prefix) == 0,
    );
}
