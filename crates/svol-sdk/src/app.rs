//! Apps and the lifetimes of volumes: the SharedVolume programming model.
//! An [`App`] owns ephemeral volumes, which are deleted when it stops; a
//! persisted volume outlives every app.

use svol_proto as p;

use crate::control::check_app_id;
use crate::{AppInfo, Client, ClientError, Result, Volume};

/// A running app of the caller's workspace. Cheap to clone.
#[derive(Clone, Debug)]
pub struct App {
    client: Client,
    info: AppInfo,
}

impl App {
    /// Creates a running app. It stops when [`App::stop`] is called or once
    /// no client has held a lease for it for the server's grace period.
    pub async fn create(client: &Client, name: &str) -> Result<App> {
        let req = p::CreateAppRequest { name: name.into() };
        let info = client
            .rpc()
            .create_app(client.req(req))
            .await
            .map_err(|e| ClientError::from(e).context(&format!("app {name}")))?
            .into_inner()
            .into();
        Ok(App {
            client: client.clone(),
            info,
        })
    }

    /// The app with this id.
    pub async fn lookup(client: &Client, id: &str) -> Result<App> {
        check_app_id(id)?;
        let info = client
            .list_apps()
            .await?
            .into_iter()
            .find(|a| a.id == id)
            .ok_or_else(|| ClientError::NotFound(format!("app {id}")))?;
        Ok(App {
            client: client.clone(),
            info,
        })
    }

    pub fn id(&self) -> &str {
        &self.info.id
    }

    pub fn info(&self) -> &AppInfo {
        &self.info
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Stops the app; its ephemeral volumes are deleted, data and all.
    pub async fn stop(&self) -> Result<AppInfo> {
        self.client.stop_app(&self.info.id).await
    }
}

impl Volume {
    /// A new volume that lives as long as `app`.
    pub async fn ephemeral(app: &App) -> Result<Volume> {
        let info = app.client.create_ephemeral_volume(app.id()).await?;
        Ok(Volume::new(app.client.clone(), info))
    }

    /// The persisted volume `name`, created empty if missing and
    /// `create_if_missing` (a concurrent creator wins harmlessly).
    pub async fn from_name(client: &Client, name: &str, create_if_missing: bool) -> Result<Volume> {
        match client.volume(name).await {
            Err(ClientError::NotFound(_)) if create_if_missing => {
                match client.create_volume(name).await {
                    Ok(info) => Ok(Volume::new(client.clone(), info)),
                    Err(ClientError::AlreadyExists(_)) => client.volume(name).await,
                    Err(e) => Err(e),
                }
            }
            r => r,
        }
    }

    /// Names this (ephemeral) volume and makes it outlive its app.
    pub async fn persist(&mut self, name: &str) -> Result<()> {
        self.info = self.client.persist_volume(&self.info.id, name).await?;
        Ok(())
    }
}
