//! `svol doctor`: checks what a mount and the CLI need on this host, one
//! line per check, and says what to do about each that fails: the FUSE
//! device and helper, the configuration, the server (reachable, the token
//! accepted) and the clocks (leases are measured on the server's).

use std::io::{Read, Write};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Result;
use svol_sdk::ClientConfig;

struct Report {
    failed: bool,
}

impl Report {
    fn ok(&self, what: &str, detail: &str) {
        println!("ok    {what}: {detail}");
    }
    fn warn(&self, what: &str, detail: &str) {
        println!("warn  {what}: {detail}");
    }
    fn fail(&mut self, what: &str, detail: &str) {
        self.failed = true;
        println!("FAIL  {what}: {detail}");
    }
}

fn on_path(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
        .unwrap_or(false)
}

/// The server's clock from the `Date` header of its HTTP port (plain
/// HTTP only), to one second.
fn server_clock(server: &str) -> Option<SystemTime> {
    let first = server.split(',').next()?.trim();
    let addr = first.strip_prefix("http://").unwrap_or(first);
    if first.starts_with("https://") {
        return None;
    }
    let addr = addr.trim_end_matches('/');
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "HEAD /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = String::new();
    let _ = s.read_to_string(&mut head);
    let date = head.lines().find_map(|l| {
        l.strip_prefix("date: ")
            .or_else(|| l.strip_prefix("Date: "))
    })?;
    httpdate::parse_http_date(date.trim()).ok()
}

pub(crate) async fn doctor(server: &Option<String>, token: &Option<String>) -> Result<i32> {
    let mut r = Report { failed: false };
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
    {
        Ok(_) => r.ok("FUSE device", "/dev/fuse opens read-write"),
        Err(e) => r.fail(
            "FUSE device",
            &format!("/dev/fuse: {e} (load the fuse module, or give the container /dev/fuse)"),
        ),
    }
    if on_path("fusermount3") {
        r.ok("FUSE helper", "fusermount3 found");
    } else {
        r.fail(
            "FUSE helper",
            "fusermount3 is not on PATH (apt install fuse3)",
        );
    }
    let allow_other = std::fs::read_to_string("/etc/fuse.conf")
        .map(|c| c.lines().any(|l| l.trim() == "user_allow_other"))
        .unwrap_or(false);
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if root || allow_other {
        r.ok("--allow-other", "available");
    } else {
        r.warn(
            "--allow-other",
            "needs user_allow_other in /etc/fuse.conf when not root (only for sharing a mount with other users)",
        );
    }

    let cfg = match ClientConfig::resolve(server.clone(), token.clone()) {
        Ok(c) => {
            r.ok(
                "configuration",
                &format!("server {}, token from {}", c.server, c.token_source),
            );
            c
        }
        Err(e) => {
            r.fail("configuration", &e.to_string());
            return Ok(1);
        }
    };
    let started = Instant::now();
    match crate::connect(server, token).await {
        Err(e) => r.fail("server", &crate::describe(&e)),
        Ok(c) => match c.whoami().await {
            Ok(me) => {
                r.ok(
                    "server",
                    &format!("answered in {} ms", started.elapsed().as_millis()),
                );
                r.ok(
                    "token",
                    &format!(
                        "accepted: workspace {}{}",
                        me.workspace,
                        if me.admin { ", admin" } else { "" }
                    ),
                );
            }
            Err(svol_sdk::ClientError::Unauthenticated(m)) => {
                r.ok("server", "reachable");
                r.fail(
                    "token",
                    &format!("{m} (the token came from {})", cfg.token_source),
                );
            }
            Err(e) => r.fail("server", &e.to_string()),
        },
    }
    match server_clock(&cfg.server) {
        Some(theirs) => {
            let now = SystemTime::now();
            let skew = match now.duration_since(theirs) {
                Ok(d) => d,
                Err(e) => e.duration(),
            };
            // The Date header has one-second resolution.
            if skew <= Duration::from_secs(2) {
                r.ok("clock", "agrees with the server's");
            } else {
                r.warn(
                    "clock",
                    &format!(
                        "{:.0} s off the server's (leases run on the server's clock; sync with NTP)",
                        skew.as_secs_f64()
                    ),
                );
            }
        }
        None => r.warn(
            "clock",
            "could not read the server's clock (TLS or unreachable)",
        ),
    }
    Ok(if r.failed { 1 } else { 0 })
}
