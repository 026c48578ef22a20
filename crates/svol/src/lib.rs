//! `svol`: the command line. Parses it and hands off to the server, the
//! mount or the volume commands; anyhow lives only here. A library so that
//! the `svol` binary and the Python package (`python -m svol`) are the same
//! program from the same build; what re-executes itself (a detached mount,
//! the run guard) asks [`Invocation`] how it was started.

mod access_cmd;
mod admin_cmd;
mod app_cmd;
mod doctor_cmd;
mod du_cmd;
mod file_trash_cmd;
mod heap;
mod logging;
mod mount;
mod run;
mod status_cmd;
mod suggest;
mod table;
mod trash_cmd;
mod volume_cmd;
mod warmup_cmd;

mod invocation;
pub use invocation::Invocation;

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
    /// How log lines are written to stderr: text, or one JSON object per
    /// line (for log collectors)
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

// Parsed once per process: the size of its largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Cmd {
    /// Run the server (SQLite metadata and blocks under --data-dir)
    #[command(args_conflicts_with_subcommands = true)]
    Server {
        #[command(subcommand)]
        action: Option<ServerAction>,
        #[command(flatten)]
        args: ServerArgs,
    },
    /// Manage volumes
    #[command(subcommand)]
    Volume(volume_cmd::VolumeCmd),
    /// Mount a volume with FUSE
    Mount(mount::MountArgs),
    /// Unmount a svol mount and end its client
    Umount {
        /// Where the volume is mounted
        mountpoint: PathBuf,
    },
    /// Run a command with volumes mounted at the paths it expects
    Run(run::RunArgs),
    /// Deleted volumes: list, restore, purge
    #[command(subcommand)]
    Trash(trash_cmd::TrashCmd),
    /// Manage apps (which own ephemeral volumes)
    #[command(subcommand)]
    App(app_cmd::AppCmd),
    /// Manage workspaces (admin)
    #[command(subcommand)]
    Workspace(access_cmd::WorkspaceCmd),
    /// Manage tokens
    #[command(subcommand)]
    Token(access_cmd::TokenCmd),
    /// Which workspace and token this shell acts as, on which server
    Whoami {
        /// Print JSON (exact values) instead of lines
        #[arg(long)]
        json: bool,
    },
    /// Maintenance of a server's data directory (server stopped)
    #[command(subcommand)]
    Admin(admin_cmd::AdminCmd),
    /// Check this host: FUSE, the configuration, the server, the token
    /// and the clock; says what to fix
    Doctor,
    /// This host's svol mounts: volume, client pid, session, log
    Status {
        /// Print JSON (exact values) instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script (e.g. `svol completion bash >
    /// /etc/bash_completion.d/svol`)
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(clap::Args)]
struct ServerArgs {
    /// Where metadata, blocks and client.toml live (made 0700)
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Address to serve on; anything but loopback needs TLS (or --insecure)
    #[arg(long, default_value = "127.0.0.1:7420")]
    listen: SocketAddr,
    /// A client without a heartbeat for this long loses its session
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    lease: std::time::Duration,
    /// An app none of whose clients has held a lease for this long stops
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    app_grace: std::time::Duration,
    /// A deleted volume stays in its workspace's trash this long (`svol
    /// trash restore`) before its space is freed; 0 deletes at once
    #[arg(long, default_value = "24h", value_parser = parse_retention)]
    trash_retention: std::time::Duration,
    /// PEM certificate (chain) to serve TLS with
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA (mutual TLS)
    #[arg(long, requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// The CA clients should trust, written into client.toml
    #[arg(long, requires = "tls_cert")]
    tls_ca: Option<PathBuf>,
    /// Allow plain HTTP/2 on a non-loopback address (tokens and data in clear)
    #[arg(long)]
    insecure: bool,
    /// Invalidations a mount may leave unapplied before it is told to drop
    /// all its caches instead
    #[arg(long, default_value = "4096")]
    session_queue: usize,
    /// Keep blocks in an S3-compatible store, s3://bucket[/prefix] (endpoint
    /// and credentials: AWS_ENDPOINT, AWS_REGION, AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY, AWS_ALLOW_HTTP); default: DATA_DIR/blocks
    #[arg(long, value_name = "URL")]
    blocks: Option<String>,
    /// Send every block by gRPC, also to mounts on this host (by default
    /// they get local blocks as open files over DATA_DIR/blocks.sock)
    #[arg(long)]
    no_block_channel: bool,
    /// Keep metadata in PostgreSQL, postgres://user[:password]@host[:port]/db
    /// (shared by every server of a cluster); default: DATA_DIR/meta.db
    #[arg(long, env = "SVOL_META", value_name = "URL")]
    meta: Option<String>,
    /// Do not serve the web dashboard (served by default on the same port
    /// as the API, with the same TLS; sign in with a token)
    #[arg(long)]
    no_dashboard: bool,
}

