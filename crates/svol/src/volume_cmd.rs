//! `svol volume …`: Modal-style volume commands, all through the server.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::Subcommand;
use svol_client::{check_remote_path, ClientError, Progress, Volume};
use svol_proto as p;

#[derive(Subcommand)]
pub(crate) enum VolumeCmd {
    /// Create a persisted volume; prints its id
    Create { name: String },
    /// List volumes
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show a volume's size, file count and creation time
    Info {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// List a directory of a volume
    Ls {
        name: String,
        path: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Upload files or directories: put NAME LOCAL... [REMOTE]
    Put {
        name: String,
        #[arg(required = true, num_args = 1..)]
        paths: Vec<String>,
        /// Overwrite existing files
        #[arg(short, long)]
        force: bool,
    },
    /// Download a file or directory (LOCAL `-` writes a file to stdout)
    Get {
        name: String,
        remote: String,
        local: Option<String>,
    },
    /// Remove a file (or a directory with -r)
    Rm {
        name: String,
        path: String,
        #[arg(short, long)]
        recursive: bool,
    },
    /// Copy within a volume on the server (no data is copied)
    Cp {
        name: String,
        #[arg(required = true, num_args = 2..)]
        paths: Vec<String>,
        #[arg(short, long)]
        recursive: bool,
    },
    /// Rename a volume
    Rename { old: String, new: String },
    /// Delete a volume and all its data
    Delete {
        name: String,
        #[arg(short, long)]
        yes: bool,
    },
}

fn kind_name(k: i32) -> &'static str {
    match p::FileKind::try_from(k).unwrap_or(p::FileKind::Regular) {
        p::FileKind::Directory => "dir",
        p::FileKind::Symlink => "symlink",
        p::FileKind::Regular => "file",
        _ => "special",
    }
}

fn is_dir(a: &p::Attr) -> bool {
    a.kind == p::FileKind::Directory as i32
}

pub(crate) async fn run(
    cmd: VolumeCmd,
    server: &Option<String>,
    token: &Option<String>,
) -> Result<i32> {
    let c = crate::connect(server, token).await?;
    match cmd {
        VolumeCmd::Create { name } => println!("{}", c.create_volume(&name).await?.id),
        VolumeCmd::List { json } => {
            let vs = c.list_volumes().await?;
            if json {
                let v: Vec<_> = vs.iter().map(info_json).collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                for v in vs {
                    println!("{}\t{}\t{} bytes\t{} files", v.name, v.id, v.bytes, v.files);
                }
            }
        }
        VolumeCmd::Info { name, json } => {
            let v = c.volume_info(&name).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&info_json(&v))?);
            } else {
                println!(
                    "name:    {}\nid:      {}\nbytes:   {}\nfiles:   {}\ncreated: {}",
                    v.name, v.id, v.bytes, v.files, v.created_unix
                );
            }
        }
        VolumeCmd::Ls { name, path, json } => {
            let vol = c.volume(&name).await?;
            let path = path.unwrap_or_else(|| "/".into());
            let a = vol.resolve(&path).await?;
            let entries = if is_dir(&a) {
                vol.readdir_all(a.ino)
                    .await?
                    .into_iter()
                    .map(|e| {
                        (
                            String::from_utf8_lossy(&e.name).into_owned(),
                            e.attr.unwrap_or_default(),
                        )
                    })
                    .collect()
            } else {
                vec![(path.rsplit('/').next().unwrap_or("").to_string(), a)]
            };
            if json {
                let v: Vec<_> = entries
                    .iter()
                    .map(|(n, a)| serde_json::json!({"name": n, "kind": kind_name(a.kind), "size": a.size, "mtime": a.mtime.map(|t| t.sec).unwrap_or(0)}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                for (n, a) in entries {
                    println!("{}{}", n, if is_dir(&a) { "/" } else { "" });
                }
            }
        }
        VolumeCmd::Put {
            name,
            mut paths,
            force,
        } => {
            let vol = c.volume(&name).await?;
            let remote = if paths.len() > 1 {
                paths.pop().unwrap_or_default()
            } else {
                "/".into()
            };
            check_remote_path(&remote)?;
            put(&vol, &paths, &remote, force).await?;
        }
        VolumeCmd::Get {
            name,
            remote,
            local,
        } => {
            let vol = c.volume(&name).await?;
            get(&vol, &remote, local.as_deref().unwrap_or(".")).await?;
        }
        VolumeCmd::Rm {
            name,
            path,
            recursive,
        } => {
            let vol = c.volume(&name).await?;
            let (parent, base) = split(&vol, &path).await?;
            let a = vol
                .lookup(parent, base.as_bytes())
                .await
                .map_err(|e| e.context(&format!("{name}:{path}")))?;
            if is_dir(&a) {
                if !recursive {
                    bail!("{name}:{path} is a directory (use -r)");
                }
                remove_tree(&vol, a.ino).await?;
            }
            vol.unlink(parent, base.as_bytes(), is_dir(&a))
                .await
                .map_err(|e| e.context(&format!("{name}:{path}")))?;
        }
        VolumeCmd::Cp {
            name,
            mut paths,
            recursive,
        } => {
            let vol = c.volume(&name).await?;
            let dst = paths.pop().unwrap_or_default();
            check_remote_path(&dst)?;
            let dst_dir = vol.resolve(&dst).await.ok().filter(is_dir);
            if paths.len() > 1 && dst_dir.is_none() {
                bail!("{name}:{dst} is not a directory");
            }
            for src in &paths {
                let sa = vol.resolve(src).await?;
                if is_dir(&sa) && !recursive {
                    bail!("{name}:{src} is a directory (use -r)");
                }
                let (parent, base) = match &dst_dir {
                    Some(d) => (d.ino, basename(src)?),
                    None => split(&vol, &dst).await?,
                };
                vol.copy(sa.ino, parent, base.as_bytes())
                    .await
                    .map_err(|e| e.context(&format!("{name}:{dst}")))?;
            }
        }
        VolumeCmd::Rename { old, new } => {
            c.rename_volume(&old, &new).await?;
        }
        VolumeCmd::Delete { name, yes } => {
            c.volume_info(&name).await?;
            if !yes {
                if !std::io::stdin().is_terminal() {
                    bail!("refusing to delete volume {name} without --yes (no terminal to ask)");
                }
                eprint!("Delete volume {name} and all its data? [y/N] ");
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                if !matches!(line.trim(), "y" | "Y" | "yes") {
                    eprintln!("not deleted");
                    return Ok(1);
                }
            }
            c.delete_volume(&name).await?;
        }
    }
    Ok(0)
}

