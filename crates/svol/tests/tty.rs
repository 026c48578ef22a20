//! Interactive use on a terminal (a pseudo-terminal from util-linux's
//! `script`, as a person at a shell would have): `volume put` draws a
//! progress bar and ends with a summary, `volume delete` asks and honours
//! the answer.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::*;

/// Runs `svol ARGS` on a pseudo-terminal, typing `input`; returns what the
/// terminal showed and the exit code.
fn on_tty(s: &Server, args: &[&str], input: &str) -> (String, Option<i32>) {
    let line = std::iter::once(svol_bin())
        .chain(args.iter().copied())
        .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("SVOL_CONFIG", s.config())
        .env_remove("SVOL_SERVER")
        .env_remove("SVOL_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (util-linux)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("type");
    let out = child.wait_with_output().expect("wait");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.code(),
    )
}

#[test]
fn a_terminal_gets_a_progress_bar_a_summary_and_a_question() {
    let s = Server::start();
    s.create_volume("tty");
    let dir = tempfile::tempdir().expect("tempdir");
    let big = dir.path().join("big.bin");
    std::fs::write(&big, random_bytes(64 << 20, 9)).expect("write");

    let (shown, code) = on_tty(
        &s,
        &[
            "volume",
            "put",
            "tty",
            big.to_str().expect("utf8"),
            "/big.bin",
        ],
        "",
    );
    assert_eq!(code, Some(0), "{shown}");
    assert!(shown.contains("MiB/s"), "no progress bar drawn: {shown:?}");
    assert!(
        shown.contains("uploaded 64.0 MiB to tty:/big.bin"),
        "{shown:?}"
    );

    let (shown, code) = on_tty(&s, &["volume", "delete", "tty"], "n\n");
    assert!(
        shown.contains("Delete volume tty and all its data? [y/N]"),
        "{shown:?}"
    );
    assert!(shown.contains("not deleted"), "{shown:?}");
    assert_eq!(code, Some(1));
    assert!(
        s.ok(&["volume", "list"]).contains("tty"),
        "deleted after a no"
    );

    let (shown, code) = on_tty(&s, &["volume", "delete", "tty"], "y\n");
    assert_eq!(code, Some(0), "{shown:?}");
    assert!(shown.contains("deleted volume tty"), "{shown:?}");
    assert!(!s.ok(&["volume", "list"]).contains("tty"));
}
