//! A real S3 server for the tests: s3s-fs (the S3 API of the s3s crate
//! over a local directory; it checks request signatures), on a free
//! loopback port, stopped when the guard drops. Chosen over Garage for the
//! suite because it builds in minutes and starts in milliseconds.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const S3_KEY: &str = "svol-test-access";
pub const S3_SECRET: &str = "svol-test-secret-key";
pub const S3_REGION: &str = "us-east-1";

pub struct S3Server {
    child: Child,
    dir: tempfile::TempDir,
    pub port: u16,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where `scripts/test.sh` installs s3s-fs (or `SVOL_S3S_FS`, or PATH).
fn s3s_fs() -> PathBuf {
    if let Ok(p) = std::env::var("SVOL_S3S_FS") {
        return p.into();
    }
    let cached = std::path::Path::new("/var/cache/svol-tools/bin/s3s-fs");
    if cached.exists() {
        return cached.into();
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("s3s-fs"))
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "s3s-fs (the S3 server these tests need) is not installed: \
                 run scripts/test.sh, which installs it"
            )
        })
}

impl S3Server {
    /// A server holding the (empty) buckets `buckets`.
    pub fn start(buckets: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        for b in buckets {
            std::fs::create_dir(dir.path().join(b)).expect("bucket");
        }
        let port = crate::free_port();
        let child = Command::new(s3s_fs())
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", S3_KEY, "--secret-key", S3_SECRET])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start s3s-fs");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "s3s-fs did not listen"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, dir, port }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Where bucket `b`'s objects are on disk.
    pub fn bucket_dir(&self, b: &str) -> PathBuf {
        self.dir.path().join(b)
    }

    /// The environment a client of this server needs (object_store's
    /// conventions), as `svol server --blocks s3://…` reads it.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_REGION", S3_REGION.into()),
            ("AWS_ACCESS_KEY_ID", S3_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", S3_SECRET.into()),
        ]
    }
}
