//! Sessions of mounted clients: each holds a lease renewed by heartbeats
//! and a channel down which the server pushes invalidations. A session whose
//! lease runs out is ended in the metadata store (its open files released),
//! which is also what happens to every session of a crashed client.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use svol_meta::Ino;
use svol_proto as p;
use tokio::sync::mpsc;

use crate::service::State;

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

struct Live {
    vol: Ino,
    tx: Option<mpsc::Sender<p::SessionDown>>,
}

/// The sessions this server process knows about.
#[derive(Default)]
pub(crate) struct Sessions {
    live: Mutex<HashMap<String, Live>>,
}

impl Sessions {
    pub(crate) fn attach(&self, id: &str, vol: Ino, tx: mpsc::Sender<p::SessionDown>) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.insert(id.to_string(), Live { vol, tx: Some(tx) });
    }

    /// The stream ended; the lease may still be renewed by a reconnect.
    pub(crate) fn detach(&self, id: &str) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(l) = live.get_mut(id) {
            l.tx = None;
        }
    }

    pub(crate) fn forget(&self, id: &str) {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    /// Pushes an invalidation to every session of `vol` except `origin`.
    pub(crate) fn invalidate(&self, vol: Ino, origin: &str, inv: p::Invalidation) {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        for (id, l) in live.iter() {
            if l.vol != vol || id == origin {
                continue;
            }
            if let Some(tx) = &l.tx {
                let msg = p::SessionDown {
                    msg: Some(p::session_down::Msg::Invalidation(inv.clone())),
                };
                if tx.try_send(msg).is_err() {
                    tracing::warn!(session = %id, "invalidation queue full; client will rely on attribute timeouts");
                }
            }
        }
    }
}

/// Ends expired sessions once a second.
pub(crate) fn spawn_reaper(state: Arc<State>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let meta = state.meta.clone();
            let res =
                tokio::task::spawn_blocking(move || meta.expire_sessions(now_ms(), None)).await;
            match res {
                Ok(Ok(out)) => {
                    for id in &out.value {
                        tracing::info!(session = %id, "lease expired; session ended");
                        state.sessions.forget(id);
                    }
                    state.reap(out.freed);
                }
                Ok(Err(e)) => tracing::warn!("expiring sessions: {e}"),
                Err(e) => tracing::warn!("expiring sessions: {e}"),
            }
        }
    });
}
