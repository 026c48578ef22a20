//! Round-trip time of the cheapest metadata calls, without FUSE: the
//! floor every mount operation pays. `cargo run --release -p svol-sdk
//! --example rpcbench -- VOLUME [N]` (server and token from the usual
//! client configuration).
use std::time::Instant;

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let name = args.get(1).ok_or("usage: rpcbench VOLUME [N]")?;
    let n: u32 = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(5000);
    let cfg = svol_sdk::ClientConfig::resolve(None, None)?;
    let client = svol_sdk::Client::connect(&cfg).await?;
    let vol = client.volume(name).await?;
    let root = vol.info().root_ino;
    let t = Instant::now();
    for i in 0..n {
        let _ = vol.lookup(root, format!("nx{i}").as_bytes()).await;
    }
    let us = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    println!("negative lookup: {us:.1} us per call");
    let t = Instant::now();
    for _ in 0..n {
        vol.getattr(root).await?;
    }
    let us = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    println!("getattr: {us:.1} us per call");
    Ok(())
}
