//! `svol admin …`: maintenance of a server's data directory, with the
//! server stopped: `fsck` (metadata against block files), `gc` (delete
//! the block files nothing names), and `dump`/`load` (the whole directory
//! as one tar stream, and back into a new one).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;

#[derive(Subcommand)]
pub(crate) enum AdminCmd {
    /// Check the data directory (server stopped): blocks the metadata
    /// needs but the store lacks (with the files they belong to), and
    /// block files nothing names; exit 1 if anything is wrong
    Fsck {
        /// The server's data directory (default: ~/.local/share/svol)
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Delete the orphan block files found
        #[arg(long)]
        repair: bool,
        /// Print JSON (exact values) instead of lines
        #[arg(long)]
        json: bool,
    },
    /// Delete block files nothing names (left by a crash between an
    /// upload's write and its record); the server must be stopped
    Gc {
        /// The server's data directory (default: ~/.local/share/svol)
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Write the whole data directory (metadata and every block a file
    /// reads) as one tar stream; the server must be stopped
    Dump {
        /// The server's data directory (default: ~/.local/share/svol)
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Write the dump to this file (default: standard output)
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Make a new data directory from a dump; every volume, token and
    /// snapshot comes back (start `svol server --data-dir DIR` on it)
    Load {
        /// The new data directory: absent or empty
        #[arg(long)]
        data_dir: PathBuf,
        /// Read the dump from this file (default: standard input)
        #[arg(short, long)]
        input: Option<PathBuf>,
    },
}

fn say_summary(verb: &str, m: &svol_server::DumpManifest) {
    eprintln!(
        "{verb} {} metadata rows and {} blocks ({})",
        m.metadata_rows,
        m.blocks,
        crate::table::size(m.block_bytes)
    );
}

async fn dump(data_dir: Option<PathBuf>, output: Option<PathBuf>) -> Result<i32> {
    use std::io::IsTerminal;
    let dir = data_dir.unwrap_or_else(svol_sdk::default_data_dir);
    let m = match output {
        Some(path) => {
            // Written beside the target and renamed: a failed dump never
            // leaves a file that looks whole.
            let tmp = path.with_extension("partial");
            let f = std::fs::File::create(&tmp)
                .with_context(|| format!("creating {}", tmp.display()))?;
            let out = std::io::BufWriter::new(f);
            match svol_server::dump(&dir, out).await {
                Ok(m) => {
                    std::fs::File::open(&tmp)
                        .and_then(|f| f.sync_all())
                        .with_context(|| format!("syncing {}", tmp.display()))?;
                    std::fs::rename(&tmp, &path)
                        .with_context(|| format!("writing {}", path.display()))?;
                    m
                }
                Err(e) => {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(e.into());
                }
            }
        }
        None => {
            if std::io::stdout().is_terminal() {
                anyhow::bail!(
                    "refusing to write a dump to a terminal: pass -o FILE or redirect standard output"
                );
            }
            let out = std::io::BufWriter::new(std::io::stdout().lock());
            svol_server::dump(&dir, out).await?
        }
    };
    say_summary("dumped", &m);
    Ok(0)
}

async fn load(data_dir: PathBuf, input: Option<PathBuf>) -> Result<i32> {
    let m = match input {
        Some(path) => {
            let f = std::fs::File::open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            svol_server::load(&data_dir, std::io::BufReader::new(f)).await?
        }
        None => svol_server::load(&data_dir, std::io::stdin().lock()).await?,
    };
    say_summary("loaded", &m);
    eprintln!(
        "start it with: svol server --data-dir {}",
        data_dir.display()
    );
    Ok(0)
}

pub(crate) async fn run(cmd: AdminCmd) -> Result<i32> {
    let (dir, repair, json, gc) = match cmd {
        AdminCmd::Dump { data_dir, output } => return dump(data_dir, output).await,
        AdminCmd::Load { data_dir, input } => return load(data_dir, input).await,
        AdminCmd::Fsck {
            data_dir,
            repair,
            json,
        } => (data_dir, repair, json, false),
        AdminCmd::Gc { data_dir } => (data_dir, true, false, true),
    };
    let dir = dir.unwrap_or_else(svol_sdk::default_data_dir);
    if !dir.join("meta.db").exists() {
        anyhow::bail!("{} holds no svol server data (no meta.db)", dir.display());
    }
    let r = svol_server::fsck(&dir, repair).await?;
    if json {
        let v = serde_json::json!({
            "blocks_in_metadata": r.blocks_in_metadata,
            "blocks_stored": r.blocks_stored,
            "missing": r.missing.iter().map(|m| serde_json::json!({
                "workspace": m.workspace, "hash": m.hash,
                "files": m.files.iter().map(|(v, p)| format!("{v}:{p}")).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "orphans": r.orphans.iter().map(|(ws, h)| serde_json::json!({"workspace": ws, "hash": h})).collect::<Vec<_>>(),
            "removed": r.removed,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if gc {
        println!(
            "removed {} orphan block file{}",
            r.removed,
            if r.removed == 1 { "" } else { "s" }
        );
    } else {
        println!(
            "{} blocks in the metadata, {} stored",
            r.blocks_in_metadata, r.blocks_stored
        );
        for m in &r.missing {
            println!(
                "MISSING block {} (workspace {}): its bytes are lost; files that read it:",
                m.hash, m.workspace
            );
            for (v, p) in &m.files {
                println!("  {v}:{p}");
            }
        }
        for (ws, h) in &r.orphans {
            let what = if repair {
                "removed"
            } else {
                "not removed (--repair)"
            };
            println!("ORPHAN block {h} (workspace {ws}): named by nothing; {what}");
        }
        if r.missing.is_empty() && r.orphans.is_empty() {
            println!("clean");
        }
    }
    let bad = !r.missing.is_empty() || r.orphans.len() > r.removed;
    Ok(if bad { 1 } else { 0 })
}
