//! Real servers for svol's tests: a throw-away PostgreSQL cluster (Debian's
//! `postgresql` package, `initdb` in a temporary directory) and an S3
//! server (s3s-fs). Tests never
//! mock these and never skip when one is missing: they fail, saying what to
//! install (the test command, `scripts/test.sh`, installs everything).
//!
//! Depends on no svol crate, so every crate's tests may use it.

mod postgres;
mod s3;

pub use postgres::{pg, Postgres};
pub use s3::{S3Server, S3_KEY, S3_REGION, S3_SECRET};

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
