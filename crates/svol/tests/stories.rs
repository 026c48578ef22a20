//! The seed's three stories, end to end: the real `svol` binary, a real
//! server process, `svol run` with FUSE mounts in private namespaces, and
//! unmodified Python programs (flufl.lock from PyPI, shelve).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{dir_bytes, eventually, Server};

/// flufl.lock from PyPI, installed once into the test scratch directory.
fn pydeps() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("pydeps");
    let have = |d: &Path| {
        Command::new("python3")
            .args(["-c", "import flufl.lock"])
            .env("PYTHONPATH", d)
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    if !have(&dir) {
        let out = Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .arg("--target")
            .arg(&dir)
            .arg("flufl.lock")
            .output()
            .expect("run pip (python3 -m pip)");
        assert!(
            out.status.success(),
            "pip install flufl.lock failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(have(&dir), "flufl.lock still not importable");
    }
    dir
}

const COUNTER: &str = r#"
import datetime, os, shelve, sys
from flufl.lock import Lock
n = int(sys.argv[1])
# some real data too, so the volume holds blocks
with open(f"/data/blob-{n}.bin", "wb") as f:
    f.write(os.urandom(3 << 20))
lock = Lock("/data/counter.lck", lifetime=datetime.timedelta(seconds=120))
for _ in range(250):
    with lock:
        with shelve.open("/data/counter") as db:
            db["n"] = db.get("n", 0) + 1
print("done", n)
"#;

/// Story 1: a shared cache of an expensive computation. Four functions at
/// once in one app, on one ephemeral volume, 250 locked increments each.
#[test]
fn shared_counter_with_flufl_lock_in_four_runs() {
    let s = Server::start();
    let py = pydeps();
    let scratch = tempfile::tempdir().expect("tempdir");
    let script = scratch.path().join("counter.py");
    std::fs::write(&script, COUNTER).expect("write script");
    let blocks_before = s.block_bytes();

    let app = s
        .ok(&["app", "create", "--name", "counter"])
        .trim()
        .to_string();
    assert!(app.starts_with("ap-"), "app create prints the id: {app:?}");
    let vol = s
        .ok(&["volume", "create", "--ephemeral", "--app", &app])
        .trim()
        .to_string();
    assert!(vol.starts_with("vo-"), "{vol:?}");

    let pythonpath = format!("PYTHONPATH={}", py.display());
    let data = format!("/data={vol}");
    let runs: Vec<_> = (0..4)
        .map(|i| {
            let n = i.to_string();
            s.spawn(&[
                "run",
                "--app",
                &app,
                "-v",
                &data,
                "-e",
                &pythonpath,
                "--",
                "python3",
                script.to_str().expect("utf8"),
                &n,
            ])
        })
        .collect();
    // Drain every run's output at once: a run must never wait on a pipe.
    let waits: Vec<_> = runs
        .into_iter()
        .map(|r| std::thread::spawn(move || r.wait_with_output().expect("wait run")))
        .collect();
    for (i, w) in waits.into_iter().enumerate() {
        let out = w.join().expect("join");
        assert!(
            out.status.success(),
            "run {i} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("done {i}")
        );
    }

    let read = s.ok(&[
        "run",
        "--app",
        &app,
        "-v",
        &data,
        "--",
        "python3",
        "-c",
        "import shelve; print(shelve.open('/data/counter', 'r')['n'])",
    ]);
    assert_eq!(read.trim(), "1000");
    assert!(!Path::new("/data").exists(), "the host never sees /data");
    assert!(s.block_bytes() >= blocks_before + 4 * (3 << 20));

    // Stopping the app deletes the volume, data and blocks.
    s.ok(&["app", "stop", &app]);
    assert_eq!(s.app_state(&app), "stopped");
    let info = s.run(&["volume", "info", &vol]);
    assert!(!info.status.success(), "volume {vol} outlived its app");
    eventually(Duration::from_secs(20), "blocks freed", || {
        s.block_bytes() == blocks_before
    });
}

const MODEL: &str = r#"
import hashlib, os, random
cache = os.environ["TRANSFORMERS_CACHE"]
path = os.path.join(cache, "models--demo--tiny", "model.safetensors")
if os.path.exists(path):
    state = "cached"
else:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    data = random.Random(42).randbytes(6 << 20)   # the "download"
    with open(path + ".part", "wb") as f:
        f.write(data)
    os.rename(path + ".part", path)
    state = "downloaded"
with open(path, "rb") as f:
    print(state, hashlib.sha256(f.read()).hexdigest())
"#;

/// Story 2: a persisted model cache. The first run downloads, a second run
/// in a new app finds the file and does not write it again.
#[test]
fn persisted_model_cache_across_apps() {
    let s = Server::start();
    let scratch = tempfile::tempdir().expect("tempdir");
    let script = scratch.path().join("infer.py");
    std::fs::write(&script, MODEL).expect("write script");
    s.create_volume("model-cache-vol");
    let args = |s: &Server| {
        s.ok(&[
            "run",
            "-v",
            "/root/cache=model-cache-vol",
            "-e",
            "TRANSFORMERS_CACHE=/root/cache",
            "--",
            "python3",
            script.to_str().expect("utf8"),
        ])
    };
    let first = args(&s);
    let (state1, sum1) = first.trim().split_once(' ').expect("state and sum");
    assert_eq!(state1, "downloaded");
    let ls = |s: &Server| -> serde_json::Value {
        serde_json::from_str(&s.ok(&[
            "volume",
            "ls",
            "model-cache-vol",
            "/models--demo--tiny",
            "--json",
        ]))
        .expect("ls json")
    };
    let before = ls(&s);
    let apps_before = s.apps().len();

    let second = args(&s);
    let (state2, sum2) = second.trim().split_once(' ').expect("state and sum");
    assert_eq!(state2, "cached", "the second run must find the model");
    assert_eq!(sum1, sum2, "both runs see the same bytes");
    assert_eq!(ls(&s), before, "the cached file was not written again");
    assert!(
        s.apps().len() > apps_before,
        "the second run had its own app"
    );

    // The bytes are the ones the first run wrote.
    let got = s
        .cmd()
        .args([
            "volume",
            "get",
            "model-cache-vol",
            "/models--demo--tiny/model.safetensors",
            "-",
        ])
        .output()
        .expect("get");
    assert!(got.status.success());
    let expect = Command::new("python3")
        .args([
            "-c",
            "import random,sys; sys.stdout.buffer.write(random.Random(42).randbytes(6 << 20))",
        ])
        .output()
        .expect("python");
    assert!(
        got.stdout == expect.stdout,
        "volume bytes differ from the download"
    );
    assert!(
        !Path::new("/root/cache").exists(),
        "the host's /root is untouched"
    );
    // Each run's own app was stopped when it ended; the volume lives on.
    let apps = s.apps();
    let runs: Vec<_> = apps.iter().filter(|a| a["kind"] == "app").collect();
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().all(|a| a["state"] == "stopped"));
    assert!(apps.iter().any(|a| a["kind"] == "volume"
        && a["name"] == "model-cache-vol"
        && a["state"] == "running"));
}

