//! `svol run` the way a user runs it: stdio, environment, exit status and
//! signals pass through; the host's file system is never touched; runs in
//! different apps share a volume live; a runner killed with SIGKILL leaves
//! nothing behind once its app's grace period is over.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{eventually, Server};

fn marker(tag: &str) -> String {
    format!("{tag}-{}-{}", std::process::id(), rand_suffix())
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0)
}

#[test]
fn stdio_env_and_exit_status_pass_through() {
    let s = Server::start();
    s.create_volume("v");
    let mut child = s
        .cmd()
        .args([
            "run",
            "-v",
            "/work=v",
            "-e",
            "GREETING=hi",
            "-e",
            "EMPTY=",
            "--",
            "sh",
            "-c",
            "read x; echo \"$GREETING $x [$EMPTY]\"; echo oops >&2; echo $x > /work/got; exit 42",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"there\n")
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(42));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi there []\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("oops"));
    let got = s
        .cmd()
        .args(["volume", "get", "v", "/got", "-"])
        .output()
        .expect("get");
    assert_eq!(got.stdout, b"there\n");
    // a command killed by a signal: 128 + signal, like a shell
    let o = s.run(&["run", "--", "sh", "-c", "kill -KILL $$"]);
    assert_eq!(o.status.code(), Some(137));
    // a command that does not exist: a clear error
    let o = s.run(&["run", "--", "/nonexistent/prog"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/prog"));
}

#[test]
fn the_host_sees_nothing_of_a_run() {
    let s = Server::start();
    s.create_volume("v");
    // an existing host directory with its own content, shadowed in the run
    let host = tempfile::tempdir().expect("tempdir");
    std::fs::write(host.path().join("hostfile"), b"host").expect("write");
    let hp = host.path().to_str().expect("utf8");
    // paths that do not exist on the host, one under an existing /root
    let fresh = format!("/{}/deep/er", marker("svol-test"));
    let under_root = format!("/root/{}/cache", marker("svol-test"));
    let tmp_name = marker("tmpfile");
    let script = format!(
        "set -e; test ! -e {hp}/hostfile; echo vol > {hp}/in-volume; \
         echo a > {fresh}/a; echo b > {under_root}/b; \
         test -d /root/.cargo || test -d /root/.rustup || ls /root >/dev/null; \
         echo tmp > /tmp/{tmp_name}; ls {fresh} {under_root}"
    );
    let v1 = format!("{hp}=v");
    let v2 = format!("{fresh}=v");
    let v3 = format!("{under_root}=v");
    let root_before: Vec<_> = std::fs::read_dir("/root")
        .expect("read /root")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    let out = s.ok(&[
        "run", "-v", &v1, "-v", &v2, "-v", &v3, "--", "sh", "-c", &script,
    ]);
    assert!(out.contains('a') && out.contains('b'), "{out}");
    // host: the shadowed directory kept its content and got none of the volume's
    let names: Vec<_> = std::fs::read_dir(host.path())
        .expect("read")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["hostfile"]);
    assert!(!Path::new(&fresh).exists());
    assert!(!Path::new(&fresh)
        .parent()
        .and_then(Path::parent)
        .expect("top")
        .exists());
    assert!(!Path::new(&under_root).parent().expect("parent").exists());
    let root_after: Vec<_> = std::fs::read_dir("/root")
        .expect("read /root")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(root_before.len(), root_after.len(), "/root unchanged");
    // writes outside the volumes go to the host as usual
    let tmp_file = Path::new("/tmp").join(&tmp_name);
    assert_eq!(
        std::fs::read(&tmp_file).expect("tmp file written by the run"),
        b"tmp\n"
    );
    let _ = std::fs::remove_file(&tmp_file);
    // all three paths were the same volume
    let ls = s.ok(&["volume", "ls", "v"]);
    let mut ls: Vec<_> = ls.lines().collect();
    ls.sort();
    assert_eq!(ls, ["a", "b", "in-volume"]);
    // no mount of the run is visible on the host
    let mi = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(!mi.contains(&fresh) && !mi.contains(hp));
    assert!(!Path::new("/run/svol")
        .read_dir()
        .map(|d| d
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("ns-")))
        .unwrap_or(false));
}