#[derive(Subcommand)]
enum ServerAction {
    /// Make a private CA and a server certificate (and client certificates
    /// for mutual TLS) for a deployment without a PKI of its own
    InitTls {
        /// Directory for ca.pem, ca.key, server.pem, server.key, client-*.pem
        #[arg(long)]
        dir: PathBuf,
        /// Names and addresses clients reach the server by (repeat or
        /// comma-separate); default: this host's name, localhost, 127.0.0.1, ::1
        #[arg(long = "host", value_delimiter = ',')]
        hosts: Vec<String>,
        /// Also make a client certificate with this name (repeatable)
        #[arg(long = "client")]
        clients: Vec<String>,
    },
    /// Copy a stopped server's data directory to the stores of a cluster:
    /// metadata into an empty PostgreSQL database, blocks into S3
    Migrate {
        /// The data directory of the (stopped) server to copy from
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Where the metadata goes: postgres://user[:password]@host[:port]/db
        #[arg(long, value_name = "URL")]
        to_meta: String,
        /// Where the blocks go: s3://bucket[/prefix] (AWS_* settings as for
        /// `svol server --blocks`); without it they stay where they are
        #[arg(long, value_name = "URL")]
        to_blocks: Option<String>,
    },
}

/// An error and its causes, each cause once (library errors often repeat
/// their cause in their own message).
fn describe(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    // Which of the places a token can come from held the wrong one.
    let refused = e.chain().any(|c| {
        matches!(
            c.downcast_ref::<svol_sdk::ClientError>(),
            Some(svol_sdk::ClientError::Unauthenticated(_))
        )
    });
    if let (true, Some(src)) = (refused, TOKEN_SOURCE.get()) {
        out.push_str(&format!(" (the token came from {src})"));
    }
    out
}

/// Sizes like `512M`, `2G`, `4096` (bytes), `64K`.
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        None => (t, 1u64),
        Some((i, _)) => {
            let m = match t[i..]
                .to_ascii_uppercase()
                .trim_end_matches("IB")
                .trim_end_matches('B')
            {
                "" => 1,
                "K" => 1 << 10,
                "M" => 1 << 20,
                "G" => 1 << 30,
                "T" => 1 << 40,
                _ => return Err(format!("{s:?}: unit must be K, M, G or T")),
            };
            (&t[..i], m)
        }
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size like 512M or 2G"))?;
    n.checked_mul(mult)
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("{s:?} is out of range"))
}

/// A quota in bytes: a size like `parse_size`'s, or `0` for no limit.
pub(crate) fn parse_quota_bytes(s: &str) -> Result<u64, String> {
    if s.trim() == "0" {
        return Ok(0);
    }
    parse_size(s)
}

