//! `svol app …`: apps own ephemeral volumes; a persisted volume is listed
//! as an app of kind `volume`.

use anyhow::{bail, Result};
use clap::Subcommand;
use svol_sdk::App;

#[derive(Subcommand)]
pub(crate) enum AppCmd {
    /// Create a running app and print its id alone on stdout
    Create {
        /// A name to find it by (`app stop NAME`)
        #[arg(long, default_value = "")]
        name: String,
    },
    /// List running apps: id, name, kind, state, volumes, created
    List {
        /// Stopped apps too
        #[arg(short, long)]
        all: bool,
        /// Print JSON (exact values) instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Stop an app, by id or by name: its ephemeral volumes are deleted
    /// (for an app of kind volume: the volume itself)
    Stop {
        /// The app's id (ap-…) or the name of one running app
        app: String,
    },
}

/// The id of the app `key` names: an id as it is, or the one running app
/// of that name.
async fn resolve(c: &svol_sdk::Client, key: &str) -> Result<String> {
    if key.starts_with("ap-") {
        return Ok(key.to_string());
    }
    let apps = c.list_apps().await?;
    let named: Vec<_> = apps
        .iter()
        .filter(|a| a.name == key && a.state == "running")
        .collect();
    match named.as_slice() {
        [one] => Ok(one.id.clone()),
        [] => {
            let stopped = apps.iter().any(|a| a.name == key);
            if stopped {
                bail!("app {key:?} is already stopped");
            }
            bail!("no running app is named {key:?} (`svol app list` shows them)");
        }
        many => bail!(
            "{} running apps are named {key:?}; stop one by id: {}",
            many.len(),
            many.iter()
                .map(|a| a.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

pub(crate) async fn run(
    cmd: AppCmd,
    server: &Option<String>,
    token: &Option<String>,
) -> Result<i32> {
    let c = crate::connect(server, token).await?;
    match cmd {
        AppCmd::Create { name } => println!("{}", App::create(&c, &name).await?.id()),
        AppCmd::List { all, json } => {
            let mut apps = c.list_apps().await?;
            if !all {
                apps.retain(|a| a.state != "stopped");
            }
            if json {
                let v: Vec<_> = apps
                    .iter()
                    .map(|a| serde_json::json!({"id": a.id, "name": a.name, "kind": a.kind, "state": a.state, "volumes": a.volumes, "created": a.created_unix}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let rows: Vec<[String; 6]> = apps
                    .iter()
                    .map(|a| {
                        [
                            a.id.clone(),
                            crate::table::clip(&a.name, 40),
                            a.kind.clone(),
                            a.state.clone(),
                            if a.volumes.is_empty() {
                                "-".into()
                            } else {
                                a.volumes.join(",")
                            },
                            crate::table::ago(a.created_unix),
                        ]
                    })
                    .collect();
                crate::table::print(
                    &["ID", "NAME", "KIND", "STATE", "VOLUMES", "CREATED"],
                    &rows,
                );
            }
        }
        AppCmd::Stop { app } => {
            let id = resolve(&c, &app).await?;
            let a = c.stop_app(&id).await?;
            eprintln!("app {} stopped", a.id);
        }
    }
    Ok(0)
}
