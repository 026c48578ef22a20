//! `svol volume trash` and `svol volume undelete`: the files a volume's
//! trash keeps after they were removed (`svol volume create --trash 7d`),
//! listed, restored by path (and time) or purged early.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Result};
use svol_proto as p;
use svol_sdk::{Client, DeletedPick};

/// What `svol volume trash` was asked.
pub(crate) struct TrashArgs {
    pub name: String,
    pub path: Option<String>,
    pub since: Option<Duration>,
    pub purge: bool,
    pub yes: bool,
    pub json: bool,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// "3m ago", "in 6d 23h": a time next to now, as people read it.
fn relative(ms: i64, now: i64) -> String {
    let d = (ms - now).unsigned_abs() / 1000;
    let span = match d {
        0..=59 => format!("{d}s"),
        60..=3599 => format!("{}m", d / 60),
        3600..=86_399 => format!("{}h {}m", d / 3600, d % 3600 / 60),
        _ => format!("{}d {}h", d / 86_400, d % 86_400 / 3600),
    };
    if ms <= now {
        format!("{span} ago")
    } else {
        format!("in {span}")
    }
}

/// 1.5 MiB, 200 B.
pub(crate) fn size(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

fn kind(k: i32) -> &'static str {
    match p::FileKind::try_from(k) {
        Ok(p::FileKind::Symlink) => "symlink",
        Ok(p::FileKind::Regular) => "file",
        _ => "other",
    }
}

pub(crate) async fn trash(c: &Client, a: TrashArgs) -> Result<i32> {
    let pick = DeletedPick {
        path: a.path.clone().unwrap_or_default(),
        since: a.since,
        id: None,
    };
    if a.purge {
        let what = match &a.path {
            Some(p) => format!("Drop what volume {}'s trash keeps of {p} now?", a.name),
            None => format!("Drop everything in volume {}'s trash now?", a.name),
        };
        if !a.yes && !crate::volume_cmd::confirm(&what)? {
            eprintln!("nothing purged");
            return Ok(1);
        }
        let n = c.purge_deleted_files(&a.name, &pick).await?;
        eprintln!("purged {n} file{}", if n == 1 { "" } else { "s" });
        return Ok(0);
    }
    let files = c.list_deleted_files(&a.name, &pick).await?;
    if a.json {
        let v: Vec<_> = files
            .iter()
            .map(|f| {
                serde_json::json!({
                    "id": f.id,
                    "path": String::from_utf8_lossy(&f.path),
                    "kind": kind(f.kind),
                    "size": f.size,
                    "deleted_ms": f.deleted_unix_ms,
                    "purge_ms": f.purge_unix_ms,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    let info = c.volume_info(&a.name).await?;
    if info.file_trash_seconds == 0 && files.is_empty() {
        eprintln!(
            "volume {} keeps no removed files: turn it on with `svol volume set {} --trash 7d`",
            a.name, a.name
        );
    }
    let now = now_ms();
    let rows: Vec<[String; 5]> = files
        .iter()
        .map(|f| {
            [
                f.id.to_string(),
                relative(f.deleted_unix_ms, now),
                size(f.size),
                relative(f.purge_unix_ms, now),
                String::from_utf8_lossy(&f.path).into_owned(),
            ]
        })
        .collect();
    let head = ["ID", "REMOVED", "SIZE", "PURGED", "PATH"];
    let mut width = head.map(str::len);
    for r in &rows {
        for (w, cell) in width.iter_mut().zip(r) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: [&str; 5]| {
        format!(
            "{:<w0$}  {:<w1$}  {:>w2$}  {:<w3$}  {}",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            cells[4],
            w0 = width[0],
            w1 = width[1],
            w2 = width[2],
            w3 = width[3]
        )
    };
    println!("{}", line(head));
    for r in &rows {
        println!("{}", line([&r[0], &r[1], &r[2], &r[3], &r[4]]));
    }
    Ok(0)
}

pub(crate) async fn undelete(
    c: &Client,
    name: &str,
    path: Option<String>,
    id: Option<i64>,
    since: Option<Duration>,
    to: Option<String>,
) -> Result<i32> {
    if path.is_none() && id.is_none() {
        bail!(
            "give the PATH to bring back (a file or a directory), or --id from `svol volume trash`"
        );
    }
    let pick = DeletedPick {
        path: path.unwrap_or_default(),
        since,
        id,
    };
    let restored = c.restore_deleted_files(name, &pick, to.as_deref()).await?;
    for (from, to) in &restored {
        if from == to {
            eprintln!("restored /{to}");
        } else {
            eprintln!("restored /{from} as /{to}");
        }
    }
    eprintln!(
        "{} file{} restored",
        restored.len(),
        if restored.len() == 1 { "" } else { "s" }
    );
    Ok(0)
}
