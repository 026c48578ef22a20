//! `svol volume …`: Modal-style volume commands, all through the server.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use svol_sdk::{check_remote_path, Progress, Volume};

use crate::table::{ago, size};

#[derive(Subcommand)]
pub(crate) enum VolumeCmd {
    /// Create a volume and print its id: persisted and named, or with
    /// --ephemeral --app APP_ID one that is deleted when the app stops
    Create {
        /// The volume's name
        #[arg(required_unless_present = "ephemeral")]
        name: Option<String>,
        /// Make an unnamed volume owned by --app
        #[arg(long, requires = "app", conflicts_with = "name")]
        ephemeral: bool,
        /// The app that owns the ephemeral volume
        #[arg(long)]
        app: Option<String>,
        /// Keep removed files in the volume's trash this long (90m, 24h,
        /// 7d), restorable with `svol volume undelete`
        #[arg(long, value_name = "RETENTION", value_parser = crate::parse_retention)]
        trash: Option<Duration>,
    },
    /// Name an ephemeral volume and make it outlive its app
    Persist {
        /// The ephemeral volume's id (vo-…)
        volume_id: String,
        /// The name it takes
        name: String,
    },
    /// List volumes
    List {
        /// Print JSON (exact values) instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Show a volume's size, file count and creation time
    Info {
        /// The volume (name or id)
        name: String,
        /// Print JSON (exact values) instead of a table
        #[arg(long)]
        json: bool,
    },
    /// List a directory of a volume
    Ls {
        /// The volume (name or id)
        name: String,
        /// A directory in the volume (default: its root)
        path: Option<String>,
        /// A table with each entry's type, size and modification time
        #[arg(short, long)]
        long: bool,
        /// Print JSON (exact values) instead of a table
        #[arg(long)]
        json: bool,
    },
    /// What a directory's entries hold: bytes and files below each,
    /// largest first, and the total
    Du {
        /// The volume (name or id)
        name: String,
        /// A directory (or file) in the volume (default: its root)
        path: Option<String>,
        /// Print JSON (exact values) instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Fetch the blocks of files (or of everything below directories) into
    /// a cache directory, for a mount with --cache-dir on it to read
    /// locally
    Warmup {
        /// The volume (name or id)
        name: String,
        /// Files or directories in the volume
        #[arg(required = true)]
        paths: Vec<String>,
        /// The cache directory the mounts will use
        #[arg(long)]
        cache_dir: PathBuf,
        /// Most the cache directory may hold for this volume
        #[arg(long, default_value = "10G", value_parser = crate::parse_size)]
        cache_size: u64,
    },
    /// Upload files or directories: put NAME LOCAL... [REMOTE]
    Put {
        /// The volume (name or id)
        name: String,
        /// Local files or directories, then (if more than one, or to
        /// rename) the path in the volume to put them at
        #[arg(required = true, num_args = 1.., value_name = "PATH")]
        paths: Vec<String>,
        /// Overwrite existing files
        #[arg(short, long)]
        force: bool,
        /// Say what would be uploaded where, and upload nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Download a file or directory (LOCAL `-` writes a file to stdout)
    Get {
        /// The volume (name or id)
        name: String,
        /// The file or directory in the volume
        remote: String,
        /// Where to write it (default: the current directory; `-`: stdout)
        local: Option<String>,
        /// Keep set-user-id, set-group-id and sticky bits (dropped by default)
        #[arg(long)]
        keep_special_bits: bool,
        /// Overwrite a local file or directory of the same name
        #[arg(short, long)]
        force: bool,
    },
    /// Remove a file (or a directory with -r)
    Rm {
        /// The volume (name or id)
        name: String,
        /// A path in the volume
        path: String,
        /// Act on a directory and everything below it
        #[arg(short, long)]
        recursive: bool,
        /// Say what would be removed, and remove nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Copy within a volume on the server (no data is copied)
    Cp {
        /// The volume (name or id)
        name: String,
        /// Paths in the volume: sources, then the destination
        #[arg(required = true, num_args = 2.., value_name = "PATH")]
        paths: Vec<String>,
        /// Act on a directory and everything below it
        #[arg(short, long)]
        recursive: bool,
    },
    /// Rename a volume
    Rename {
        /// The volume's current name
        old: String,
        /// Its new name
        new: String,
    },
    /// Print the address of the volume's page in the server's dashboard
    Dashboard {
        /// The volume (name or id)
        name: String,
    },
    /// Take a read-only snapshot of a volume, named NAME@SNAPSHOT (only
    /// metadata is copied; blocks are shared). Mount it with
    /// `svol mount NAME@SNAPSHOT DIR`
    Snapshot {
        /// The volume (name or id)
        name: String,
        /// The snapshot's name (default: the UTC time, 20261204-073000)
        #[arg(long = "as", value_name = "SNAPSHOT")]
        snapshot: Option<String>,
    },
    /// List a volume's snapshots
    Snapshots {
        /// The volume (name or id)
        name: String,
        /// Print JSON (exact values) instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Put a snapshot's files in place of the volume's (the volume must not
    /// be mounted; what was written since the snapshot is lost)
    Restore {
        /// The volume (name or id)
        name: String,
        /// The snapshot's name (the part after @)
        snapshot: String,
        /// Do not ask for confirmation
        #[arg(short, long)]
        yes: bool,
    },
    /// Set a volume's quotas: bytes after dedup (10G, 500M, …) and inodes
    /// (files, directories and links; 1M = a million); 0 removes a limit.
    /// Writers past one get EDQUOT; `df` on a mount shows it
    Set {
        /// The volume (name or id)
        name: String,
        /// Bytes after dedup (10G, 500M, …; 0: no limit)
        #[arg(long, value_parser = crate::parse_quota_bytes)]
        max_bytes: Option<u64>,
        /// Inodes: files, directories, links (1M = a million; 0: no limit)
        #[arg(long, value_parser = crate::parse_count)]
        max_files: Option<u64>,
        /// Keep removed files in the volume's trash this long (0: do not)
        #[arg(long, value_name = "RETENTION", value_parser = crate::parse_retention)]
        trash: Option<Duration>,
    },
    /// List the removed files a volume's trash keeps (at PATH or below it),
    /// newest first, or with --purge drop them now
    Trash {
        /// The volume (name or id)
        name: String,
        /// Only files that were at this path or below it
        path: Option<String>,
        /// Only files removed within this long (90m, 2h, 7d)
        #[arg(long, value_parser = crate::parse_retention)]
        since: Option<Duration>,
        /// Drop them from the trash now and free their space
        #[arg(long)]
        purge: bool,
        /// Do not ask for confirmation
        #[arg(short, long, requires = "purge")]
        yes: bool,
        /// Print JSON (exact values) instead of a table
        #[arg(long, conflicts_with = "purge")]
        json: bool,
    },
    /// Bring removed files back from a volume's trash: PATH (a file, or
    /// every file removed below a directory), each as of its last removal,
    /// to where it was or under --as
    Undelete {
        /// The volume (name or id)
        name: String,
        /// The file, or the directory whose removed files to bring back
        #[arg(required_unless_present = "id")]
        path: Option<String>,
        /// One entry of `svol volume trash` (an older version of a path)
        #[arg(long, conflicts_with = "path")]
        id: Option<i64>,
        /// Only files removed within this long (undo the last hour: 1h)
        #[arg(long, value_parser = crate::parse_retention)]
        since: Option<Duration>,
        /// Restore to this path instead (PATH is replaced by it)
        #[arg(long = "as", value_name = "PATH")]
        to: Option<String>,
    },
    /// Make a new, writable volume from a volume or a snapshot (NAME@SNAPSHOT)
    Clone {
        /// The volume or snapshot (NAME@SNAPSHOT) to copy
        source: String,
        /// The new volume's name
        name: String,
    },
    /// Delete a volume (with its snapshots) and all its data, or one
    /// snapshot (NAME@SNAPSHOT)
    Delete {
        /// The volume (name or id)
        name: String,
        /// Do not ask for confirmation
        #[arg(short, long)]
        yes: bool,
        /// Delete even while clients have it mounted (their calls then fail)
        #[arg(long)]
        force: bool,
        /// Say what would be deleted, and delete nothing
        #[arg(long)]
        dry_run: bool,
    },
}

/// The volume page of the dashboard the (first) configured server serves
/// on its own port.
fn dashboard_url(server: &str, id: &str) -> String {
    let first = server.split(',').next().unwrap_or(server).trim();
    let base = if first.contains("://") {
        first.trim_end_matches('/').to_string()
    } else {
        format!("http://{first}")
    };
    format!("{base}/volumes/{id}/files")
}

pub(crate) async fn run(
    cmd: VolumeCmd,
    server: &Option<String>,
    token: &Option<String>,
) -> Result<i32> {
    let c = crate::connect(server, token).await?;
    match cmd {
        VolumeCmd::Create {
            name,
            ephemeral,
            app,
            trash,
        } => {
            let mut v = match (ephemeral, app, name) {
                (true, Some(app), _) => c.create_ephemeral_volume(&app).await?,
                (false, None, Some(name)) => c.create_volume(&name).await?,
                _ => bail!("give a NAME, or --ephemeral --app APP_ID"),
            };
            if let Some(keep) = trash {
                v = c.set_file_trash(&v.id, keep).await?;
            }
            println!("{}", v.id);
        }
        VolumeCmd::Dashboard { name } => {
            let v = c.volume_info(&name).await?;
            let cfg = svol_sdk::ClientConfig::resolve(server.clone(), token.clone())?;
            println!("{}", dashboard_url(&cfg.server, &v.id));
        }
        VolumeCmd::Persist { volume_id, name } => {
            let v = c.persist_volume(&volume_id, &name).await?;
            println!("{}", v.id);
        }
        VolumeCmd::List { json } => {
            let vs = c.list_volumes().await?;
            if json {
                let v: Vec<_> = vs.iter().map(info_json).collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let rows: Vec<[String; 7]> = vs
                    .iter()
                    .map(|v| {
                        [
                            v.name.clone(),
                            v.id.clone(),
                            if v.ephemeral {
                                "ephemeral"
                            } else {
                                "persisted"
                            }
                            .into(),
                            size(v.bytes),
                            size(v.stored_bytes),
                            v.files.to_string(),
                            ago(v.created_unix),
                        ]
                    })
                    .collect();
                crate::table::print(
                    &["NAME", "ID", "KIND", "SIZE", "STORED", "FILES", "CREATED"],
                    &rows,
                );
            }
        }
        VolumeCmd::Info { name, json } => {
            let v = c.volume_info(&name).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&info_json(&v))?);
            } else {
                let kind = if v.ephemeral {
                    "ephemeral (deleted with its app)"
                } else {
                    "persisted"
                };
                let dedup = if v.stored_bytes > 0 && v.bytes > v.stored_bytes {
                    format!(" ({:.1}x dedup)", v.bytes as f64 / v.stored_bytes as f64)
                } else {
                    String::new()
                };
                println!(
                    "name:      {}\nid:        {}\napp:       {}",
                    v.name, v.id, v.app
                );
                println!("kind:      {kind}\ncreated:   {}", ago(v.created_unix));
                println!("size:      {} in {} files", size(v.bytes), v.files);
                println!("stored:    {}{dedup}", size(v.stored_bytes));
                println!(
                    "inodes:    {}\nmax bytes: {}\nmax files: {}\ntrash:     {}",
                    v.inodes,
                    if v.max_bytes == 0 {
                        "none".into()
                    } else {
                        size(v.max_bytes)
                    },
                    limit(v.max_files),
                    retention(v.file_trash_seconds)
                );
                if v.trash_files > 0 {
                    println!(
                        "in trash:  {} files, {}",
                        v.trash_files,
                        size(v.trash_bytes)
                    );
                }
                if !v.snapshot_of.is_empty() {
                    println!("snapshot of: {} (read-only)", v.snapshot_of);
                }
            }
        }
        VolumeCmd::Ls {
            name,
            path,
            long,
            json,
        } => {
            let vol = c.volume(&name).await?;
            let entries = vol.listdir(path.as_deref().unwrap_or("/")).await?;
            if json {
                let v: Vec<_> = entries
                    .iter()
                    .map(|e| serde_json::json!({"name": e.name, "kind": e.kind(), "size": e.attr.size, "mtime": e.attr.mtime.sec}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else if long {
                let rows: Vec<[String; 4]> = entries
                    .iter()
                    .map(|e| {
                        [
                            e.kind().to_string(),
                            if e.is_dir() {
                                "-".into()
                            } else {
                                size(e.attr.size)
                            },
                            ago(e.attr.mtime.sec),
                            format!("{}{}", e.name, if e.is_dir() { "/" } else { "" }),
                        ]
                    })
                    .collect();
                crate::table::print(&["TYPE", "SIZE", "MODIFIED", "NAME"], &rows);
            } else {
                for e in entries {
                    println!("{}{}", e.name, if e.is_dir() { "/" } else { "" });
                }
            }
        }
        VolumeCmd::Warmup {
            name,
            paths,
            cache_dir,
            cache_size,
        } => {
            let vol = c.volume(&name).await?;
            return crate::warmup_cmd::warmup(&vol, &paths, &cache_dir, cache_size).await;
        }
        VolumeCmd::Du { name, path, json } => {
            let vol = c.volume(&name).await?;
            return crate::du_cmd::du(&vol, path.as_deref().unwrap_or("/"), json).await;
        }
        VolumeCmd::Put {
            name,
            mut paths,
            force,
            dry_run,
        } => {
            let vol = c.volume(&name).await?;
            let remote = if paths.len() > 1 {
                paths.pop().unwrap_or_default()
            } else {
                "/".into()
            };
            check_remote_path(&remote)?;
            if dry_run {
                return put_dry_run(&vol, &paths, &remote, force).await;
            }
            put(&vol, &paths, &remote, force).await?;
        }
        VolumeCmd::Get {
            name,
            remote,
            local,
            keep_special_bits,
            force,
        } => {
            let vol = c.volume(&name).await?;
            let opts = svol_sdk::DownloadOptions { keep_special_bits };
            get(&vol, &remote, local.as_deref().unwrap_or("."), opts, force).await?;
        }
        VolumeCmd::Rm {
            name,
            path,
            recursive,
            dry_run,
        } => {
            let vol = c.volume(&name).await?;
            if dry_run {
                let a = vol.stat(&path).await?;
                if a.is_dir() && !recursive {
                    bail!("{name}:{path} is a directory; rm -r removes it with what it holds");
                }
                let (bytes, files) = crate::du_cmd::total(&vol, &path).await?;
                eprintln!(
                    "would remove {name}:{path}: {files} files, {} (nothing removed)",
                    size(bytes)
                );
                return Ok(0);
            }
            vol.remove_file(&path, recursive).await?;
            let kept = match vol.info().file_trash_seconds {
                0 => String::new(),
                s => format!(
                    " (kept in its trash for {}: `svol volume undelete`)",
                    retention(s)
                ),
            };
            eprintln!("removed {name}:{path}{kept}");
        }
        VolumeCmd::Cp {
            name,
            mut paths,
            recursive,
        } => {
            let vol = c.volume(&name).await?;
            let dst = paths.pop().unwrap_or_default();
            let srcs: Vec<&str> = paths.iter().map(String::as_str).collect();
            vol.copy_files(&srcs, &dst, recursive).await?;
        }
        VolumeCmd::Rename { old, new } => {
            c.rename_volume(&old, &new).await?;
        }
        VolumeCmd::Delete {
            name,
            yes,
            force,
            dry_run,
        } => {
            let v = c.volume_info(&name).await?;
            if dry_run {
                let snaps = c.list_snapshots(&name).await.map(|s| s.len()).unwrap_or(0);
                let users = c
                    .list_sessions(false)
                    .await
                    .map(|l| l.into_iter().filter(|s| s.volume == v.id).count())
                    .unwrap_or(0);
                eprintln!(
                    "would delete volume {}: {} files, {} ({} stored), {snaps} snapshot{}; \
                     {users} client{} have it mounted (nothing deleted)",
                    v.name,
                    v.files,
                    size(v.bytes),
                    size(v.stored_bytes),
                    if snaps == 1 { "" } else { "s" },
                    if users == 1 { "" } else { "s" },
                );
                return Ok(0);
            }
            if !yes && !confirm(&format!("Delete volume {name} and all its data?"))? {
                eprintln!("not deleted");
                return Ok(1);
            }
            c.delete_volume(&name, force).await?;
            let kept = match c.list_trash().await.map(|t| t.retention_seconds) {
                Ok(0) | Err(_) => String::new(),
                Ok(s) => format!(
                    "; it stays in the trash for {} (`svol trash list`, `svol trash restore`)",
                    retention(s)
                ),
            };
            eprintln!("deleted volume {name}{kept}");
        }
        VolumeCmd::Snapshot { name, snapshot } => {
            let snap = snapshot.unwrap_or_else(utc_stamp);
            let v = c.snapshot_volume(&name, &snap).await?;
            println!("{}", v.name);
        }
        VolumeCmd::Snapshots { name, json } => {
            let snaps = c.list_snapshots(&name).await?;
            if json {
                let v: Vec<_> = snaps.iter().map(info_json).collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let rows: Vec<[String; 5]> = snaps
                    .iter()
                    .map(|s| {
                        [
                            s.name.clone(),
                            s.id.clone(),
                            size(s.bytes),
                            s.files.to_string(),
                            ago(s.created_unix),
                        ]
                    })
                    .collect();
                crate::table::print(&["NAME", "ID", "SIZE", "FILES", "TAKEN"], &rows);
            }
        }
        VolumeCmd::Restore {
            name,
            snapshot,
            yes,
        } => {
            let question = format!(
                "Replace every file of volume {name} with snapshot {name}@{snapshot}? \
                 What was written since is lost."
            );
            if !yes && !confirm(&question)? {
                eprintln!("not restored");
                return Ok(1);
            }
            c.restore_volume(&name, &snapshot).await?;
        }
        VolumeCmd::Set {
            name,
            max_bytes,
            max_files,
            trash,
        } => {
            if max_bytes.is_none() && max_files.is_none() && trash.is_none() {
                bail!("nothing to set: give --max-bytes, --max-files or --trash");
            }
            let mut v = c.volume_info(&name).await?;
            if max_bytes.is_some() || max_files.is_some() {
                v = c.set_volume_quota(&name, max_bytes, max_files).await?;
            }
            if let Some(keep) = trash {
                v = c.set_file_trash(&name, keep).await?;
            }
            eprintln!(
                "volume {}: max bytes {}, max files {}, trash {}",
                v.name,
                limit(v.max_bytes),
                limit(v.max_files),
                retention(v.file_trash_seconds)
            );
        }
        VolumeCmd::Trash {
            name,
            path,
            since,
            purge,
            yes,
            json,
        } => {
            let a = crate::file_trash_cmd::TrashArgs {
                name,
                path,
                since,
                purge,
                yes,
                json,
            };
            return crate::file_trash_cmd::trash(&c, a).await;
        }
        VolumeCmd::Undelete {
            name,
            path,
            id,
            since,
            to,
        } => {
            return crate::file_trash_cmd::undelete(&c, &name, path, id, since, to).await;
        }
        VolumeCmd::Clone { source, name } => {
            let v = c.clone_volume(&source, &name).await?;
            println!("{}", v.id);
        }
    }
    Ok(0)
}

fn info_json(v: &svol_sdk::VolumeInfo) -> serde_json::Value {
    serde_json::json!({"id": v.id, "name": v.name, "app": v.app, "ephemeral": v.ephemeral, "bytes": v.bytes, "stored_bytes": v.stored_bytes, "files": v.files, "created": v.created_unix, "snapshot_of": v.snapshot_of, "inodes": v.inodes, "max_bytes": v.max_bytes, "max_files": v.max_files, "file_trash_seconds": v.file_trash_seconds, "trash_files": v.trash_files, "trash_bytes": v.trash_bytes})
}

/// A file trash retention as people read it.
fn retention(secs: u64) -> String {
    match secs {
        0 => "off (removed files are gone at once)".into(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// A quota as people read it (0: none).
pub(crate) fn limit(v: u64) -> String {
    if v == 0 {
        "none".into()
    } else {
        v.to_string()
    }
}

/// Asks `question` on the terminal; `y` or `yes` is yes. Without a
/// terminal it refuses (pass --yes).
pub(crate) fn confirm(question: &str) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        bail!("refusing without --yes (no terminal to ask): {question}");
    }
    eprint!("{question} [y/N] ");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}

/// Now in UTC as `YYYYMMDD-HHMMSS`: a default snapshot name that sorts.
fn utc_stamp() -> String {
    let t = svol_sdk::UtcTime::now();
    format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

fn basename(path: &str) -> Result<String> {
    let b = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    if b.is_empty() || b == "." {
        bail!("path {path:?} has no file name");
    }
    Ok(b.to_string())
}

fn progress_bar(total: u64) -> (Option<Progress>, Option<indicatif::ProgressBar>) {
    if !std::io::stderr().is_terminal() {
        return (None, None);
    }
    let pb = indicatif::ProgressBar::new(total);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec}")
    {
        pb.set_style(style);
    }
    let pb2 = pb.clone();
    (Some(Arc::new(move |n| pb2.inc(n))), Some(pb))
}

fn local_size(p: &Path) -> u64 {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::read_dir(p)
            .map(|d| d.flatten().map(|e| local_size(&e.path())).sum())
            .unwrap_or(0),
        Ok(m) => m.len(),
        Err(_) => 0,
    }
}

/// Where each local path of a `put` goes in the volume.
async fn put_targets(
    vol: &Volume,
    locals: &[String],
    remote: &str,
) -> Result<Vec<(PathBuf, String)>> {
    let remote_is_dir = remote.ends_with('/')
        || locals.len() > 1
        || vol
            .resolve(remote)
            .await
            .map(|a| a.is_dir())
            .unwrap_or(false);
    let mut out = Vec::new();
    for l in locals {
        let lp = PathBuf::from(l);
        let meta = std::fs::symlink_metadata(&lp).with_context(|| format!("local path {l}"))?;
        let target =
            if remote_is_dir && !(meta.is_dir() && locals.len() == 1 && !remote.ends_with('/')) {
                format!("{}/{}", remote.trim_end_matches('/'), basename(l)?)
            } else {
                remote.to_string()
            };
        out.push((lp, target));
    }
    Ok(out)
}

async fn put_dry_run(vol: &Volume, locals: &[String], remote: &str, force: bool) -> Result<i32> {
    let name = &vol.info().name;
    let mut taken = 0;
    for (lp, target) in put_targets(vol, locals, remote).await? {
        let exists = vol.resolve(&target).await.is_ok();
        let note = match (exists, force) {
            (true, true) => " (exists: would be overwritten)",
            (true, false) => " (exists: refused without --force)",
            _ => "",
        };
        taken += usize::from(exists && !force);
        eprintln!(
            "would upload {} ({}) to {name}:{target}{note}",
            lp.display(),
            size(local_size(&lp))
        );
    }
    eprintln!("nothing uploaded");
    Ok(if taken > 0 { 1 } else { 0 })
}

async fn put(vol: &Volume, locals: &[String], remote: &str, force: bool) -> Result<()> {
    let total = locals.iter().map(|l| local_size(Path::new(l))).sum();
    let (progress, pb) = progress_bar(total);
    let mut batch = vol.batch_upload(force);
    if let Some(p) = progress {
        batch = batch.progress(p);
    }
    for (lp, target) in put_targets(vol, locals, remote).await? {
        batch = batch.put_file(lp, &target);
    }
    let started = std::time::Instant::now();
    batch.commit().await?;
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    eprintln!(
        "uploaded {} to {}:{remote} in {:.1}s",
        size(total),
        vol.info().name,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn get(
    vol: &Volume,
    remote: &str,
    local: &str,
    opts: svol_sdk::DownloadOptions,
    force: bool,
) -> Result<()> {
    let a = vol.resolve(remote).await?;
    if local == "-" {
        if a.is_dir() {
            bail!(
                "{}:{remote} is a directory; give a local directory instead of -",
                vol.info().name
            );
        }
        let mut out = std::io::stdout();
        vol.get_file(a.ino, &mut out, &None).await?;
        return Ok(());
    }
    let lp = PathBuf::from(local);
    let target = if lp.is_dir() {
        let base = remote
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or("");
        if base.is_empty() {
            lp
        } else {
            lp.join(base)
        }
    } else {
        lp
    };
    // As `put` refuses to replace a remote file: nothing local is
    // overwritten unless asked.
    if !force && std::fs::symlink_metadata(&target).is_ok() {
        bail!("{} exists; pass --force to overwrite it", target.display());
    }
    let (progress, pb) = progress_bar(a.size);
    let started = std::time::Instant::now();
    vol.download_with(remote, &target, opts, &progress).await?;
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    eprintln!(
        "downloaded {}:{remote} to {} in {:.1}s",
        vol.info().name,
        target.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn dashboard_urls_name_the_first_server() {
        assert_eq!(
            super::dashboard_url("https://a:7420/,http://b:7420", "vo-1"),
            "https://a:7420/volumes/vo-1/files"
        );
        assert_eq!(
            super::dashboard_url("127.0.0.1:7420", "vo-2"),
            "http://127.0.0.1:7420/volumes/vo-2/files"
        );
    }
}
