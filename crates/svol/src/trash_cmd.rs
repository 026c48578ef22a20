//! `svol trash …`: deleted volumes kept for the server's retention
//! (`svol server --trash-retention`), listed, restored or purged early.

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub(crate) enum TrashCmd {
    /// List deleted volumes still in the trash, and when each is purged
    List {
        /// Print JSON (exact values) instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Bring a deleted volume back (with its snapshots), by id
    Restore {
        /// The volume's id (vo-…), as `svol trash list` shows it
        id: String,
        /// Restore it under this name (default: the name it had)
        #[arg(long = "as", value_name = "NAME")]
        name: Option<String>,
    },
    /// Drop a volume (or, with no id, the whole trash) now and free its space
    Purge {
        /// The volume's id (vo-…); none: the whole trash
        id: Option<String>,
        /// Do not ask for confirmation
        #[arg(short, long)]
        yes: bool,
    },
}

pub(crate) async fn run(
    cmd: TrashCmd,
    server: &Option<String>,
    token: &Option<String>,
) -> Result<i32> {
    let c = crate::connect(server, token).await?;
    match cmd {
        TrashCmd::List { json } => {
            let t = c.list_trash().await?;
            if json {
                let v: Vec<_> = t
                    .volumes
                    .iter()
                    .map(|v| serde_json::json!({"id": v.id, "name": v.name, "ephemeral": v.ephemeral, "snapshot_of": v.snapshot_of, "deleted": v.deleted_unix, "purge": v.purge_unix, "bytes": v.bytes, "stored_bytes": v.stored_bytes, "files": v.files}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                if t.retention_seconds == 0 {
                    eprintln!("the server keeps no trash (--trash-retention 0): deletes are final");
                }
                let rows: Vec<[String; 6]> = t
                    .volumes
                    .iter()
                    .map(|v| {
                        [
                            v.id.clone(),
                            v.name.clone(),
                            crate::table::size(v.bytes),
                            v.files.to_string(),
                            crate::table::ago(v.deleted_unix),
                            crate::table::ago(v.purge_unix),
                        ]
                    })
                    .collect();
                crate::table::print(&["ID", "NAME", "SIZE", "FILES", "DELETED", "PURGED"], &rows);
            }
        }
        TrashCmd::Restore { id, name } => {
            let v = c.restore_trash(&id, name.as_deref()).await?;
            eprintln!("restored {} as {}", v.id, v.name);
        }
        TrashCmd::Purge { id, yes } => {
            let what = match &id {
                Some(id) => format!("Drop {id} from the trash and free its space now?"),
                None => "Drop everything in the trash and free its space now?".to_string(),
            };
            if !yes && !crate::volume_cmd::confirm(&what)? {
                eprintln!("nothing purged");
                return Ok(1);
            }
            for gone in c.purge_trash(id.as_deref()).await? {
                eprintln!("purged {gone}");
            }
        }
    }
    Ok(0)
}
