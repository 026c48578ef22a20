//! Where a client finds its server and token. First match wins: explicit
//! values (flags), `SVOL_SERVER`/`SVOL_TOKEN`, the file named by
//! `SVOL_CONFIG`, `~/.config/svol/config.toml`, and last the `client.toml`
//! that a local server writes into its default data directory.

use std::path::{Path, PathBuf};

use crate::{ClientError, Result};

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ClientConfig {
    pub server: String,
    pub token: String,
}

#[derive(Debug, Default, serde::Deserialize)]
struct FileConfig {
    server: Option<String>,
    token: Option<String>,
}

/// The server's default data directory: `$XDG_DATA_HOME/svol` or
/// `~/.local/share/svol`.
pub fn default_data_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("svol");
    }
    home().join(".local/share/svol")
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
}

fn read_file(p: &Path) -> Result<Option<FileConfig>> {
    match std::fs::read_to_string(p) {
        Ok(s) => toml::from_str(&s)
            .map(Some)
            .map_err(|e| ClientError::InvalidArgument(format!("config file {}: {e}", p.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ClientError::Io(format!("reading {}: {e}", p.display()))),
    }
}

impl ClientConfig {
    pub fn resolve(server: Option<String>, token: Option<String>) -> Result<Self> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let mut server = server.or_else(|| env("SVOL_SERVER"));
        let mut token = token.or_else(|| env("SVOL_TOKEN"));
        let mut files = Vec::new();
        if let Some(p) = env("SVOL_CONFIG") {
            let p = PathBuf::from(p);
            if !p.exists() {
                return Err(ClientError::InvalidArgument(format!(
                    "SVOL_CONFIG names {}, which does not exist",
                    p.display()
                )));
            }
            files.push(p);
        }
        files.push(home().join(".config/svol/config.toml"));
        files.push(default_data_dir().join("client.toml"));
        for f in files {
            if server.is_some() && token.is_some() {
                break;
            }
            if let Some(fc) = read_file(&f)? {
                server = server.or(fc.server);
                token = token.or(fc.token);
            }
        }
        match (server, token) {
            (Some(server), Some(token)) => Ok(Self { server, token }),
            (None, _) => Err(ClientError::InvalidArgument(
                "no server configured: start `svol server`, or set SVOL_SERVER / --server".into(),
            )),
            (_, None) => Err(ClientError::Unauthenticated(
                "no token configured: set SVOL_TOKEN / --token or SVOL_CONFIG".into(),
            )),
        }
    }
}
