//! A real server in-process (the same code as `svol server`) and clients
//! of it, for the SDK's tests.
#![allow(dead_code)]

use svol_sdk::{Client, ClientConfig};

pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub addr: String,
    pub token: String,
}

pub async fn server() -> TestServer {
    server_on(tempfile::tempdir().unwrap()).await
}

/// A server on `dir/data`, which the caller may have filled beforehand.
pub async fn server_on(dir: tempfile::TempDir) -> TestServer {
    let mut cfg =
        svol_server::ServerConfig::new(dir.path().join("data"), "127.0.0.1:0".parse().unwrap());
    // Deletes free their space at once here (the trash has its own tests).
    cfg.trash_retention = std::time::Duration::ZERO;
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        svol_server::run(
            cfg,
            move |addr| {
                let _ = tx.send(addr);
            },
            std::future::pending(),
        )
        .await
        .unwrap();
    });
    let addr = rx.await.unwrap().to_string();
    let file: svol_server::ClientFile =
        toml::from_str(&std::fs::read_to_string(dir.path().join("data/client.toml")).unwrap())
            .unwrap();
    TestServer {
        dir,
        addr,
        token: file.token,
    }
}

pub async fn client(s: &TestServer) -> Client {
    let cfg = ClientConfig::resolve(Some(s.addr.clone()), Some(s.token.clone())).unwrap();
    Client::connect(&cfg).await.unwrap()
}

pub fn blocks_bytes(s: &TestServer) -> u64 {
    fn walk(p: &std::path::Path) -> u64 {
        std::fs::read_dir(p)
            .map(|rd| {
                rd.flatten()
                    .map(|e| {
                        let m = e.metadata().unwrap();
                        if m.is_dir() {
                            walk(&e.path())
                        } else {
                            m.len()
                        }
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    walk(&s.dir.path().join("data/blocks"))
}

pub fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u32).wrapping_mul(2654435761).to_le_bytes()[i % 4] ^ seed)
        .collect()
}

/// A client of `s` with another token.
pub async fn client_with(s: &TestServer, token: &str) -> Client {
    let cfg = ClientConfig::resolve(Some(s.addr.clone()), Some(token.to_string())).unwrap();
    Client::connect(&cfg).await.unwrap()
}
