//! `svol volume du`: what the entries of a directory of a volume hold —
//! bytes (as written) and files below each, largest first.

use anyhow::Result;
use svol_sdk::Volume;

/// Bytes and regular files at `path` and below it.
pub(crate) async fn total(vol: &Volume, path: &str) -> Result<(u64, u64)> {
    let (mut bytes, mut files) = (0u64, 0u64);
    let mut todo = vec![path.to_string()];
    while let Some(dir) = todo.pop() {
        for e in vol.listdir(&dir).await? {
            if e.is_dir() {
                todo.push(format!("{}/{}", dir.trim_end_matches('/'), e.name));
            } else if e.kind() == "file" {
                bytes += e.attr.size;
                files += 1;
            }
        }
    }
    Ok((bytes, files))
}

pub(crate) async fn du(vol: &Volume, path: &str, json: bool) -> Result<i32> {
    let top = vol.stat(path).await?;
    let base = path.trim_end_matches('/');
    let mut rows: Vec<(String, u64, u64)> = Vec::new();
    if top.is_dir() {
        for e in vol.listdir(path).await? {
            let p = format!("{base}/{}", e.name);
            let (b, f) = if e.is_dir() {
                total(vol, &p).await?
            } else {
                (e.attr.size, u64::from(e.kind() == "file"))
            };
            rows.push((p, b, f));
        }
    } else {
        rows.push((path.to_string(), top.size, 1));
    }
    rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let (bytes, files) = rows.iter().fold((0, 0), |(b, f), r| (b + r.1, f + r.2));
    if json {
        let v = serde_json::json!({
            "path": path,
            "bytes": bytes,
            "files": files,
            "entries": rows.iter().map(|(p, b, f)| serde_json::json!({"path": p, "bytes": b, "files": f})).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    let mut table: Vec<[String; 3]> = rows
        .iter()
        .map(|(p, b, f)| [crate::table::size(*b), f.to_string(), p.clone()])
        .collect();
    table.push([
        crate::table::size(bytes),
        files.to_string(),
        format!("{} (total)", if base.is_empty() { "/" } else { base }),
    ]);
    crate::table::print(&["SIZE", "FILES", "PATH"], &table);
    Ok(0)
}