fn fill(s: &Server, vol: &str, scratch: &Path) {
    let src = scratch.join("payload");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("big.bin"), common::random_bytes(20 << 20, 5)).expect("write");
    for i in 0..200 {
        std::fs::write(
            src.join(format!("small-{i}.txt")),
            format!("file {i}\n").repeat(50),
        )
        .expect("write");
    }
    s.ok(&[
        "volume",
        "put",
        vol,
        src.to_str().expect("utf8"),
        "/payload",
    ]);
    let mut ls = s.ok(&["volume", "ls", vol, "/payload"]);
    ls.retain(|c| c == '\n');
    assert_eq!(ls.len(), 201);
}

/// Story 3: deleting, by `volume delete` and by stopping the volume's app,
/// frees everything; the name can be used again.
#[test]
fn deleting_a_volume_frees_its_space() {
    let s = Server::start();
    let scratch = tempfile::tempdir().expect("tempdir");
    // Settle the database file first (one create and delete).
    s.create_volume("warmup");
    s.ok(&["volume", "delete", "warmup", "--yes"]);
    std::thread::sleep(Duration::from_millis(500));
    let size0 = dir_bytes(&s.data());
    let blocks0 = s.block_bytes();

    // 1. svol volume delete
    s.create_volume("scratch-vol");
    fill(&s, "scratch-vol", scratch.path());
    assert!(dir_bytes(&s.data()) > size0 + (20 << 20));
    s.ok(&["volume", "delete", "scratch-vol", "--yes"]);
    assert!(!s.run(&["volume", "info", "scratch-vol"]).status.success());
    let settled = |what: &str| {
        eventually(Duration::from_secs(20), what, || {
            s.block_bytes() == blocks0 && dir_bytes(&s.data()) <= size0 + (16 << 10)
        });
    };
    settled("data dir back to its size after volume delete");

    // the name is free again, and the new volume is empty
    s.create_volume("scratch-vol");
    assert_eq!(s.ok(&["volume", "ls", "scratch-vol"]), "");

    // 2. stopping the volume's app (kind "volume")
    fill(&s, "scratch-vol", scratch.path());
    let info: serde_json::Value =
        serde_json::from_str(&s.ok(&["volume", "info", "scratch-vol", "--json"])).expect("json");
    let app = info["app"].as_str().expect("app id").to_string();
    let listed = s.apps();
    let entry = listed
        .iter()
        .find(|a| a["id"] == app.as_str())
        .expect("volume listed as an app");
    assert_eq!(entry["kind"], "volume");
    assert_eq!(entry["name"], "scratch-vol");
    s.ok(&["app", "stop", &app]);
    assert!(!s.run(&["volume", "info", "scratch-vol"]).status.success());
    settled("data dir back to its size after app stop");
    s.create_volume("scratch-vol");
    assert_eq!(s.ok(&["volume", "ls", "scratch-vol"]), "");
}