/// A count: `1000`, `100k`, `1M` (powers of 1000).
pub(crate) fn parse_count(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a count like 100000 or 1M"))?;
    let by = match unit.to_ascii_uppercase().as_str() {
        "" => 1,
        "K" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        _ => return Err(format!("{s:?}: unit must be K, M or G")),
    };
    n.checked_mul(by)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// A retention: `0` (keep nothing), or a count of s, m, h or d up to a year.
pub(crate) fn parse_retention(s: &str) -> Result<std::time::Duration, String> {
    if s.trim() == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a retention like 0, 90m, 24h or 7d"))?;
    let secs = match unit {
        "s" | "" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86_400),
        _ => return Err(format!("{s:?}: unit must be s, m, h or d")),
    };
    if secs > 366 * 86_400 {
        return Err(format!("{s:?} is out of range (0 to 366 days)"));
    }
    Ok(std::time::Duration::from_secs(secs))
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

/// Commands that never talk to a server as a client: `--server` and
/// `--token` are hidden from their help and refused on their command line.
const OFFLINE: [&str; 4] = ["server", "completion", "admin", "umount"];

/// The command line's grammar, with the global client flags taken off the
/// commands they mean nothing to: those get hidden flags of the same names
/// of their own, which clap then does not replace with the global ones.
fn command() -> clap::Command {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    for name in OFFLINE {
        cmd = cmd.mut_subcommand(name, |c| {
            c.arg(
                clap::Arg::new("server")
                    .long("server")
                    .hide(true)
                    .global(true),
            )
            .arg(
                clap::Arg::new("token")
                    .long("token")
                    .hide(true)
                    .global(true),
            )
        });
    }
    cmd
}

fn parse(args: impl Iterator<Item = String>) -> Cli {
    use clap::FromArgMatches;
    let mut cmd = command();
    let matches = cmd.clone().get_matches_from(args);
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Some((name, _)) = matches.subcommand() {
        if OFFLINE.contains(&name) {
            for (flag, given) in [("--server", &cli.server), ("--token", &cli.token)] {
                if given.is_some() {
                    cmd.error(
                        clap::error::ErrorKind::ArgumentConflict,
                        format!("{flag} means nothing to `svol {name}`: it does not connect to a server as a client"),
                    )
                    .exit();
                }
            }
        }
    }
    cli
}

/// Runs the command line `inv` describes and exits the process with its
/// status. `svol run` must be started this way while the process has one
/// thread (it enters a mount namespace before its runtime starts).
pub fn main(inv: Invocation) -> ! {
    let args = inv.args.clone();
    if args.first().map(String::as_str) == Some("__guard") {
        run::guard(&args[1..]);
    }
    let cli = parse(std::iter::once(String::from("svol")).chain(args));
    invocation::set(inv);
    // `svol run` must enter its mount namespace while single-threaded.
    let run_plan = match &cli.cmd {
        Cmd::Run(a) => match run::prepare(a) {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("svol: error: {}", describe(&e));
                std::process::exit(1);
            }
        },
        _ => None,
    };
    // Commands that print and end die quietly when their reader goes
    // (`svol completion bash | head -1`), as other command-line tools do;
    // Rust ignores SIGPIPE, which turns a closed pipe into a panic. The
    // daemons (server, mount, run) keep ignoring it: their sockets and
    // children must not kill them.
    if matches!(cli.cmd, Cmd::Server { .. } | Cmd::Mount(_) | Cmd::Run(_)) {
        heap::keep_big_buffers();
        heap::trim_when_idle();
    } else {
        // SAFETY: restoring a signal's default disposition, before any
        // thread is started.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let default = if matches!(cli.cmd, Cmd::Server { .. }) {
        "info"
    } else {
        "warn"
    };
    let logs = tracing_subscriber::fmt()
        .with_writer(logging::make_line)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SVOL_LOG")
                .unwrap_or_else(|_| default.into()),
        );
    match cli.log_format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Text => logs.init(),
    }
    // A mount's calls are many and small: on one thread each round trip
    // to the server is two task hand-offs cheaper than on a work-stealing
    // pool (about 80 µs instead of 125 µs per call, and half the CPU,
    // measured with `svol-sdk`'s `rpcbench` example). Hashing and disk I/O
    // run on the blocking pool either way. (`svol run` supervises a child
    // and its mounts together and keeps the pool.)
    let rt = if matches!(cli.cmd, Cmd::Mount(_)) {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Runtime::new()
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("svol: error: starting runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = match rt.block_on(dispatch(cli, run_plan)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("svol: error: {}", describe(&e));
            1
        }
    };
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    logging::flush();
    std::process::exit(code);
}

fn init_tls(dir: &std::path::Path, mut hosts: Vec<String>, clients: &[String]) -> Result<i32> {
    if hosts.is_empty() {
        let mut buf = [0u8; 256];
        // SAFETY: buf is a valid, writable buffer of the length given.
        if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0 {
            let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
            let name = String::from_utf8_lossy(&buf[..end]).into_owned();
            if !name.is_empty() {
                hosts.push(name);
            }
        }
        hosts.extend(["localhost", "127.0.0.1", "::1"].map(String::from));
    }
    let b = svol_server::init_tls(dir, &hosts, clients)?;
    println!("CA certificate:     {}", b.ca_cert.display());
    println!(
        "server certificate: {} (for {})",
        b.server_cert.display(),
        hosts.join(", ")
    );
    for (c, k) in &b.clients {
        println!("client certificate: {} key {}", c.display(), k.display());
    }
    println!(
        "serve with:  svol server --listen ADDR --tls-cert {} --tls-key {} --tls-ca {}{}",
        b.server_cert.display(),
        b.server_key.display(),
        b.ca_cert.display(),
        if b.clients.is_empty() {
            String::new()
        } else {
            format!(" --tls-client-ca {}", b.ca_cert.display())
        }
    );
    println!(
        "clients:     server = \"https://ADDR\" and ca = \"{}\" in their config file",
        b.ca_cert.display()
    );
    Ok(0)
}

/// Where the token of this command came from, for its errors.
static TOKEN_SOURCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

pub(crate) async fn connect(server: &Option<String>, token: &Option<String>) -> Result<Client> {
    let cfg = ClientConfig::resolve(server.clone(), token.clone())?;
    let _ = TOKEN_SOURCE.set(cfg.token_source.clone());
    Ok(Client::connect(&cfg).await?)
}