#[test]
fn bad_run_arguments_are_refused_clearly() {
    let s = Server::start();
    s.create_volume("v");
    for (args, want) in [
        (vec!["run", "-v", "relative=v", "--", "true"], "absolute"),
        (vec!["run", "-v", "/a/../b=v", "--", "true"], ".."),
        (vec!["run", "-v", "/=v", "--", "true"], "/"),
        (vec!["run", "-v", "/x=bad/name", "--", "true"], "bad/name"),
        (vec!["run", "-v", "/x=missing", "--", "true"], "missing"),
        (
            vec!["run", "-v", "/x=v", "-v", "/x/y=v", "--", "true"],
            "nested",
        ),
        (vec!["run", "-e", "NOEQUALS", "--", "true"], "NOEQUALS"),
        (
            vec!["run", "--app", "ap-0000000000000000", "--", "true"],
            "ap-0000000000000000",
        ),
        (
            vec!["run", "--app", "not-an-app", "--", "true"],
            "not-an-app",
        ),
    ] {
        let o = s.run(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(
            err.contains(want),
            "{args:?}: error {err:?} does not name {want:?}"
        );
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    assert!(!Path::new("/x").exists());
}

/// Each volume of a run is its own mount with its own session: files
/// written, renamed, locked and read on both, after both were mounted (the
/// first mount's calls once went with the second's session and the server
/// refused them as another volume's).
#[test]
fn a_run_with_two_volumes_uses_both() {
    let s = Server::start();
    s.create_volume("first");
    s.create_volume("second");
    let out = s.ok(&[
        "run",
        "-v",
        "/a=first",
        "-v",
        "/b=second",
        "--",
        "sh",
        "-c",
        "set -e; mkdir /a/d /b/d; echo one > /a/d/f.tmp; mv /a/d/f.tmp /a/d/f; \
         echo two > /b/d/g; flock /a/d/f cat /a/d/f; flock /b/d/g cat /b/d/g; \
         stat -c %s /a/d/f /b/d/g; ls /a/d /b/d",
    ]);
    assert_eq!(out, "one\ntwo\n4\n4\n/a/d:\nf\n\n/b/d:\ng\n");
    let get = |vol: &str, path: &str| {
        let o = s
            .cmd()
            .args(["volume", "get", vol, path, "-"])
            .output()
            .expect("get");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert_eq!(get("first", "/d/f"), "one\n");
    assert_eq!(get("second", "/d/g"), "two\n");
    assert_eq!(s.ok(&["volume", "ls", "first", "/d"]).trim(), "f");
    assert_eq!(s.ok(&["volume", "ls", "second", "/d"]).trim(), "g");
}
/// (pong publishes its answer with a rename, as files meant to be seen
/// whole are published: ping waits for the name, and a name seen before
/// the writer closed would be an empty file under close-to-open.)
#[test]
fn runs_in_different_apps_share_a_volume_live() {
    let s = Server::start();
    s.create_volume("shared");
    let ping = s.spawn(&[
        "run", "-v", "/v=shared", "--", "sh", "-c",
        "echo ping > /v/ping; i=0; while [ ! -e /v/pong ]; do sleep 0.02; i=$((i+1)); [ $i -gt 1500 ] && exit 9; done; cat /v/pong",
    ]);
    let app = s.ok(&["app", "create"]).trim().to_string();
    let pong = s.spawn(&[
        "run", "--app", &app, "-v", "/v=shared", "--", "sh", "-c",
        "i=0; while [ ! -e /v/ping ]; do sleep 0.02; i=$((i+1)); [ $i -gt 1500 ] && exit 9; done; echo pong > /v/pong.tmp && mv /v/pong.tmp /v/pong",
    ]);
    let a = ping.wait_with_output().expect("ping");
    let b = pong.wait_with_output().expect("pong");
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert_eq!(String::from_utf8_lossy(&a.stdout), "pong\n");
    // --app runs leave their app running; a run's own app is stopped
    assert_eq!(s.app_state(&app), "running");
}

#[test]
fn sigterm_and_sigint_reach_the_command_and_the_run_cleans_up() {
    let s = Server::start();
    for (sig, code) in [(libc::SIGTERM, 7), (libc::SIGINT, 8)] {
        let mut child = s
            .cmd()
            .args([
                "run",
                "-v",
                "/scratch",
                "--",
                "sh",
                "-c",
                "trap 'exit 7' TERM; trap 'exit 8' INT; echo ready; while :; do sleep 0.05; done",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().expect("stdout"))
            .read_line(&mut line)
            .expect("read");
        assert_eq!(line, "ready\n");
        let apps = s.apps();
        let running: Vec<_> = apps
            .iter()
            .filter(|a| a["state"] == "running" && a["kind"] == "app")
            .collect();
        assert_eq!(running.len(), 1, "the run's own app");
        let vols = running[0]["volumes"].as_array().expect("volumes").len();
        assert_eq!(vols, 1, "the run's ephemeral /scratch volume");
        let id = running[0]["id"].as_str().expect("id").to_string();
        let st = std::process::Command::new("kill")
            .args([format!("-{sig}"), child.id().to_string()])
            .status()
            .expect("kill");
        assert!(st.success());
        let out = child.wait_with_output().expect("wait");
        assert_eq!(
            out.status.code(),
            Some(code),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(s.app_state(&id), "stopped", "the run's own app is stopped");
    }
}

#[test]
fn a_killed_runner_leaves_nothing_after_the_grace_period() {
    let s = Server::start_with(&["--lease", "2s", "--app-grace", "3s"]);
    let blocks0 = s.block_bytes();
    let app = s
        .ok(&["app", "create", "--name", "doomed"])
        .trim()
        .to_string();
    let vol = s
        .ok(&["volume", "create", "--ephemeral", "--app", &app])
        .trim()
        .to_string();
    let tag = format!("{}.{}", 600, rand_suffix() % 1000);
    let data = format!("/d={vol}");
    let script = format!("head -c 8388608 /dev/urandom > /d/f && touch /d/ready && sleep {tag}");
    let mut runner = s.spawn(&["run", "--app", &app, "-v", &data, "--", "sh", "-c", &script]);
    eventually(Duration::from_secs(30), "run wrote its data", || {
        s.ok(&["volume", "ls", &vol]).contains("ready")
    });
    assert!(s.block_bytes() >= blocks0 + (8 << 20));
    // While the runner lives, its lease keeps the app past the grace period.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(s.app_state(&app), "running");

    runner.kill().expect("SIGKILL the runner");
    let _ = runner.wait();
    // The command dies with its runner.
    let survivors = || -> Vec<String> {
        std::fs::read_dir("/proc")
            .expect("proc")
            .flatten()
            .filter_map(|p| {
                let c = std::fs::read(p.path().join("cmdline")).ok()?;
                let c = String::from_utf8_lossy(&c).replace('\0', " ");
                c.contains(&tag)
                    .then(|| format!("{}: {c}", p.file_name().to_string_lossy()))
            })
            .collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !survivors().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the command outlived its runner: {:?}",
            survivors()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        s.app_state(&app),
        "running",
        "not before the lease and grace ran out"
    );
    let took = eventually(
        Duration::from_secs(30),
        "app stopped after lease + grace",
        || s.app_state(&app) == "stopped",
    );
    assert!(
        took >= Duration::from_secs(2),
        "stopped too early: {took:?}"
    );
    assert!(!s.run(&["volume", "info", &vol]).status.success());
    eventually(Duration::from_secs(20), "blocks freed", || {
        s.block_bytes() == blocks0
    });
}
