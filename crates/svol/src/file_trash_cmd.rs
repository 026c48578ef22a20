//! `svol volume trash` and `svol volume undelete`: the files a volume's
//! trash keeps after they were removed (`svol volume create --trash 7d`),
//! listed, restored by path (and time) or purged early.

use std::time::Duration;

use anyhow::{bail, Result};
use svol_sdk::{Client, DeletedPick};

use crate::table::{relative_ms, size};

/// What `svol volume trash` was asked.
pub(crate) struct TrashArgs {
    pub name: String,
    pub path: Option<String>,
    pub since: Option<Duration>,
    pub purge: bool,
    pub yes: bool,
    pub json: bool,
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
                    "kind": f.kind.name(),
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
    let rows: Vec<[String; 5]> = files
        .iter()
        .map(|f| {
            [
                f.id.to_string(),
                relative_ms(f.deleted_unix_ms),
                size(f.size),
                relative_ms(f.purge_unix_ms),
                String::from_utf8_lossy(&f.path).into_owned(),
            ]
        })
        .collect();
    crate::table::print(&["ID", "REMOVED", "SIZE", "PURGED", "PATH"], &rows);
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
