//! Several `svol server`s on one PostgreSQL database and one S3 bucket (a
//! throw-away PostgreSQL cluster and s3s-fs, started here), each with its
//! own data directory as on its own host: mounts on different servers
//! share a volume live, races across servers have one winner, fcntl locks
//! and fencing work across servers, and a server killed under writing
//! mounts loses nothing that was fsync'd.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::shared::{self, python, signal};
use common::*;

#[test]
fn mounts_on_different_servers_see_every_change_pushed() {
    let c = Cluster::start(3, &[]);
    c.create_volume("shared");
    let a = c.mount(0, "shared");
    let b = c.mount(1, "shared");
    shared::every_change_crosses_mounts(&a, &b);
    // File bytes are objects in the shared bucket, not on any server.
    let kept = random_bytes(6 << 20, 9);
    fs::write(b.p("kept"), &kept).expect("write");
    assert_eq!(fs::read(a.p("kept")).expect("read"), kept);
    assert!(dir_bytes(&c.bucket()) >= 6 << 20, "{}", c.logs());
    for s in &c.servers {
        assert_eq!(dir_bytes(&s.data.join("blocks")), 0);
    }
}

#[test]
fn exclusive_races_across_servers_have_one_winner() {
    let c = Cluster::start(3, &[]);
    c.create_volume("race");
    let a = c.mount(0, "race");
    let b = c.mount(2, "race");
    shared::exclusive_races_have_one_winner(&a, &b);
}

#[test]
fn sqlite_through_two_servers_stays_consistent() {
    let c = Cluster::start(3, &[]);
    c.create_volume("db");
    let a = c.mount(0, "db");
    let b = c.mount(1, "db");
    shared::sqlite_from_two_mounts(&a, &b);
}

#[test]
fn a_frozen_holder_on_one_server_is_fenced_by_a_holder_on_another() {
    let c = Cluster::start(3, &["--lease", "2s"]);
    c.create_volume("v");
    let a = c.mount(0, "v");
    let b = c.mount(2, "v");
    shared::frozen_holder_is_fenced(&a, &b, "fcntl", "300000", "write");
}

