//! A cluster for the tests: `svol server`s sharing one PostgreSQL database
//! (a throw-away cluster) and one S3 bucket (s3s-fs), each with its own
//! data directory, as separate hosts would have.

use std::path::PathBuf;

use super::{cli, ok, svol_bin, MountDir, Restartable};

pub struct Cluster {
    pub servers: Vec<Restartable>,
    pub meta: String,
    pub s3: svol_testkit::S3Server,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// `n` servers on a fresh database and bucket, with extra server flags.
    pub fn start(n: usize, extra: &[&str]) -> Self {
        assert!(
            std::path::Path::new("/dev/fuse").exists(),
            "/dev/fuse is missing: FUSE tests cannot run"
        );
        let meta = svol_testkit::pg().database();
        let s3 = svol_testkit::S3Server::start(&["blocks"]);
        let dir = tempfile::tempdir().expect("tempdir");
        let mut flags = vec!["--meta", &meta, "--blocks", "s3://blocks/cluster"];
        flags.extend_from_slice(extra);
        let servers = (0..n)
            .map(|i| {
                Restartable::with_env(
                    dir.path().join(format!("server{i}")),
                    dir.path().join(format!("server{i}.log")),
                    &flags,
                    s3.env(),
                )
            })
            .collect();
        Self {
            servers,
            meta,
            s3,
            _dir: dir,
        }
    }

    /// Every server's address, server `first`'s first: what a client of
    /// that server is given, to fail over to the others.
    pub fn addresses(&self, first: usize) -> String {
        let n = self.servers.len();
        (0..n)
            .map(|i| self.servers[(first + i) % n].url())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A client config file listing every server, server `i` first, with
    /// server `i`'s admin token (which works on all of them).
    pub fn config(&self, i: usize) -> PathBuf {
        let own = std::fs::read_to_string(self.servers[i].config()).expect("client.toml");
        let token = own
            .lines()
            .find_map(|l| l.strip_prefix("token = "))
            .expect("a token in client.toml")
            .trim();
        let list: Vec<String> = self
            .addresses(i)
            .split(',')
            .map(|a| format!("{a:?}"))
            .collect();
        let path = self._dir.path().join(format!("client-{i}.toml"));
        std::fs::write(
            &path,
            format!("servers = [{}]\ntoken = {token}\n", list.join(", ")),
        )
        .expect("write client config");
        path
    }

    /// The CLI through server `i`, knowing the others.
    pub fn cli(&self, i: usize) -> std::process::Command {
        cli(&self.config(i))
    }

    pub fn ok(&self, i: usize, args: &[&str]) -> String {
        ok(self.cli(i), args)
    }

    pub fn create_volume(&self, name: &str) -> String {
        self.ok(0, &["volume", "create", name]).trim().to_string()
    }

    /// A mount of `vol` through server `i` that knows the others.
    pub fn mount(&self, i: usize, vol: &str) -> MountDir {
        let dir = tempfile::tempdir().expect("tempdir");
        self.ok(i, &["mount", vol, dir.path().to_str().expect("utf8"), "-d"]);
        MountDir {
            dir,
            bin: svol_bin(),
        }
    }

    /// Where the bucket's objects are on disk.
    pub fn bucket(&self) -> PathBuf {
        self.s3.bucket_dir("blocks").join("cluster")
    }

    /// Every server's log, for a failing test's message.
    pub fn logs(&self) -> String {
        self.servers
            .iter()
            .enumerate()
            .map(|(i, s)| format!("--- server {i}\n{}", s.log()))
            .collect()
    }
}
