//! Closes reach the server in batches. A release is not on the
//! application's path (the kernel sends it after `close` has returned), but
//! each one is a write transaction on the server; sent one by one they cost
//! as much server time as the creates they follow. Whatever accumulates
//! while one batch is in flight goes out as the next, so a lone close is
//! sent at once and a burst costs one call per batch.

use std::sync::Arc;

use svol_sdk::Volume;
use tokio::sync::mpsc;

use crate::lease::LeaseState;

/// The most opens one call releases (the server's bound too).
const BATCH: usize = 4096;

pub(crate) struct Releases {
    tx: mpsc::UnboundedSender<(u64, u64)>,
}

impl Releases {
    /// Starts the sender on the current runtime.
    pub(crate) fn start(vol: Volume, lease: Arc<LeaseState>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(send_batches(rx, vol, lease));
        Self { tx }
    }

    /// Releases one open of `ino`, made under session epoch `epoch`.
    pub(crate) fn push(&self, ino: u64, epoch: u64) {
        let _ = self.tx.send((ino, epoch));
    }
}

async fn send_batches(
    mut rx: mpsc::UnboundedReceiver<(u64, u64)>,
    vol: Volume,
    lease: Arc<LeaseState>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        // Opens of a lost session were released when it ended.
        let epoch = lease.epoch();
        let inos: Vec<u64> = batch
            .into_iter()
            .filter(|(_, e)| *e == epoch)
            .map(|(ino, _)| ino)
            .collect();
        if inos.is_empty() {
            continue;
        }
        if let Err(e) = vol.release_many(inos).await {
            // The session's end releases them all on the server anyway.
            tracing::warn!("releasing closed files: {e}");
        }
    }
}
