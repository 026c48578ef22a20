//! `svol run`: the seed's `@function(shared_volumes={PATH: volume})`. The
//! command runs in a private mount namespace with each volume mounted at its
//! path; the host sees none of it. Without `--app`, the run has its own app,
//! stopped (ephemeral volumes deleted) when the command ends.

mod child;
mod namespace;

pub(crate) use child::guard;

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use svol_fuse::{Mount, MountOptions};
use svol_sdk::{App, Client, Volume};

#[derive(clap::Args)]
pub(crate) struct RunArgs {
    /// Run in this app (default: a new app, stopped when the command ends)
    #[arg(long)]
    app: Option<String>,
    /// PATH=VOLUME: mount VOLUME (name or id) at PATH. A bare PATH mounts a
    /// new ephemeral volume of the run's app there.
    #[arg(short = 'v', long = "volume", value_name = "PATH=VOLUME")]
    volumes: Vec<String>,
    /// KEY=VALUE: set an environment variable for the command
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// The command and its arguments
    #[arg(required = true, last = true)]
    cmd: Vec<String>,
}

/// What `-v` asked for, checked before anything is touched.
pub(crate) struct Plan {
    targets: Vec<PathBuf>,
    volumes: Vec<Option<String>>,
    env: Vec<(String, String)>,
}

fn parse(a: &RunArgs) -> Result<Plan> {
    let mut targets: Vec<PathBuf> = Vec::new();
    let mut volumes = Vec::new();
    for spec in &a.volumes {
        let (path, vol) = match spec.split_once('=') {
            Some((p, v)) => {
                svol_sdk::check_volume_ref(v)?;
                (p, Some(v.to_string()))
            }
            None => (spec.as_str(), None),
        };
        let t = namespace::clean_target(path)?;
        for other in &targets {
            if t.starts_with(other) || other.starts_with(&t) {
                bail!(
                    "volume paths {} and {} are nested; mount them side by side",
                    other.display(),
                    t.display()
                );
            }
        }
        targets.push(t);
        volumes.push(vol);
    }
    let mut env = Vec::new();
    for e in &a.env {
        match e.split_once('=') {
            Some((k, v)) if !k.is_empty() && !k.contains('\0') && !v.contains('\0') => {
                env.push((k.to_string(), v.to_string()))
            }
            _ => bail!("environment setting {e:?} is not KEY=VALUE"),
        }
    }
    Ok(Plan {
        targets,
        volumes,
        env,
    })
}

/// Checks the arguments and enters the private mount namespace. Call while
/// the process has one thread, before the async runtime starts.
pub(crate) fn prepare(a: &RunArgs) -> Result<Plan> {
    let mut plan = parse(a)?;
    plan.targets = namespace::enter(&plan.targets)?;
    Ok(plan)
}

/// Mounts, runs the command, cleans up; returns the command's exit status.
/// Runs on the main thread (the child's parent-death signal is tied to it).
pub(crate) async fn run(
    a: RunArgs,
    plan: Plan,
    server: &Option<String>,
    token: &Option<String>,
) -> Result<i32> {
    let client = crate::connect(server, token).await?;
    let (app, own_app) = match &a.app {
        Some(id) => (App::lookup(&client, id).await?, false),
        None => {
            let name: String = format!("run {}", a.cmd.join(" "))
                .chars()
                .take(128)
                .collect();
            let name = name.replace(['\n', '\0'], " ");
            (App::create(&client, &name).await?, true)
        }
    };
    if app.info().state != "running" {
        bail!("app {} is {}", app.id(), app.info().state);
    }
    let res = run_in_app(&client, &app, &a, &plan).await;
    if own_app {
        if let Err(e) = app.stop().await {
            eprintln!("svol: warning: stopping app {}: {e}", app.id());
        }
    }
    res
}

async fn run_in_app(client: &Client, app: &App, a: &RunArgs, plan: &Plan) -> Result<i32> {
    let mut mounts = Vec::new();
    let res = async {
        for (target, vol) in plan.targets.iter().zip(&plan.volumes) {
            let v = match vol {
                Some(name) => client.volume(name).await?,
                None => {
                    let v = Volume::ephemeral(app).await?;
                    eprintln!(
                        "svol: ephemeral volume {} at {}",
                        v.info().id,
                        target.display()
                    );
                    v
                }
            };
            let opts = MountOptions {
                app: app.id().to_string(),
                purpose: format!("run {}", a.cmd.join(" ")),
                ..Default::default()
            };
            let m = Mount::new(v, target, opts)
                .await
                .with_context(|| format!("mounting at {}", target.display()))?;
            mounts.push((target.clone(), tokio::task::spawn_blocking(move || m.run())));
        }
        child::run(&a.cmd, &plan.env, app.id()).await
    }
    .await;
    for (target, serving) in mounts {
        crate::mount::unmount(&target);
        match tokio::time::timeout(std::time::Duration::from_secs(10), serving).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => eprintln!("svol: warning: {}: {e}", target.display()),
            _ => eprintln!(
                "svol: warning: {} did not unmount in time",
                target.display()
            ),
        }
    }
    res
}