async fn dispatch(cli: Cli, run_plan: Option<run::Plan>) -> Result<i32> {
    match cli.cmd {
        Cmd::Server {
            action:
                Some(ServerAction::InitTls {
                    dir,
                    hosts,
                    clients,
                }),
            ..
        } => init_tls(&dir, hosts, &clients),
        Cmd::Server {
            action:
                Some(ServerAction::Migrate {
                    data_dir,
                    to_meta,
                    to_blocks,
                }),
            ..
        } => {
            let dir = data_dir.unwrap_or_else(svol_sdk::default_data_dir);
            if !dir.join("meta.db").exists() {
                anyhow::bail!("{} holds no svol server data (no meta.db)", dir.display());
            }
            let m = svol_server::migrate(&dir, &to_meta, to_blocks.as_deref()).await?;
            println!(
                "copied {} metadata rows and {} blocks ({} bytes) from {}",
                m.rows,
                m.blocks,
                m.bytes,
                dir.display()
            );
            println!(
                "start the servers with:  svol server --meta <URL>{}",
                if to_blocks.is_some() {
                    " --blocks <URL>"
                } else {
                    ""
                }
            );
            Ok(0)
        }
        Cmd::Server { action: None, args } => {
            let dir = args.data_dir.unwrap_or_else(svol_sdk::default_data_dir);
            let mut cfg = svol_server::ServerConfig::new(dir.clone(), args.listen);
            cfg.lease = args.lease;
            cfg.app_grace = args.app_grace;
            cfg.trash_retention = args.trash_retention;
            cfg.session_queue = args.session_queue;
            cfg.blocks = args.blocks;
            cfg.block_channel = !args.no_block_channel;
            cfg.meta = args.meta;
            cfg.insecure = args.insecure;
            // Absolute, so client.toml names them from anywhere.
            let abs = |p: Option<PathBuf>, flag: &str| {
                p.map(|p| {
                    std::fs::canonicalize(&p).with_context(|| format!("{flag} {}", p.display()))
                })
                .transpose()
            };
            cfg.tls = match (
                abs(args.tls_cert, "--tls-cert")?,
                abs(args.tls_key, "--tls-key")?,
            ) {
                (Some(cert), Some(key)) => Some(svol_server::TlsFiles {
                    cert,
                    key,
                    client_ca: abs(args.tls_client_ca, "--tls-client-ca")?,
                    ca_for_clients: abs(args.tls_ca, "--tls-ca")?,
                }),
                _ => None,
            };
            let dashboard_url = std::sync::Arc::new(std::sync::OnceLock::new());
            if !args.no_dashboard {
                cfg.web = Some(svol_dashboard::router(svol_dashboard::DashboardConfig {
                    server: dashboard_url.clone(),
                    ca: cfg.tls.as_ref().and_then(|t| t.ca_for_clients.clone()),
                    secure_cookies: cfg.tls.is_some(),
                }));
            }
            let tls = cfg.tls.is_some();
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
                    // The dashboard is a client of this server like any
                    // other: through loopback when it listens everywhere.
                    let reach = svol_server::local_address(addr);
                    let scheme = if tls { "https" } else { "http" };
                    let _ = dashboard_url.set(format!("{scheme}://{reach}"));
                    let _ = out.flush();
                },
                shutdown,
            )
            .await
            .context("server")?;
            Ok(0)
        }
        Cmd::Volume(v) => {
            let r = volume_cmd::run(v, &cli.server, &cli.token).await;
            suggest::volume_typo(r, &cli.server, &cli.token).await
        }
        Cmd::Mount(m) => {
            let r = mount::mount(m, &cli.server, &cli.token).await;
            suggest::volume_typo(r, &cli.server, &cli.token).await
        }
        Cmd::Umount { mountpoint } => mount::umount(&mountpoint).await,
        Cmd::Run(a) => match run_plan {
            Some(plan) => run::run(a, plan, &cli.server, &cli.token).await,
            None => anyhow::bail!("svol run: namespace not prepared"),
        },
        Cmd::App(a) => app_cmd::run(a, &cli.server, &cli.token).await,
        Cmd::Trash(t) => trash_cmd::run(t, &cli.server, &cli.token).await,
        Cmd::Workspace(w) => access_cmd::workspace(w, &cli.server, &cli.token).await,
        Cmd::Token(t) => access_cmd::token(t, &cli.server, &cli.token).await,
        Cmd::Doctor => doctor_cmd::doctor(&cli.server, &cli.token).await,
        Cmd::Admin(a) => admin_cmd::run(a).await,
        Cmd::Whoami { json } => status_cmd::whoami(&cli.server, &cli.token, json).await,
        Cmd::Status { json } => status_cmd::status(&cli.server, &cli.token, json).await,
        Cmd::Completion { shell } => {
            let mut cmd = command();
            clap_complete::generate(shell, &mut cmd, "svol", &mut std::io::stdout());
            Ok(0)
        }
    }
}
