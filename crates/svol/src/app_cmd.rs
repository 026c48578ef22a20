//! `svol app …`: apps own ephemeral volumes; a persisted volume is listed
//! as an app of kind `volume`.

use anyhow::Result;
use clap::Subcommand;
use svol_sdk::App;

#[derive(Subcommand)]
pub(crate) enum AppCmd {
    /// Create a running app and print its id alone on stdout
    Create {
        #[arg(long, default_value = "")]
        name: String,
    },
    /// List apps: id, name, kind, state, volumes, created
    List {
        #[arg(long)]
        json: bool,
    },
    /// Stop an app: its ephemeral volumes are deleted (for an app of kind
    /// volume: the volume itself)
    Stop { app_id: String },
}

pub(crate) async fn run(
    cmd: AppCmd,
    server: &Option<String>,
    token: &Option<String>,
) -> Result<i32> {
    let c = crate::connect(server, token).await?;
    match cmd {
        AppCmd::Create { name } => println!("{}", App::create(&c, &name).await?.id()),
        AppCmd::List { json } => {
            let apps = c.list_apps().await?;
            if json {
                let v: Vec<_> = apps
                    .iter()
                    .map(|a| serde_json::json!({"id": a.id, "name": a.name, "kind": a.kind, "state": a.state, "volumes": a.volumes, "created": a.created_unix}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("ID\tNAME\tKIND\tSTATE\tVOLUMES\tCREATED");
                for a in apps {
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}",
                        a.id,
                        a.name,
                        a.kind,
                        a.state,
                        a.volumes.join(","),
                        a.created_unix
                    );
                }
            }
        }
        AppCmd::Stop { app_id } => {
            let a = c.stop_app(&app_id).await?;
            eprintln!("app {} stopped", a.id);
        }
    }
    Ok(0)
}
