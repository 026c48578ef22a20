//! `svol`: the one binary. Parses the command line and hands off to the
//! server, the mount or the volume commands; anyhow lives only here.

mod mount;
mod volume_cmd;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use svol_client::{Client, ClientConfig};

#[derive(Parser)]
#[command(name = "svol", version, about = "Shared volumes for compute jobs")]
struct Cli {
    /// Server address (default: SVOL_SERVER, then config files)
    #[arg(long, global = true)]
    server: Option<String>,
    /// Access token (default: SVOL_TOKEN, then config files)
    #[arg(long, global = true)]
    token: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server (SQLite metadata and blocks under --data-dir)
    Server {
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long, default_value = "127.0.0.1:7420")]
        listen: SocketAddr,
    },
    /// Manage volumes
    #[command(subcommand)]
    Volume(volume_cmd::VolumeCmd),
    /// Mount a volume with FUSE
    Mount(mount::MountArgs),
    /// Unmount a svol mount and end its client
    Umount { mountpoint: PathBuf },
    /// Manage tokens of your workspace
    #[command(subcommand)]
    Token(TokenCmd),
}

#[derive(Subcommand)]
enum TokenCmd {
    /// Create a token for the caller's workspace and print it
    Create {
        #[arg(long, default_value = "cli")]
        name: String,
    },
}

fn main() {
    let cli = Cli::parse();
    let default = if matches!(cli.cmd, Cmd::Server { .. }) {
        "info"
    } else {
        "warn"
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SVOL_LOG")
                .unwrap_or_else(|_| default.into()),
        )
        .init();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("svol: error: starting runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("svol: error: {e:#}");
            1
        }
    };
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    std::process::exit(code);
}

pub(crate) async fn connect(server: &Option<String>, token: &Option<String>) -> Result<Client> {
    let cfg = ClientConfig::resolve(server.clone(), token.clone())?;
    Ok(Client::connect(&cfg).await?)
}

async fn run(cli: Cli) -> Result<i32> {
    match cli.cmd {
        Cmd::Server { data_dir, listen } => {
            let dir = data_dir.unwrap_or_else(svol_client::default_data_dir);
            let cfg = svol_server::ServerConfig::new(dir.clone(), listen);
            let shutdown = async {
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {},
                    _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {},
                }
            };
            svol_server::run(
                cfg,
                |addr| {
                    use std::io::Write;
                    // One line, and no panic when nobody reads stdout.
                    let mut out = std::io::stdout();
                    let _ = writeln!(
                        out,
                        "svol server listening on {addr} (data and client.toml in {})",
                        dir.display()
                    );
                    let _ = out.flush();
                },
                shutdown,
            )
            .await
            .context("server")?;
            Ok(0)
        }
        Cmd::Volume(v) => volume_cmd::run(v, &cli.server, &cli.token).await,
        Cmd::Mount(m) => mount::mount(m, &cli.server, &cli.token).await,
        Cmd::Umount { mountpoint } => mount::umount(&mountpoint).await,
        Cmd::Token(TokenCmd::Create { name }) => {
            let c = connect(&cli.server, &cli.token).await?;
            println!("{}", c.create_token(&name).await?);
            Ok(0)
        }
    }
}