fn info_json(v: &p::VolumeInfo) -> serde_json::Value {
    serde_json::json!({"id": v.id, "name": v.name, "bytes": v.bytes, "files": v.files, "created": v.created_unix})
}

fn basename(path: &str) -> Result<String> {
    let b = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    if b.is_empty() || b == "." {
        bail!("path {path:?} has no file name");
    }
    Ok(b.to_string())
}

/// The parent directory's inode and the last component of `path`.
async fn split(vol: &Volume, path: &str) -> Result<(u64, String)> {
    check_remote_path(path)?;
    let trimmed = path.trim_end_matches('/');
    let (dir, base) = match trimmed.rfind('/') {
        Some(i) => (&trimmed[..i], &trimmed[i + 1..]),
        None => ("", trimmed),
    };
    if base.is_empty() {
        bail!("path {path:?} names the volume root");
    }
    Ok((vol.resolve(dir).await?.ino, base.to_string()))
}

async fn remove_tree(vol: &Volume, dir: u64) -> Result<()> {
    for e in vol.readdir_all(dir).await? {
        let a = e.attr.unwrap_or_default();
        if is_dir(&a) {
            Box::pin(remove_tree(vol, a.ino)).await?;
        }
        vol.unlink(dir, &e.name, is_dir(&a)).await?;
    }
    Ok(())
}

