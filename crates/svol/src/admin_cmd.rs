//! `svol admin …`: maintenance of a server's data directory, with the
//! server stopped: `fsck` (metadata against block files) and `gc` (delete
//! the block files nothing names).

use std::path::PathBuf;

use anyhow::Result;
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
}

pub(crate) async fn run(cmd: AdminCmd) -> Result<i32> {
    let (dir, repair, json, gc) = match cmd {
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
