//! TLS between a server and PostgreSQL (rustls on ring, as for the rest of
//! svol). Secure by default: a database on another host is reached over
//! TLS with its certificate and name checked, unless the URL says
//! `sslmode=disable`; one on this host (loopback or a Unix socket) over
//! plain TCP unless it says `sslmode=require`. The CA comes from the URL's
//! `sslrootcert=/path/ca.pem` (libpq's name) or else the system's roots.

use std::net::IpAddr;
use std::sync::Arc;

use postgres::config::{Host, SslMode};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use crate::{MetaError, Result};

/// How connections to one database are made.
#[derive(Clone)]
pub(crate) enum Tls {
    Plain,
    Verified(tokio_postgres_rustls::MakeRustlsConnect),
}

/// Takes `sslrootcert=…` out of a URL's query (the PostgreSQL client
/// library does not know it); returns the URL without it and the path.
pub(crate) fn split_root_cert(url: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), None);
    };
    let mut root = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|kv| match kv.strip_prefix("sslrootcert=") {
            Some(p) => {
                root = Some(p.to_string());
                false
            }
            None => true,
        })
        .collect();
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (url, root)
}

fn on_this_host(config: &postgres::Config) -> bool {
    config.get_hosts().iter().all(|h| match h {
        Host::Unix(_) => true,
        Host::Tcp(name) => {
            name == "localhost"
                || name
                    .trim_matches(['[', ']'])
                    .parse::<IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
    })
}

/// Decides plain or TLS for `config` (and sets its sslmode to match).
pub(crate) fn choose(
    config: &mut postgres::Config,
    root_cert: Option<&str>,
    shown: &str,
) -> Result<Tls> {
    let tls = match config.get_ssl_mode() {
        SslMode::Disable => false,
        SslMode::Require => true,
        // Unspecified (libpq's "prefer"): TLS unless on this host.
        _ => !on_this_host(config),
    };
    if !tls {
        config.ssl_mode(SslMode::Disable);
        return Ok(Tls::Plain);
    }
    config.ssl_mode(SslMode::Require);
    let mut roots = rustls::RootCertStore::empty();
    match root_cert {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
                .map_err(|e| {
                    MetaError::InvalidArgument(format!("sslrootcert {path} for {shown}: {e}"))
                })?;
            if certs.is_empty() {
                return Err(MetaError::InvalidArgument(format!(
                    "sslrootcert {path} for {shown} holds no certificate"
                )));
            }
            for c in certs {
                roots
                    .add(c)
                    .map_err(|e| MetaError::InvalidArgument(format!("sslrootcert {path}: {e}")))?;
            }
        }
        None => {
            for c in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(c);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| MetaError::Backend(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Tls::Verified(
        tokio_postgres_rustls::MakeRustlsConnect::new(client),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_cert_is_taken_out_of_the_url() {
        assert_eq!(
            split_root_cert("postgres://u@h/db?sslmode=require&sslrootcert=/ca.pem"),
            (
                "postgres://u@h/db?sslmode=require".into(),
                Some("/ca.pem".into())
            )
        );
        assert_eq!(
            split_root_cert("postgres://u@h/db?sslrootcert=/ca.pem"),
            ("postgres://u@h/db".into(), Some("/ca.pem".into()))
        );
        assert_eq!(
            split_root_cert("postgres://u@h/db"),
            ("postgres://u@h/db".into(), None)
        );
    }

    #[test]
    fn another_host_gets_tls_and_this_host_plain_unless_the_url_says() {
        let pick = |url: &str| {
            let mut c: postgres::Config = url.parse().unwrap();
            matches!(choose(&mut c, None, url).unwrap(), Tls::Verified(_))
        };
        assert!(pick("postgres://u@db.internal/x"));
        assert!(pick("postgres://u@10.1.2.3/x"));
        assert!(!pick("postgres://u@10.1.2.3/x?sslmode=disable"));
        assert!(!pick("postgres://u@127.0.0.1/x"));
        assert!(!pick("postgres://u@localhost/x"));
        assert!(pick("postgres://u@127.0.0.1/x?sslmode=require"));
    }
}