/// `mkdir -p` inside the volume.
async fn mkdirs(vol: &Volume, path: &str) -> Result<u64> {
    let mut cur = vol.root();
    for part in path.split('/').filter(|p| !p.is_empty() && *p != ".") {
        cur = match vol.lookup(cur, part.as_bytes()).await {
            Ok(a) if is_dir(&a) => a.ino,
            Ok(_) => bail!("{}:{path}: {part} is not a directory", vol.info().name),
            Err(ClientError::NotFound(_)) => {
                let r = p::CreateRequest {
                    parent: cur,
                    name: Bytes::copy_from_slice(part.as_bytes()),
                    kind: p::FileKind::Directory as i32,
                    mode: 0o755,
                    exclusive: false,
                    ..Default::default()
                };
                match vol.create(r).await {
                    Ok(a) => a.ino,
                    Err(ClientError::AlreadyExists(_)) => {
                        vol.lookup(cur, part.as_bytes()).await?.ino
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        };
    }
    Ok(cur)
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

async fn put(vol: &Volume, locals: &[String], remote: &str, force: bool) -> Result<()> {
    let total = locals.iter().map(|l| local_size(Path::new(l))).sum();
    let (progress, pb) = progress_bar(total);
    let remote_is_dir = remote.ends_with('/')
        || locals.len() > 1
        || vol
            .resolve(remote)
            .await
            .map(|a| is_dir(&a))
            .unwrap_or(false);
    for l in locals {
        let lp = PathBuf::from(l);
        let meta = std::fs::symlink_metadata(&lp).with_context(|| format!("local path {l}"))?;
        let target =
            if remote_is_dir && !(meta.is_dir() && locals.len() == 1 && !remote.ends_with('/')) {
                format!("{}/{}", remote.trim_end_matches('/'), basename(l)?)
            } else {
                remote.to_string()
            };
        put_path(vol, &lp, &target, force, &progress).await?;
    }
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    Ok(())
}

async fn put_path(
    vol: &Volume,
    local: &Path,
    remote: &str,
    force: bool,
    progress: &Option<Progress>,
) -> Result<()> {
    let meta = std::fs::symlink_metadata(local)
        .with_context(|| format!("local path {}", local.display()))?;
    if meta.is_dir() {
        mkdirs(vol, remote).await?;
        let mut entries: Vec<_> = std::fs::read_dir(local)?.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            Box::pin(put_path(
                vol,
                &e.path(),
                &format!("{}/{}", remote.trim_end_matches('/'), name),
                force,
                progress,
            ))
            .await?;
        }
        return Ok(());
    }
    let trimmed = remote.trim_end_matches('/');
    let (dir, base) = trimmed.rsplit_once('/').unwrap_or(("", trimmed));
    let parent = mkdirs(vol, dir).await?;
    let where_ = format!("{}:{remote}", vol.info().name);
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(local)?;
        use std::os::unix::ffi::OsStrExt;
        let r = p::CreateRequest {
            parent,
            name: Bytes::copy_from_slice(base.as_bytes()),
            kind: p::FileKind::Symlink as i32,
            mode: 0o777,
            symlink_target: Bytes::copy_from_slice(target.as_os_str().as_bytes()),
            exclusive: true,
            ..Default::default()
        };
        vol.create(r).await.map_err(|e| e.context(&where_))?;
        return Ok(());
    }
    if !meta.is_file() {
        bail!(
            "{}: not a regular file, directory or symlink",
            local.display()
        );
    }
    vol.put_file(local, parent, base.as_bytes(), force, progress)
        .await
        .map_err(|e| e.context(&where_))?;
    Ok(())
}

async fn get(vol: &Volume, remote: &str, local: &str) -> Result<()> {
    let a = vol.resolve(remote).await?;
    if local == "-" {
        if is_dir(&a) {
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
    let (progress, pb) = progress_bar(a.size);
    get_path(vol, &a, &target, &progress).await?;
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    Ok(())
}

async fn get_path(
    vol: &Volume,
    a: &p::Attr,
    local: &Path,
    progress: &Option<Progress>,
) -> Result<()> {
    if is_dir(a) {
        std::fs::create_dir_all(local).with_context(|| format!("creating {}", local.display()))?;
        for e in vol.readdir_all(a.ino).await? {
            let ea = e.attr.unwrap_or_default();
            let name = String::from_utf8_lossy(&e.name).into_owned();
            Box::pin(get_path(vol, &ea, &local.join(name), progress)).await?;
        }
        return Ok(());
    }
    if a.kind == p::FileKind::Symlink as i32 {
        let t = vol.readlink(a.ino).await?;
        use std::os::unix::ffi::OsStrExt;
        let _ = std::fs::remove_file(local);
        std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&t), local)?;
        return Ok(());
    }
    let tmp = local.with_extension("svol-part");
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    vol.get_file(a.ino, &mut f, progress).await?;
    f.sync_all()?;
    std::fs::rename(&tmp, local).with_context(|| format!("writing {}", local.display()))?;
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(local, std::fs::Permissions::from_mode(a.mode & 0o7777));
    Ok(())
}
