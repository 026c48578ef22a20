//! `svol workspace …` and `svol token …`: who may reach what.

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub(crate) enum WorkspaceCmd {
    /// Create a workspace (admin token only); prints its name
    Create {
        /// The new workspace's name
        name: String,
    },
    /// List workspaces (an admin sees all, others their own)
    List {
        /// Print JSON (exact values) instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Set a workspace's quotas (admin token only): bytes after dedup over
    /// all its volumes and their trash, and inodes; 0 removes a limit
    Set {
        /// The workspace's name
        name: String,
        /// Bytes after dedup (10G, 500M, …; 0: no limit)
        #[arg(long, value_parser = crate::parse_quota_bytes)]
        max_bytes: Option<u64>,
        /// Inodes: files, directories, links (1M = a million; 0: no limit)
        #[arg(long, value_parser = crate::parse_count)]
        max_files: Option<u64>,
    },
}

#[derive(Subcommand)]
pub(crate) enum TokenCmd {
    /// Create a token and print it alone on stdout (it is not stored, only
    /// its hash: keep it)
    Create {
        /// Workspace the token belongs to (default: the caller's; another
        /// one needs an admin token)
        #[arg(long)]
        workspace: Option<String>,
        /// A label to recognise it by in `token list`
        #[arg(long, default_value = "cli")]
        name: String,
        /// May create workspaces and tokens for any workspace
        #[arg(long)]
        admin: bool,
    },
    /// List the tokens of your workspace (ids, never secrets)
    List {
        /// Print JSON (exact values) instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id (tk-…) or by the token itself; refused at once
    Revoke {
        /// The token's id (tk-…, as `token list` shows) or its secret
        #[arg(value_name = "TOKEN_OR_ID")]
        target: String,
    },
}

pub(crate) async fn workspace(
    cmd: WorkspaceCmd,
    server: &Option<String>,
    token: &Option<String>,
) -> Result<i32> {
    let c = crate::connect(server, token).await?;
    match cmd {
        WorkspaceCmd::Create { name } => println!("{}", c.create_workspace(&name).await?.name),
        WorkspaceCmd::List { json } => {
            let ws = c.list_workspaces().await?;
            if json {
                let v: Vec<_> = ws
                    .iter()
                    .map(|w| serde_json::json!({"name": w.name, "volumes": w.volumes, "stored_bytes": w.stored_bytes, "inodes": w.inodes, "max_bytes": w.max_bytes, "max_files": w.max_files}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let rows: Vec<[String; 4]> = ws
                    .iter()
                    .map(|w| {
                        [
                            w.name.clone(),
                            w.volumes.to_string(),
                            crate::table::size(w.stored_bytes),
                            w.inodes.to_string(),
                        ]
                    })
                    .collect();
                crate::table::print(&["NAME", "VOLUMES", "STORED", "INODES"], &rows);
            }
        }
        WorkspaceCmd::Set {
            name,
            max_bytes,
            max_files,
        } => {
            if max_bytes.is_none() && max_files.is_none() {
                anyhow::bail!("nothing to set: give --max-bytes and/or --max-files");
            }
            let w = c.set_workspace_quota(&name, max_bytes, max_files).await?;
            eprintln!(
                "workspace {}: max bytes {}, max files {}",
                w.name,
                crate::volume_cmd::limit(w.max_bytes),
                crate::volume_cmd::limit(w.max_files)
            );
        }
    }
    Ok(0)
}

pub(crate) async fn token(
    cmd: TokenCmd,
    server: &Option<String>,
    token: &Option<String>,
) -> Result<i32> {
    let c = crate::connect(server, token).await?;
    match cmd {
        TokenCmd::Create {
            workspace,
            name,
            admin,
        } => {
            let t = c.create_token(&name, workspace.as_deref(), admin).await?;
            eprintln!("token {} for workspace {}", t.id, t.workspace);
            println!("{}", t.token);
        }
        TokenCmd::List { json } => {
            let ts = c.list_tokens().await?;
            if json {
                let v: Vec<_> = ts
                    .iter()
                    .map(|t| serde_json::json!({"id": t.id, "name": t.label, "workspace": t.workspace, "admin": t.admin, "revoked": t.revoked, "created": t.created_unix}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let rows: Vec<[String; 5]> = ts
                    .iter()
                    .map(|t| {
                        [
                            t.id.clone(),
                            t.label.clone(),
                            if t.revoked { "revoked" } else { "active" }.into(),
                            if t.admin { "yes" } else { "no" }.into(),
                            crate::table::ago(t.created_unix),
                        ]
                    })
                    .collect();
                crate::table::print(&["ID", "NAME", "STATE", "ADMIN", "CREATED"], &rows);
            }
        }
        TokenCmd::Revoke { target } => {
            let t = c.revoke_token(&target).await?;
            eprintln!("revoked token {} ({})", t.id, t.label);
        }
    }
    Ok(0)
}
