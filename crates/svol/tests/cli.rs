//! Volume commands through the real binary: round trips, dedup, deletion
//! that frees space, and bad input.

mod common;

use std::fs;
use std::time::Duration;

use common::*;

#[test]
fn put_get_round_trip_of_a_tree() {
    let s = Server::start();
    s.create_volume("tree");
    let src = tempfile::tempdir().unwrap();
    fs::create_dir_all(src.path().join("a/b/c")).unwrap();
    fs::write(src.path().join("a/empty"), b"").unwrap();
    fs::write(src.path().join("a/small"), b"hello").unwrap();
    fs::write(src.path().join("a/b/big"), random_bytes((9 << 20) + 123, 3)).unwrap();
    fs::write(src.path().join("a/b/c/mid"), random_bytes(100_000, 4)).unwrap();
    std::os::unix::fs::symlink("small", src.path().join("a/link")).unwrap();

    s.ok(&[
        "volume",
        "put",
        "tree",
        src.path().join("a").to_str().unwrap(),
        "/data",
    ]);
    let ls = s.ok(&["volume", "ls", "tree", "/data"]);
    assert!(ls.contains("b/") && ls.contains("small"), "{ls}");
    // refuses to overwrite without --force
    let o = s.run(&[
        "volume",
        "put",
        "tree",
        src.path().join("a/small").to_str().unwrap(),
        "/data/small",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));
    fs::write(src.path().join("a/small"), b"changed").unwrap();
    s.ok(&[
        "volume",
        "put",
        "tree",
        "--force",
        src.path().join("a/small").to_str().unwrap(),
        "/data/small",
    ]);
    fs::write(src.path().join("a/small"), b"hello").unwrap();
    s.ok(&[
        "volume",
        "put",
        "tree",
        "-f",
        src.path().join("a/small").to_str().unwrap(),
        "/data/small",
    ]);

    let dst = tempfile::tempdir().unwrap();
    s.ok(&[
        "volume",
        "get",
        "tree",
        "/data",
        dst.path().to_str().unwrap(),
    ]);
    let diff = std::process::Command::new("diff")
        .arg("-r")
        .arg(src.path().join("a"))
        .arg(dst.path().join("data"))
        .output()
        .unwrap();
    assert!(
        diff.status.success(),
        "{}",
        String::from_utf8_lossy(&diff.stdout)
    );
    let out = s
        .cmd()
        .args(["volume", "get", "tree", "/data/small", "-"])
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"hello");

    // server-side copy, rm
    s.ok(&["volume", "cp", "tree", "-r", "/data", "/copy"]);
    let out = s
        .cmd()
        .args(["volume", "get", "tree", "/copy/b/c/mid", "-"])
        .output()
        .unwrap();
    assert_eq!(out.stdout, random_bytes(100_000, 4));
    assert!(
        !s.run(&["volume", "rm", "tree", "/copy"]).status.success(),
        "directory needs -r"
    );
    s.ok(&["volume", "rm", "tree", "-r", "/copy"]);
    assert!(!s.ok(&["volume", "ls", "tree"]).contains("copy"));
    let info = s.ok(&["volume", "info", "tree", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(v["files"], 4);
}

#[test]
fn identical_data_is_stored_once_and_delete_frees_it() {
    let s = Server::start();
    s.create_volume("dd");
    let src = tempfile::tempdir().unwrap();
    let f = src.path().join("blob");
    fs::write(&f, random_bytes(200 << 20, 9)).unwrap();
    let before = s.block_bytes();
    s.ok(&["volume", "put", "dd", f.to_str().unwrap(), "/one"]);
    let once = s.block_bytes();
    assert!(
        once - before >= 200 << 20,
        "blocks grew by {}",
        once - before
    );
    s.ok(&["volume", "put", "dd", f.to_str().unwrap(), "/two"]);
    let twice = s.block_bytes();
    assert_eq!(twice, once, "the second copy stored no new block");
    // through a mount too
    let m = s.mount("dd", &[]);
    fs::copy(&f, m.p("three")).unwrap();
    drop(m);
    assert_eq!(s.block_bytes(), once);

    s.ok(&["volume", "rm", "dd", "/one"]);
    s.ok(&["volume", "rm", "dd", "/two"]);
    assert!(s.block_bytes() >= 200 << 20, "still referenced by /three");
    s.ok(&["volume", "delete", "dd", "--yes"]);
    eventually(Duration::from_secs(10), "blocks freed", || {
        s.block_bytes() == before
    });
    // the name can be used again, empty
    s.create_volume("dd");
    assert_eq!(s.ok(&["volume", "ls", "dd"]).trim(), "");
}

fn fails_with(s: &Server, args: &[&str], needle: &str) {
    let o = s.run(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "svol {args:?} should fail");
    assert!(
        err.contains(needle),
        "svol {args:?}: {err:?} should mention {needle:?}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one-line error: {err}");
}

#[test]
fn bad_input_gets_a_clear_error() {
    let s = Server::start();
    s.create_volume("ok");
    for bad in ["has space", "a/b", "..", "ünï", &"x".repeat(65)] {
        fails_with(&s, &["volume", "create", bad], "invalid volume name");
    }
    fails_with(&s, &["volume", "ls", "ok", "/a/../b"], "'..'");
    fails_with(&s, &["volume", "get", "ok", "../etc/passwd", "-"], "'..'");
    fails_with(&s, &["volume", "ls", "missing"], "missing");
    fails_with(&s, &["volume", "get", "ok", "/nope", "-"], "/nope");
    fails_with(&s, &["volume", "delete", "ok"], "--yes");
    let o = s
        .cmd()
        .args(["--token", "svol_wrong", "volume", "list"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("token"));
    let o = run_with_timeout(
        s.cmd().args(["--server", "127.0.0.1:1", "volume", "list"]),
        Duration::from_secs(20),
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot reach svol server"));
    let empty = tempfile::tempdir().unwrap();
    let o = s.run(&["mount", "missing", empty.path().to_str().unwrap(), "-d"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("missing"));
    // a volume name that is valid but the file name too long
    let long = format!("/{}", "n".repeat(300));
    fails_with(&s, &["volume", "ls", "ok", &long], "255");
}

/// `svol completion bash` produces a script bash accepts and that completes
/// svol's subcommands.
#[test]
fn shell_completion_script_works_in_bash() {
    let o = std::process::Command::new(common::svol_bin())
        .args(["completion", "bash"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("svol.bash");
    std::fs::write(&script, &o.stdout).unwrap();
    // Ask bash's completion function what follows `svol ` and `svol app `.
    let probe = format!(
        "source {}; COMP_WORDS=(svol ''); COMP_CWORD=1; _svol svol '' svol; echo \"${{COMPREPLY[*]}}\"; \
         COMP_WORDS=(svol app ''); COMP_CWORD=2; _svol svol '' app; echo \"${{COMPREPLY[*]}}\"",
        script.display()
    );
    let out = std::process::Command::new("bash")
        .args(["-c", &probe])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let top = lines.next().unwrap_or("");
    for sub in [
        "server",
        "volume",
        "mount",
        "umount",
        "run",
        "app",
        "token",
        "workspace",
    ] {
        assert!(
            top.split(' ').any(|w| w == sub),
            "{sub} missing from {top:?}"
        );
    }
    let app = lines.next().unwrap_or("");
    for sub in ["create", "list", "stop"] {
        assert!(
            app.split(' ').any(|w| w == sub),
            "{sub} missing from {app:?}"
        );
    }
    assert!(
        !top.contains("__guard"),
        "internal helper must not be offered"
    );
}

/// Finding 3 of the trust issue, end to end: a volume holding
/// `evil.svol-part -> outside file` and a setuid file `evil` is fetched
/// with `svol volume get`; nothing outside the target changes and the
/// setuid bit is dropped unless asked for.
#[test]
fn get_never_writes_outside_its_target_and_drops_setuid() {
    use std::os::unix::fs::PermissionsExt;
    let s = Server::start();
    s.create_volume("evil");
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    fs::write(&victim, b"precious").unwrap();
    let src = tempfile::tempdir().unwrap();
    let d = src.path().join("d");
    fs::create_dir(&d).unwrap();
    std::os::unix::fs::symlink(&victim, d.join("evil.svol-part")).unwrap();
    fs::write(d.join("evil"), b"#!/bin/sh\necho pwned\n").unwrap();
    fs::set_permissions(d.join("evil"), fs::Permissions::from_mode(0o4755)).unwrap();
    s.ok(&["volume", "put", "evil", d.to_str().unwrap(), "/d"]);

    let target = tempfile::tempdir().unwrap();
    std::fs::write(target.path().join("already-here"), b"mine").unwrap();
    s.ok(&[
        "volume",
        "get",
        "evil",
        "/d",
        target.path().to_str().unwrap(),
    ]);
    assert_eq!(
        fs::read(&victim).unwrap(),
        b"precious",
        "outside file untouched"
    );
    let got = target.path().join("d/evil");
    assert_eq!(fs::read(&got).unwrap(), b"#!/bin/sh\necho pwned\n");
    assert_eq!(
        fs::metadata(&got).unwrap().permissions().mode() & 0o7777,
        0o755
    );
    assert_eq!(
        fs::read(target.path().join("already-here")).unwrap(),
        b"mine"
    );
    // A second get over the first is refused; forced, it replaces files
    // in place, still safely.
    fails_with(
        &s,
        &[
            "volume",
            "get",
            "evil",
            "/d",
            target.path().to_str().unwrap(),
        ],
        "--force",
    );
    s.ok(&[
        "volume",
        "get",
        "evil",
        "/d",
        target.path().to_str().unwrap(),
        "--force",
    ]);
    assert_eq!(fs::read(&victim).unwrap(), b"precious");

    let kept = tempfile::tempdir().unwrap();
    s.ok(&[
        "volume",
        "get",
        "evil",
        "--keep-special-bits",
        "/d/evil",
        kept.path().join("evil").to_str().unwrap(),
    ]);
    let m = fs::metadata(kept.path().join("evil")).unwrap();
    assert_eq!(m.permissions().mode() & 0o7777, 0o4755);
}

#[test]
fn logs_can_be_json_and_the_dashboard_url_names_the_volume() {
    let s = Server::start();
    let id = s.create_volume("browsed");
    let url = s.ok(&["volume", "dashboard", "browsed"]);
    assert_eq!(url.trim(), format!("http://{}/volumes/{id}/files", s.addr));

    // With JSON logs, a server's first line (it serves) is one JSON object.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = std::process::Command::new(svol_bin())
        .args([
            "--log-format",
            "json",
            "server",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("server");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stderr.take().expect("stderr")),
        &mut line,
    )
    .expect("a log line");
    let _ = child.kill();
    let _ = child.wait();
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
    assert_eq!(v["level"], "INFO", "{line}");
    assert!(v["fields"]["message"].is_string(), "{line}");
}

#[test]
fn get_refuses_to_overwrite_a_local_file_unless_forced() {
    let s = Server::start();
    s.create_volume("g");
    let local = tempfile::tempdir().expect("tempdir");
    let src = local.path().join("new.txt");
    std::fs::write(&src, b"from the volume").expect("write");
    s.ok(&["volume", "put", "g", src.to_str().expect("utf8"), "/f.txt"]);
    let dst = local.path().join("mine.txt");
    std::fs::write(&dst, b"precious").expect("write");
    let d = dst.to_str().expect("utf8");
    fails_with(&s, &["volume", "get", "g", "/f.txt", d], "--force");
    assert_eq!(std::fs::read(&dst).expect("read"), b"precious");
    s.ok(&["volume", "get", "g", "/f.txt", d, "--force"]);
    assert_eq!(std::fs::read(&dst).expect("read"), b"from the volume");
}

#[test]
fn apps_stop_by_name_and_stopped_ones_leave_the_list() {
    let s = Server::start();
    let id = s
        .ok(&["app", "create", "--name", "counter"])
        .trim()
        .to_string();
    let twin = s
        .ok(&["app", "create", "--name", "twin"])
        .trim()
        .to_string();
    s.ok(&["app", "create", "--name", "twin"]);
    fails_with(&s, &["app", "stop", "twin"], &twin);
    fails_with(&s, &["app", "stop", "nobody"], "no running app");
    s.ok(&["app", "stop", "counter"]);
    assert_eq!(s.app_state(&id), "stopped");
    fails_with(&s, &["app", "stop", "counter"], "already stopped");
    let listed = s.ok(&["app", "list"]);
    assert!(!listed.contains(&id), "a stopped app listed: {listed}");
    assert!(s.ok(&["app", "list", "--all"]).contains(&id));
}

#[test]
fn errors_name_things_once_say_which_token_and_suggest_close_names() {
    let s = Server::start();
    s.create_volume("model-cache");
    let o = s.run(&["volume", "ls", "model-cache", "/nope"]);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!o.status.success());
    assert_eq!(err.matches("model-cache:/nope").count(), 1, "{err}");
    let o = s.run(&["volume", "cp", "model-cache", "/nope", "/x"]);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(err.matches("model-cache:/nope").count(), 1, "{err}");

    fails_with(
        &s,
        &["volume", "info", "modle-cache"],
        "did you mean model-cache?",
    );
    let o = s.run(&["volume", "info", "weights"]);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("did you mean"));

    fails_with(
        &s,
        &["--token", "sv-wrong", "volume", "list"],
        "the token came from --token",
    );
    let o = s
        .cmd()
        .env("SVOL_TOKEN", "sv-wrong")
        .args(["volume", "list"])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("the token came from SVOL_TOKEN"), "{err}");
    // A config file with a revoked token: the file is named.
    let bad = s.dir.path().join("bad.toml");
    let cfg = std::fs::read_to_string(s.config()).expect("config");
    let cfg: String = cfg
        .lines()
        .map(|l| {
            if l.starts_with("token") {
                "token = \"sv-wrong\"".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&bad, cfg).expect("write");
    let o = cli(&bad).args(["volume", "list"]).output().expect("run");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("the token came from {}", bad.display())),
        "{err}"
    );
}

/// Every argument and option of every command says what it is in
/// `--help` (a bare `<NAME>` or `--json` helps nobody), and the client's
/// `--server`/`--token` are offered only where a server is reached as a
/// client (and refused where they would do nothing).
#[test]
fn every_argument_has_help() {
    fn walk(path: &mut Vec<String>, bare: &mut Vec<String>) {
        let out = std::process::Command::new(svol_bin())
            .args(path.iter())
            .arg("--help")
            .output()
            .expect("help");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let offline = path
            .first()
            .is_some_and(|c| ["server", "completion", "admin", "umount"].contains(&c.as_str()));
        let offers = text.contains("--server") || text.contains("--token");
        if !path.is_empty() && offline == offers {
            bare.push(format!(
                "svol {}: --server/--token {}",
                path.join(" "),
                if offers { "offered" } else { "missing" }
            ));
        }
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            let t = l.trim_start();
            let is_item = (t.starts_with('<') || t.starts_with('[') || t.starts_with('-'))
                && l.starts_with("  ");
            if !is_item {
                continue;
            }
            // The help is on the same line after two spaces, or on the
            // next, indented further.
            let (head, help) = match t.split_once("  ") {
                Some((h, rest)) => (h, rest.trim()),
                None => (t, ""),
            };
            let next_is_help = lines
                .get(i + 1)
                .is_some_and(|n| n.starts_with("          ") && !n.trim().is_empty());
            if help.is_empty() && !next_is_help {
                bare.push(format!("svol {} {}", path.join(" "), head.trim()));
            }
        }
        let commands: Vec<String> = text
            .split("Commands:")
            .nth(1)
            .map(|c| c.split("\n\n").next().unwrap_or(""))
            .unwrap_or("")
            .lines()
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .filter(|c| c != "help")
            .collect();
        for c in commands {
            path.push(c);
            walk(path, bare);
            path.pop();
        }
    }
    let mut bare = Vec::new();
    walk(&mut Vec::new(), &mut bare);
    assert!(bare.is_empty(), "no help for: {bare:#?}");

    let out = std::process::Command::new(svol_bin())
        .args(["completion", "bash", "--token", "x"])
        .output()
        .expect("completion");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--token means nothing to `svol completion`")
    );
}

/// Tables have headers and human units; `--json` keeps exact values;
/// results go to stdout and summaries to stderr (docs/cli.md).
#[test]
fn tables_have_headers_human_units_and_summaries_go_to_stderr() {
    let s = Server::start();
    s.create_volume("t");
    let local = tempfile::tempdir().expect("tempdir");
    let f = local.path().join("data.bin");
    std::fs::write(&f, random_bytes(3 << 20, 7)).expect("write");
    let put = s.run(&["volume", "put", "t", f.to_str().expect("utf8"), "/data.bin"]);
    assert!(put.status.success());
    assert!(put.stdout.is_empty(), "a summary on stdout");
    assert!(String::from_utf8_lossy(&put.stderr).contains("uploaded 3.0 MiB to t:/data.bin"));

    let list = s.ok(&["volume", "list"]);
    let mut lines = list.lines();
    let head = lines.next().expect("header");
    assert!(
        head.starts_with("NAME") && head.contains("SIZE") && head.contains("CREATED"),
        "{head}"
    );
    let row = lines.next().expect("a row");
    assert!(
        row.starts_with("t ") && row.contains("3.0 MiB") && row.contains("ago"),
        "{row}"
    );
    let json: Vec<serde_json::Value> =
        serde_json::from_str(&s.ok(&["volume", "list", "--json"])).expect("json");
    assert_eq!(json[0]["bytes"], 3 << 20, "exact in JSON");

    let ls = s.ok(&["volume", "ls", "t", "-l"]);
    assert!(
        ls.starts_with("TYPE") && ls.contains("file") && ls.contains("data.bin"),
        "{ls}"
    );
    let info = s.ok(&["volume", "info", "t"]);
    assert!(info.contains("size:      3.0 MiB in 1 files"), "{info}");
    for cmd in [
        &["app", "list"][..],
        &["token", "list"],
        &["workspace", "list"],
        &["volume", "snapshots", "t"],
    ] {
        let out = s.ok(cmd);
        let head = out.lines().next().unwrap_or("");
        assert!(
            head.chars().all(|c| c.is_ascii_uppercase() || c == ' '),
            "svol {cmd:?} has no header: {out}"
        );
    }
    let rm = s.run(&["volume", "rm", "t", "/data.bin"]);
    assert!(rm.stdout.is_empty());
    assert!(String::from_utf8_lossy(&rm.stderr).contains("removed t:/data.bin"));
}

#[test]
fn dry_runs_say_what_would_go_and_change_nothing() {
    let s = Server::start();
    s.create_volume("dry");
    let local = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(local.path().join("d")).expect("mkdir");
    std::fs::write(local.path().join("d/a"), random_bytes(2 << 20, 3)).expect("write");
    std::fs::write(local.path().join("d/b"), b"bee").expect("write");
    s.ok(&[
        "volume",
        "put",
        "dry",
        local.path().join("d").to_str().expect("utf8"),
        "/d",
    ]);

    let o = s.run(&["volume", "rm", "dry", "/d", "-r", "--dry-run"]);
    assert!(o.status.success());
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(
        said.contains("would remove dry:/d: 2 files, 2.0 MiB"),
        "{said}"
    );
    fails_with(&s, &["volume", "rm", "dry", "/d", "--dry-run"], "rm -r");
    assert_eq!(s.ok(&["volume", "ls", "dry", "/d"]).lines().count(), 2);

    let d = local.path().join("d");
    let o = s.run(&[
        "volume",
        "put",
        "dry",
        d.to_str().expect("utf8"),
        "/d",
        "--dry-run",
    ]);
    let said = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{said}");
    assert!(
        said.contains("to dry:/d (exists: refused without --force)"),
        "{said}"
    );
    let o = s.run(&[
        "volume",
        "put",
        "dry",
        d.to_str().expect("utf8"),
        "/new",
        "--dry-run",
    ]);
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && said.contains("(2.0 MiB) to dry:/new"),
        "{said}"
    );
    assert!(
        !s.ok(&["volume", "ls", "dry"]).contains("new"),
        "a dry run uploaded"
    );

    let o = s.run(&["volume", "delete", "dry", "--dry-run"]);
    assert!(o.status.success());
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(
        said.contains("would delete volume dry: 2 files") && said.contains("0 clients"),
        "{said}"
    );
    assert!(s.ok(&["volume", "list"]).contains("dry"));
}

/// `volume rename` changes the name only: a live mount carries on, the
/// snapshots follow, and the old name is gone (with a hint to the new).
#[test]
fn a_rename_keeps_live_mounts_and_takes_snapshots_along() {
    let s = Server::start();
    s.create_volume("model-cache");
    let m = s.mount("model-cache", &[]);
    std::fs::write(m.p("w"), b"before").expect("write");
    s.ok(&["volume", "snapshot", "model-cache", "--as", "s1"]);
    s.ok(&["volume", "rename", "model-cache", "model-caches"]);
    std::fs::write(m.p("w2"), b"after").expect("write through the mount after the rename");
    assert_eq!(std::fs::read(m.p("w")).expect("read"), b"before");
    let other = s.mount("model-caches", &[]);
    assert_eq!(std::fs::read(other.p("w2")).expect("read"), b"after");
    let snaps = s.ok(&["volume", "snapshots", "model-caches"]);
    assert!(snaps.contains("model-caches@s1"), "{snaps}");
    let old = s.run(&["volume", "info", "model-cache"]);
    assert_eq!(old.status.code(), Some(1));
    let err = String::from_utf8_lossy(&old.stderr).to_string();
    assert!(err.contains("did you mean model-caches?"), "{err}");
}
