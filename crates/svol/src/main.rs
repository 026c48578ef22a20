//! `svol`: the one binary. Parses the command line and hands off to the
//! server, the mount or the volume commands; anyhow lives only here.

mod access_cmd;
mod app_cmd;
mod logging;
mod mount;
mod run;
mod volume_cmd;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use svol_sdk::{Client, ClientConfig};

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
        /// A client without a heartbeat for this long loses its session
        #[arg(long, default_value = "15s", value_parser = parse_duration)]
        lease: std::time::Duration,
        /// An app none of whose clients has held a lease for this long stops
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        app_grace: std::time::Duration,
    },
    /// Manage volumes
    #[command(subcommand)]
    Volume(volume_cmd::VolumeCmd),
    /// Mount a volume with FUSE
    Mount(mount::MountArgs),
    /// Unmount a svol mount and end its client
    Umount { mountpoint: PathBuf },
    /// Run a command with volumes mounted at the paths it expects
    Run(run::RunArgs),
    /// Manage apps (which own ephemeral volumes)
    #[command(subcommand)]
    App(app_cmd::AppCmd),
    /// Manage workspaces (admin)
    #[command(subcommand)]
    Workspace(access_cmd::WorkspaceCmd),
    /// Manage tokens
    #[command(subcommand)]
    Token(access_cmd::TokenCmd),
    /// Print a shell completion script (e.g. `svol completion bash >
    /// /etc/bash_completion.d/svol`)
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 15s, 500ms or 2m"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?}: unit must be ms, s, m or h")),
    };
    if !(0.1..=86400.0 * 7.0).contains(&secs) {
        return Err(format!("{s:?} is out of range (100ms to 7 days)"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("__guard") {
        run::guard(&args[2..]);
    }
    let cli = Cli::parse();
    // `svol run` must enter its mount namespace while single-threaded.
    let run_plan = match &cli.cmd {
        Cmd::Run(a) => match run::prepare(a) {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("svol: error: {e:#}");
                std::process::exit(1);
            }
        },
        _ => None,
    };
    let default = if matches!(cli.cmd, Cmd::Server { .. }) {
        "info"
    } else {
        "warn"
    };
    tracing_subscriber::fmt()
        .with_writer(logging::make_line)
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
    let code = match rt.block_on(dispatch(cli, run_plan)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("svol: error: {e:#}");
            1
        }
    };
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    logging::flush();
    std::process::exit(code);
}

pub(crate) async fn connect(server: &Option<String>, token: &Option<String>) -> Result<Client> {
    let cfg = ClientConfig::resolve(server.clone(), token.clone())?;
    Ok(Client::connect(&cfg).await?)
}

async fn dispatch(cli: Cli, run_plan: Option<run::Plan>) -> Result<i32> {
    match cli.cmd {
        Cmd::Server {
            data_dir,
            listen,
            lease,
            app_grace,
        } => {
            let dir = data_dir.unwrap_or_else(svol_sdk::default_data_dir);
            let mut cfg = svol_server::ServerConfig::new(dir.clone(), listen);
            cfg.lease = lease;
            cfg.app_grace = app_grace;
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
        Cmd::Run(a) => match run_plan {
            Some(plan) => run::run(a, plan, &cli.server, &cli.token).await,
            None => anyhow::bail!("svol run: namespace not prepared"),
        },
        Cmd::App(a) => app_cmd::run(a, &cli.server, &cli.token).await,
        Cmd::Workspace(w) => access_cmd::workspace(w, &cli.server, &cli.token).await,
        Cmd::Token(t) => access_cmd::token(t, &cli.server, &cli.token).await,
        Cmd::Completion { shell } => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "svol", &mut std::io::stdout());
            Ok(0)
        }
    }
}
