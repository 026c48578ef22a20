//! TLS for the server: its certificate, optional client certificates
//! (mTLS), and `init_tls`, which makes a private CA with a server (and
//! client) certificate for a deployment that has no PKI of its own.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

use crate::{io, ServerError};

/// The server's TLS files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// PEM certificate chain the server presents.
    pub cert: PathBuf,
    /// PEM private key of that certificate.
    pub key: PathBuf,
    /// If set, clients must present a certificate signed by this CA.
    pub client_ca: Option<PathBuf>,
    /// The CA clients should trust, written into `client.toml`.
    pub ca_for_clients: Option<PathBuf>,
}

impl TlsFiles {
    pub(crate) fn server_config(&self) -> Result<ServerTlsConfig, ServerError> {
        let read = |p: &Path| std::fs::read(p).map_err(io(format!("reading {}", p.display())));
        let mut cfg = ServerTlsConfig::new()
            .identity(Identity::from_pem(read(&self.cert)?, read(&self.key)?));
        if let Some(ca) = &self.client_ca {
            cfg = cfg.client_ca_root(Certificate::from_pem(read(ca)?));
        }
        Ok(cfg)
    }
}

/// What `init_tls` wrote.
#[derive(Debug, Clone)]
pub struct TlsBundle {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// Client certificate and key (for `--tls-client-ca`), one per name.
    pub clients: Vec<(PathBuf, PathBuf)>,
}

fn cert_err(e: rcgen::Error) -> ServerError {
    ServerError::Tls(e.to_string())
}

fn write(dir: &Path, name: &str, data: &str, private: bool) -> Result<PathBuf, ServerError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let p = dir.join(name);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if private { 0o600 } else { 0o644 })
        .open(&p)
        .map_err(io(format!("writing {}", p.display())))?;
    f.write_all(data.as_bytes())
        .map_err(io(format!("writing {}", p.display())))?;
    Ok(p)
}

fn params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn.push(DnType::OrganizationName, "svol");
    p.distinguished_name = dn;
    p.not_before = rcgen::date_time_ymd(2024, 1, 1);
    p.not_after = rcgen::date_time_ymd(2099, 12, 31);
    p
}

/// Makes a private CA in `dir` (`ca.pem`, `ca.key`), a server certificate
/// for `hosts` (DNS names or IP addresses) signed by it (`server.pem`,
/// `server.key`), and one client certificate per name in `clients`
/// (`client-NAME.pem`, `client-NAME.key`). Keys are 0600. An existing CA in
/// `dir` is reused, so more certificates can be added later.
pub fn init_tls(
    dir: &Path,
    hosts: &[String],
    clients: &[String],
) -> Result<TlsBundle, ServerError> {
    if hosts.is_empty() {
        return Err(ServerError::Tls(
            "init-tls needs at least one host name or address".into(),
        ));
    }
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    let ca_key_path = dir.join("ca.key");
    let ca_pem_path = dir.join("ca.pem");
    let issuer = if ca_key_path.exists() && ca_pem_path.exists() {
        let key_pem = std::fs::read_to_string(&ca_key_path)
            .map_err(io(format!("reading {}", ca_key_path.display())))?;
        let cert_pem = std::fs::read_to_string(&ca_pem_path)
            .map_err(io(format!("reading {}", ca_pem_path.display())))?;
        let key = KeyPair::from_pem(&key_pem).map_err(cert_err)?;
        Issuer::from_ca_cert_pem(&cert_pem, key).map_err(cert_err)?
    } else {
        let key = KeyPair::generate().map_err(cert_err)?;
        let mut p = params("svol private CA");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = p.self_signed(&key).map_err(cert_err)?;
        write(dir, "ca.key", &key.serialize_pem(), true)?;
        write(dir, "ca.pem", &cert.pem(), false)?;
        Issuer::new(p, key)
    };

    let key = KeyPair::generate().map_err(cert_err)?;
    let mut p = params(&hosts[0]);
    p.subject_alt_names = hosts
        .iter()
        .map(|h| match h.parse::<IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => h
                .clone()
                .try_into()
                .map(SanType::DnsName)
                .map_err(|_| ServerError::Tls(format!("{h:?} is not a host name"))),
        })
        .collect::<Result<_, _>>()?;
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let cert = p.signed_by(&key, &issuer).map_err(cert_err)?;
    let server_key = write(dir, "server.key", &key.serialize_pem(), true)?;
    let server_cert = write(dir, "server.pem", &cert.pem(), false)?;

    let mut out = Vec::new();
    for name in clients {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(ServerError::Tls(format!(
                "client name {name:?}: use letters, digits, '-', '_' or '.'"
            )));
        }
        let key = KeyPair::generate().map_err(cert_err)?;
        let mut p = params(name);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = p.signed_by(&key, &issuer).map_err(cert_err)?;
        let k = write(
            dir,
            &format!("client-{name}.key"),
            &key.serialize_pem(),
            true,
        )?;
        let c = write(dir, &format!("client-{name}.pem"), &cert.pem(), false)?;
        out.push((c, k));
    }
    Ok(TlsBundle {
        ca_cert: ca_pem_path,
        server_cert,
        server_key,
        clients: out,
    })
}
