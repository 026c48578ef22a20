//! Finding 4 of the trust issue: beyond loopback the server speaks TLS.
//! The test makes two network namespaces joined by a veth pair (its own
//! private link, nothing leaves the machine), runs the server in one on a
//! non-loopback address with certificates from `svol server init-tls`, and
//! mounts the volume twice from the other.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::*;

/// Two namespaces `svol-s-N` (server) and `svol-c-N` (clients) joined by
/// a veth pair 10.213.X.1 <-> 10.213.X.2; removed on drop.
struct Link {
    server_ns: String,
    client_ns: String,
    server_ip: String,
}

fn sh(args: &[&str]) {
    let o = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

impl Link {
    fn new() -> Link {
        let id = std::process::id();
        let (s, c) = (format!("svol-s-{id}"), format!("svol-c-{id}"));
        let (vs, vc) = (format!("vs{id}"), format!("vc{id}"));
        let net = format!("10.213.{}", id % 250 + 1);
        sh(&["ip", "netns", "add", &s]);
        sh(&["ip", "netns", "add", &c]);
        let link = Link {
            server_ns: s.clone(),
            client_ns: c.clone(),
            server_ip: format!("{net}.1"),
        };
        sh(&[
            "ip", "link", "add", &vs, "type", "veth", "peer", "name", &vc,
        ]);
        sh(&["ip", "link", "set", &vs, "netns", &s]);
        sh(&["ip", "link", "set", &vc, "netns", &c]);
        for (ns, dev, ip) in [
            (&s, &vs, format!("{net}.1/24")),
            (&c, &vc, format!("{net}.2/24")),
        ] {
            sh(&["ip", "-n", ns, "addr", "add", &ip, "dev", dev]);
            sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        link
    }

    /// `svol ARGS` with only its network namespace changed (mounts it makes
    /// stay visible to this test).
    fn svol(&self, ns: &str, config: Option<&Path>, args: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/var/run/netns/{ns}"))
            .arg(svol_bin())
            .args(args)
            .env_remove("SVOL_SERVER")
            .env_remove("SVOL_TOKEN")
            .stdin(Stdio::null());
        match config {
            Some(p) => c.env("SVOL_CONFIG", p),
            None => c.env("SVOL_CONFIG", "/nonexistent"),
        };
        c
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        for ns in [&self.server_ns, &self.client_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn output(mut c: Command) -> Output {
    run_with_timeout(&mut c, Duration::from_secs(60))
}

/// A client that must not get in: it fails, or (a refused TLS peer can
/// leave a request waiting on a dead connection) does not succeed within
/// 20 s.
fn refused(mut c: Command) -> bool {
    let mut child = c
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if let Some(st) = child.try_wait().unwrap() {
            return !st.success();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    true
}

fn write_config(path: &Path, server: &str, token: &str, extra: &[(&str, &Path)]) -> PathBuf {
    let mut s = format!("server = \"{server}\"\ntoken = \"{token}\"\n");
    for (k, v) in extra {
        s += &format!("{k} = \"{}\"\n", v.display());
    }
    std::fs::write(path, s).unwrap();
    path.to_path_buf()
}

#[test]
fn server_and_mounts_over_tls_on_a_non_loopback_address() {
    let link = Link::new();
    let work = tempfile::tempdir().unwrap();
    let pki = work.path().join("pki");
    let data = work.path().join("data");
    let listen = format!("{}:7420", link.server_ip);

    // Plain HTTP beyond loopback is refused unless asked for.
    let o = output(link.svol(
        &link.server_ns,
        None,
        &[
            "server",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            &listen,
        ],
    ));
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("without TLS") && err.contains("--insecure"),
        "{err}"
    );

    let o = output(link.svol(
        &link.server_ns,
        None,
        &[
            "server",
            "init-tls",
            "--dir",
            pki.to_str().unwrap(),
            "--host",
            &link.server_ip,
            "--client",
            "worker",
        ],
    ));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let p = |n: &str| pki.join(n);
    let mut server = link.svol(
        &link.server_ns,
        None,
        &[
            "server",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            &listen,
            "--tls-cert",
            p("server.pem").to_str().unwrap(),
            "--tls-key",
            p("server.key").to_str().unwrap(),
            "--tls-ca",
            p("ca.pem").to_str().unwrap(),
            "--tls-client-ca",
            p("ca.pem").to_str().unwrap(),
        ],
    );
    let server = Killed(
        server
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let client_toml = data.join("client.toml");
    eventually(Duration::from_secs(20), "server ready", || {
        client_toml.exists()
    });
    let written = std::fs::read_to_string(&client_toml).unwrap();
    assert!(written.contains(&format!("https://{listen}")), "{written}");
    let token: String = written
        .lines()
        .find_map(|l| l.strip_prefix("token = \""))
        .unwrap()
        .trim_end_matches('"')
        .to_string();
    let server_url = format!("https://{listen}");

    // A worker with the CA and its client certificate.
    let worker = write_config(
        &work.path().join("worker.toml"),
        &server_url,
        &token,
        &[
            ("ca", &p("ca.pem")),
            ("cert", &p("client-worker.pem")),
            ("key", &p("client-worker.key")),
        ],
    );
    let run = |cfg: &Path, args: &[&str]| output(link.svol(&link.client_ns, Some(cfg), args));
    let mut ready = false;
    for _ in 0..100 {
        if run(&worker, &["volume", "list"]).status.success() {
            ready = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(ready, "the server answers over TLS");
    let o = run(&worker, &["volume", "create", "shared"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // Two mounts from the client namespace; data crosses between them.
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    for mp in [a.path(), b.path()] {
        let o = run(&worker, &["mount", "shared", mp.to_str().unwrap(), "-d"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let _unmount = scopeguard(vec![a.path().to_path_buf(), b.path().to_path_buf()]);
    let payload: Vec<u8> = (0..(6 << 20)).map(|i: u32| (i * 7 % 251) as u8).collect();
    std::fs::write(a.path().join("over-tls.bin"), &payload).unwrap();
    assert_eq!(
        std::fs::read(b.path().join("over-tls.bin")).unwrap(),
        payload
    );

    // Without the CA: the server's certificate is not trusted.
    let no_ca = write_config(
        &work.path().join("no-ca.toml"),
        &server_url,
        &token,
        &[
            ("cert", &p("client-worker.pem")),
            ("key", &p("client-worker.key")),
        ],
    );
    let o = run(&no_ca, &["volume", "list"]);
    assert!(!o.status.success(), "a client without the CA was let in");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("certificate"), "{err}");
    // With the CA but without a client certificate: mTLS refuses it.
    let no_cert = write_config(
        &work.path().join("no-cert.toml"),
        &server_url,
        &token,
        &[("ca", &p("ca.pem"))],
    );
    assert!(
        refused(link.svol(&link.client_ns, Some(&no_cert), &["volume", "list"])),
        "a client without a certificate was let in"
    );
    // Plain HTTP to the TLS port gets nowhere.
    let plain = write_config(
        &work.path().join("plain.toml"),
        &format!("http://{listen}"),
        &token,
        &[],
    );
    assert!(
        refused(link.svol(&link.client_ns, Some(&plain), &["volume", "list"])),
        "a plaintext client was let in"
    );
    drop(server);
}

/// Unmounts the given mountpoints when dropped.
fn scopeguard(mps: Vec<PathBuf>) -> impl Drop {
    struct G(Vec<PathBuf>);
    impl Drop for G {
        fn drop(&mut self) {
            for mp in &self.0 {
                let ok = Command::new(svol_bin())
                    .arg("umount")
                    .arg(mp)
                    .status()
                    .is_ok_and(|s| s.success());
                if !ok {
                    let _ = Command::new("fusermount3").arg("-uz").arg(mp).status();
                }
            }
        }
    }
    G(mps)
}