/// Writes file after file, each fsync'd, for `secs`; prints the number of
/// each file whose fsync succeeded (a failed one is written again).
const WRITER: &str = r#"
import os, sys, time
base, secs = sys.argv[1], float(sys.argv[2])
end, n = time.time() + secs, 0
while time.time() < end:
    data = (f"{n}:" * 15000).encode()
    try:
        fd = os.open(f"{base}/{n}", os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        print(n, time.time(), flush=True)
        n += 1
    except OSError as e:
        print("retry", n, e, file=sys.stderr, flush=True)
        time.sleep(0.05)
"#;

/// Holds an fcntl lock on a file until told to let go.
const HOLDER: &str = r#"
import fcntl, os, sys
f = os.open(sys.argv[1], os.O_RDWR)
fcntl.lockf(f, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.readline()
fcntl.lockf(f, fcntl.LOCK_UN)
print("unlocked", flush=True)
"#;

/// Can this process take an exclusive fcntl lock on the file right now?
fn can_lock(path: &std::path::Path) -> bool {
    let out = python(
        "import fcntl,os,sys\nf=os.open(sys.argv[1],os.O_RDWR)\ntry:\n fcntl.lockf(f,fcntl.LOCK_EX|fcntl.LOCK_NB); print('yes')\nexcept OSError: print('no')",
        &[path.to_str().expect("utf8")],
    )
    .output()
    .expect("python");
    String::from_utf8_lossy(&out.stdout).trim() == "yes"
}

/// Server 0 is SIGKILLed while mount A (through it) writes and holds a
/// lock, and mount C (through it too) dies with it. A fails over to
/// another server and goes on writing; every file whose fsync succeeded
/// is there, byte for byte, from mount B (on server 1). C's lock is
/// released only once its lease ran out; A's lock, held through the dead
/// server, is still A's after the failover.
#[test]
fn a_killed_server_loses_no_fsynced_byte_and_locks_wait_for_their_lease() {
    let lease = 3.0;
    let mut c = Cluster::start(3, &["--lease", "3s"]);
    c.create_volume("v");
    let a = c.mount(0, "v");
    let b = c.mount(1, "v");
    let m = c.mount(0, "v");
    fs::create_dir(a.p("w")).expect("mkdir");
    fs::write(a.p("lock-a"), b"").expect("create");
    fs::write(m.p("lock-c"), b"").expect("create");
    eventually(Duration::from_secs(5), "files on b", || {
        b.p("lock-a").exists() && b.p("lock-c").exists()
    });
    let mut holder_a = python(HOLDER, &[a.p("lock-a").to_str().expect("utf8")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python");
    assert_eq!(shared::line(&mut holder_a), "locked");
    let mut holder_c = python(HOLDER, &[m.p("lock-c").to_str().expect("utf8")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python");
    assert_eq!(shared::line(&mut holder_c), "locked");
    assert!(!can_lock(&b.p("lock-a")) && !can_lock(&b.p("lock-c")));

    let writer = python(WRITER, &[a.p("w").to_str().expect("utf8"), "8"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python");
    std::thread::sleep(Duration::from_secs(3));
    // Server 0 dies, and mount C's host with it.
    let pid_c = mount_pid(m.path());
    c.servers[0].kill9();
    signal(pid_c, "-KILL");
    let killed = Instant::now();
    let killed_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();

    // C's lock goes when C's lease ends, not before.
    eventually(Duration::from_secs(20), "C's lock released", || {
        can_lock(&b.p("lock-c"))
    });
    let waited = killed.elapsed().as_secs_f64();
    assert!(
        waited >= lease / 2.0,
        "C's lock was released {waited:.2}s after its server died, before its lease ({lease}s) ran out"
    );
    // A's session moved to another server: its lock is still A's.
    assert!(
        !can_lock(&b.p("lock-a")),
        "A's lock was lost in the failover\n{}",
        c.logs()
    );

    let out = writer.wait_with_output().expect("writer");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let synced: Vec<(u64, f64)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let mut it = l.split_whitespace();
            let n = it.next().and_then(|n| n.parse().ok()).expect("number");
            let t = it.next().and_then(|t| t.parse().ok()).expect("time");
            (n, t)
        })
        .collect();
    assert!(
        synced.iter().any(|(_, t)| *t > killed_at + 1.0),
        "A went on writing after the failover: {synced:?}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        mount_log(a.path())
    );
    for (n, _) in &synced {
        let want = format!("{n}:").repeat(15000).into_bytes();
        let got = fs::read(b.p(&format!("w/{n}"))).unwrap_or_default();
        assert!(got == want, "file {n} fsync'd on A is not intact on B");
    }
    let names: BTreeSet<String> = fs::read_dir(b.p("w"))
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.len() >= synced.len());
    // A still holds its lock and lets go of it through its new server.
    shared::tell(&mut holder_a, "go\n");
    assert_eq!(shared::line(&mut holder_a), "unlocked");
    eventually(Duration::from_secs(5), "A's lock released", || {
        can_lock(&b.p("lock-a"))
    });
    let _ = holder_c.kill();
    let _ = holder_c.wait();
    let _ = holder_a.wait();
}

/// An embedded deployment (SQLite and a block directory) moves to
/// PostgreSQL and S3 with `svol server migrate`: files, directories,
/// links, xattrs and tokens are all there, served by a new server.
#[test]
fn an_embedded_deployment_moves_to_postgres_and_s3() {
    use std::os::unix::fs::MetadataExt;
    let work = tempfile::tempdir().expect("tempdir");
    let old_data = work.path().join("old");
    let mut old = Restartable::new(old_data.clone(), work.path().join("old.log"), &[]);
    old.ok(&["volume", "create", "data"]);
    let worker = old
        .ok(&["token", "create", "--name", "worker"])
        .trim()
        .to_string();
    let big = random_bytes(9 << 20, 11);
    {
        let m = old.mount("data");
        fs::create_dir_all(m.p("models/v1")).expect("mkdir");
        fs::write(m.p("models/v1/weights.bin"), &big).expect("write");
        fs::write(m.p("small.txt"), b"inline bytes").expect("write");
        fs::hard_link(m.p("small.txt"), m.p("models/hard")).expect("link");
        std::os::unix::fs::symlink("models/v1/weights.bin", m.p("latest")).expect("symlink");
        let st = std::process::Command::new("setfattr")
            .args(["-n", "user.origin", "-v", "old-server"])
            .arg(m.p("small.txt"))
            .status()
            .expect("setfattr");
        assert!(st.success());
    }
    old.kill9();

    let url = svol_testkit::pg().database();
    let s3 = svol_testkit::S3Server::start(&["blocks"]);
    let migrate = |url: &str| {
        run_with_timeout(
            std::process::Command::new(svol_bin())
                .args(["server", "migrate", "--data-dir"])
                .arg(&old_data)
                .args(["--to-meta", url, "--to-blocks", "s3://blocks/moved"])
                .envs(s3.env()),
            Duration::from_secs(120),
        )
    };
    let out = migrate(&url);
    assert!(
        out.status.success(),
        "migrate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("blocks"), "{said}");
    assert!(dir_bytes(&s3.bucket_dir("blocks").join("moved")) >= 9 << 20);
    // Into a store that already holds data: refused, nothing changed.
    let again = migrate(&url);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already holds svol data"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    let new = Restartable::with_env(
        work.path().join("new"),
        work.path().join("new.log"),
        &["--meta", &url, "--blocks", "s3://blocks/moved"],
        s3.env(),
    );
    // The old worker token works on the new server.
    let mut c = cli(&new.config());
    c.env("SVOL_TOKEN", &worker);
    let listed = ok(c, &["volume", "list"]);
    assert!(listed.contains("data"), "{listed}");
    let m = new.mount("data");
    assert_eq!(fs::read(m.p("models/v1/weights.bin")).expect("read"), big);
    assert_eq!(fs::read(m.p("small.txt")).expect("read"), b"inline bytes");
    assert_eq!(fs::metadata(m.p("small.txt")).expect("stat").nlink(), 2);
    assert_eq!(
        fs::read_link(m.p("latest")).expect("readlink"),
        std::path::PathBuf::from("models/v1/weights.bin")
    );
    let x = std::process::Command::new("getfattr")
        .args(["--only-values", "-n", "user.origin"])
        .arg(m.p("small.txt"))
        .output()
        .expect("getfattr");
    assert_eq!(x.stdout, b"old-server");
    // And it goes on working: new files, new inodes past the copied ones.
    fs::write(m.p("new.txt"), b"after the move").expect("write");
    assert_eq!(fs::read(m.p("new.txt")).expect("read"), b"after the move");
    fs::create_dir(m.p("models/v2")).expect("mkdir after the move");
}

/// Servers reach PostgreSQL over TLS when told to (`sslmode=require`, the
/// CA in `sslrootcert`), check its certificate, and every connection they
/// make is encrypted; a database whose certificate another CA signed is
/// refused, naming the problem.
#[test]
fn servers_reach_postgres_over_tls_and_check_its_certificate() {
    let work = tempfile::tempdir().expect("tempdir");
    let init = |dir: &str| {
        let out = run_with_timeout(
            std::process::Command::new(svol_bin())
                .args(["server", "init-tls", "--host", "127.0.0.1", "--dir"])
                .arg(work.path().join(dir)),
            Duration::from_secs(60),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        work.path().join(dir)
    };
    let (certs, other) = (init("pg-tls"), init("other-ca"));
    let pg =
        svol_testkit::Postgres::start_tls(&certs.join("server.pem"), &certs.join("server.key"));
    pg.psql("CREATE DATABASE tlsdb");
    let url = |extra: &str| format!("{}?{extra}", pg.url("tlsdb"));
    let refused = |meta: String| {
        let data = tempfile::tempdir().expect("tempdir");
        let out = run_with_timeout(
            std::process::Command::new(svol_bin())
                .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
                .arg(data.path())
                .args(["--meta", &meta]),
            Duration::from_secs(60),
        );
        assert!(!out.status.success(), "started with {meta}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let wrong_ca = refused(url(&format!(
        "sslmode=require&sslrootcert={}",
        other.join("ca.pem").display()
    )));
    assert!(wrong_ca.contains("certificate"), "{wrong_ca}");
    // The database takes TLS only: a plain connection is refused too.
    refused(url("sslmode=disable"));

    let meta = url(&format!(
        "sslmode=require&sslrootcert={}",
        certs.join("ca.pem").display()
    ));
    let server = Restartable::new(
        work.path().join("server"),
        work.path().join("server.log"),
        &["--meta", &meta],
    );
    server.ok(&["volume", "create", "v"]);
    let m = server.mount("v");
    fs::write(m.p("f"), b"over TLS").expect("write");
    assert_eq!(fs::read(m.p("f")).expect("read"), b"over TLS");
    let count = |ssl: bool| -> u64 {
        pg.query(&format!(
            "SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
             WHERE a.datname = 'tlsdb' AND s.ssl = {ssl}"
        ))
        .parse()
        .expect("count")
    };
    assert!(count(true) >= 2, "the server's connections use TLS");
    assert_eq!(count(false), 0, "no plain connection to the database");
}
