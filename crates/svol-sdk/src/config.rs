//! Where a client finds its server and token. First match wins: explicit
//! values (flags), `SVOL_SERVER`/`SVOL_TOKEN`, the file named by
//! `SVOL_CONFIG`, `~/.config/svol/config.toml`, and last the `client.toml`
//! that a local server writes into its default data directory.
//!
//! For a server that speaks TLS (`https://…`), the CA to trust and an
//! optional client certificate come, first match wins, from
//! `SVOL_CA`/`SVOL_CLIENT_CERT`/`SVOL_CLIENT_KEY` or the keys `ca`, `cert`
//! and `key` of the same files (relative paths are relative to the file);
//! without a CA the system's roots are used.

use std::path::{Path, PathBuf};

use crate::{ClientError, Result};

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ClientConfig {
    pub server: String,
    pub token: String,
    #[serde(default)]
    pub tls: TlsConfig,
    /// Where `token` came from (`--token`, `SVOL_TOKEN`, a file's path),
    /// so that an authentication failure can say which one was wrong.
    #[serde(skip)]
    pub token_source: String,
}

/// How a client checks the server (and proves itself) over TLS.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct TlsConfig {
    /// PEM CA certificate(s) that signed the server's certificate.
    pub ca: Option<PathBuf>,
    /// PEM client certificate and key, for a server that asks for one.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct FileConfig {
    /// One address, or several of a cluster separated by commas.
    server: Option<String>,
    /// The servers of a cluster as a list (the same as `server = "a,b,c"`).
    servers: Option<Vec<String>>,
    token: Option<String>,
    ca: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
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
        let mut token_source = String::from(if token.is_some() {
            "--token"
        } else {
            "SVOL_TOKEN"
        });
        let mut token = token.or_else(|| env("SVOL_TOKEN"));
        let mut tls = TlsConfig {
            ca: env("SVOL_CA").map(PathBuf::from),
            cert: env("SVOL_CLIENT_CERT").map(PathBuf::from),
            key: env("SVOL_CLIENT_KEY").map(PathBuf::from),
        };
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
            if server.is_some() && token.is_some() && tls.ca.is_some() {
                break;
            }
            if let Some(fc) = read_file(&f)? {
                server = server
                    .or(fc.server)
                    .or(fc.servers.filter(|l| !l.is_empty()).map(|l| l.join(",")));
                if token.is_none() && fc.token.is_some() {
                    token_source = f.display().to_string();
                }
                token = token.or(fc.token);
                let base = f.parent().unwrap_or(Path::new("."));
                let rel = |p: Option<PathBuf>| p.map(|p| base.join(p));
                tls.ca = tls.ca.or(rel(fc.ca));
                tls.cert = tls.cert.or(rel(fc.cert));
                tls.key = tls.key.or(rel(fc.key));
            }
        }
        match (server, token) {
            (Some(server), Some(token)) => Ok(Self {
                server,
                token,
                tls,
                token_source,
            }),
            (None, _) => Err(ClientError::InvalidArgument(
                "no server configured: start `svol server`, or set SVOL_SERVER / --server".into(),
            )),
            (_, None) => Err(ClientError::Unauthenticated(
                "no token configured: set SVOL_TOKEN / --token or SVOL_CONFIG".into(),
            )),
        }
    }
}

/// The TLS settings of a connection to an `https://` server.
pub(crate) fn client_tls(t: &TlsConfig) -> Result<tonic::transport::ClientTlsConfig> {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    let read = |p: &Path| {
        std::fs::read(p).map_err(|e| ClientError::InvalidArgument(format!("{}: {e}", p.display())))
    };
    let mut c = ClientTlsConfig::new();
    c = match &t.ca {
        Some(ca) => c.ca_certificate(Certificate::from_pem(read(ca)?)),
        None => c.with_native_roots(),
    };
    match (&t.cert, &t.key) {
        (Some(cert), Some(key)) => c = c.identity(Identity::from_pem(read(cert)?, read(key)?)),
        (None, None) => {}
        _ => {
            return Err(ClientError::InvalidArgument(
                "a client certificate needs both cert and key".into(),
            ))
        }
    }
    Ok(c)
}
