//! `svol whoami` (which workspace and token this shell acts as, on which
//! server) and `svol status` (this host's mounts: their volume, client
//! process, session on the server, and log).

use std::path::PathBuf;

use anyhow::Result;
use svol_sdk::ClientConfig;

pub(crate) async fn whoami(
    server: &Option<String>,
    token: &Option<String>,
    json: bool,
) -> Result<i32> {
    let cfg = ClientConfig::resolve(server.clone(), token.clone())?;
    let c = crate::connect(server, token).await?;
    let me = c.whoami().await?;
    if json {
        let v = serde_json::json!({
            "workspace": me.workspace,
            "token_id": me.token_id,
            "token_label": me.token_label,
            "admin": me.admin,
            "server": cfg.server,
            "token_source": cfg.token_source,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    let token = if me.token_id.is_empty() {
        "the server's bootstrap token".to_string()
    } else {
        format!("{} (label {:?})", me.token_id, me.token_label)
    };
    println!("workspace: {}", me.workspace);
    println!(
        "token:     {token}{}",
        if me.admin { ", admin" } else { "" }
    );
    println!("server:    {}", cfg.server);
    println!("from:      {}", cfg.token_source);
    Ok(0)
}

/// A svol mount of this host, as /proc/self/mountinfo lists it.
struct HostMount {
    point: PathBuf,
    volume: String,
}

fn host_mounts() -> Vec<HostMount> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| {
            let (head, tail) = l.split_once(" - ")?;
            let point = head.split(' ').nth(4)?;
            let mut t = tail.split(' ');
            let (fstype, source) = (t.next()?, t.next()?);
            (fstype == "fuse.svol").then(|| HostMount {
                point: PathBuf::from(unescape(point)),
                volume: source.strip_prefix("svol:").unwrap_or(source).to_string(),
            })
        })
        .collect()
}

/// mountinfo writes space, tab, newline and backslash as octal escapes.
fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

pub(crate) async fn status(
    server: &Option<String>,
    token: &Option<String>,
    json: bool,
) -> Result<i32> {
    let mounts = host_mounts();
    // The server's view of this host's clients, when it can be reached.
    let sessions = match crate::connect(server, token).await {
        Ok(c) => c.list_sessions(false).await.ok(),
        Err(_) => None,
    };
    let mut rows = Vec::new();
    for m in &mounts {
        let pidf = crate::mount::pid_file(&m.point);
        let pid = std::fs::read_to_string(&pidf)
            .ok()
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty());
        let log = pidf.with_extension("log");
        let purpose = format!("mount {}", m.point.display());
        let host = svol_fuse::host_name();
        let session = sessions
            .as_ref()
            .and_then(|all| all.iter().find(|s| s.purpose == purpose && s.host == host));
        let cache = cache_use(&pidf.with_extension("cache"));
        rows.push(serde_json::json!({
            "cache": cache,
            "mountpoint": m.point.display().to_string(),
            "volume": m.volume,
            "pid": pid,
            "session": session.map(|s| s.session.clone()),
            "lease_until": session.map(|s| s.lease_until_unix),
            "log": log.exists().then(|| log.display().to_string()),
        }));
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(0);
    }
    match &sessions {
        Some(_) => {}
        None => eprintln!("(the server cannot be reached: sessions unknown)"),
    }
    if rows.is_empty() {
        eprintln!("no svol mounts on this host");
        return Ok(0);
    }
    let cell = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".into(),
        v => v.to_string(),
    };
    let table: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                cell(&r["mountpoint"]),
                cell(&r["volume"]),
                cell(&r["pid"]),
                cell(&r["session"]),
                cache_cell(&r["cache"]),
                cell(&r["log"]),
            ]
        })
        .collect();
    crate::table::print(
        &["MOUNTPOINT", "VOLUME", "PID", "SESSION", "CACHE", "LOG"],
        &table,
    );
    if rows.iter().any(|r| r["session"].is_null()) {
        eprintln!(
            "(SESSION -: no live session on the configured server; the mount may use another)"
        );
    }
    Ok(0)
}

/// A mount's caches, from the note its process left beside its pid file:
/// the memory cache's bound and, with `--cache-dir`, the directory with
/// the bytes it holds now and its bound.
fn cache_use(note: &std::path::Path) -> serde_json::Value {
    let Some(v) = std::fs::read_to_string(note)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
    else {
        return serde_json::Value::Null;
    };
    let dir = v["cache_dir"].as_str().map(PathBuf::from);
    let used = dir.as_ref().map(|d| {
        std::fs::read_dir(d)
            .map(|it| {
                it.flatten()
                    .filter_map(|e| e.metadata().ok())
                    .filter(|m| m.is_file())
                    .map(|m| m.len())
                    .sum::<u64>()
            })
            .unwrap_or(0)
    });
    serde_json::json!({
        "memory_limit_bytes": v["memory_cache"],
        "dir": dir.map(|d| d.display().to_string()),
        "dir_bytes": used,
        "dir_limit_bytes": v["cache_limit"],
    })
}

fn cache_cell(v: &serde_json::Value) -> String {
    let size = |x: &serde_json::Value| x.as_u64().map(crate::table::size);
    match (size(&v["dir_bytes"]), size(&v["dir_limit_bytes"])) {
        (Some(used), Some(limit)) => format!("{used} of {limit} on disk"),
        _ => match size(&v["memory_limit_bytes"]) {
            Some(m) => format!("memory ≤ {m}"),
            None => "-".into(),
        },
    }
}
