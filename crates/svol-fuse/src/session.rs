//! The mount's lease on the server and the invalidations it receives.
//!
//! One long-lived stream: Hello, then a heartbeat every third of the lease.
//! If the stream breaks, it is reopened with the same session id so the
//! server keeps this client's open files. Invalidations are replayed into
//! the kernel from a dedicated thread, because a notification can block
//! while the kernel holds a lock that a request in flight also needs.

use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use futures::StreamExt;
use svol_client::{ClientError, Volume};
use svol_proto as p;

fn stream_of(
    vol: &Volume,
    resume: String,
    every: Duration,
) -> impl futures::Stream<Item = p::SessionUp> + Send + 'static {
    let hello = p::SessionUp {
        msg: Some(p::session_up::Msg::Hello(p::Hello {
            volume: vol.info().id.clone(),
            resume_session: resume,
        })),
    };
    let beats = futures::stream::unfold((), move |_| async move {
        tokio::time::sleep(every).await;
        Some((
            p::SessionUp {
                msg: Some(p::session_up::Msg::Heartbeat(p::Heartbeat {})),
            },
            (),
        ))
    });
    futures::stream::once(async move { hello }).chain(beats)
}

/// Opens the session; returns its id and the receiving end of invalidations.
pub(crate) async fn start(
    vol: Volume,
) -> Result<(String, std_mpsc::Receiver<p::Invalidation>), ClientError> {
    let (tx, rx) = std_mpsc::channel();
    let mut down = vol
        .client()
        .session(stream_of(&vol, String::new(), Duration::from_secs(3)))
        .await?;
    let welcome = match down.message().await? {
        Some(p::SessionDown {
            msg: Some(p::session_down::Msg::Welcome(w)),
        }) => w,
        _ => {
            return Err(ClientError::Internal(
                "server did not welcome the session".into(),
            ))
        }
    };
    vol.client().set_session(&welcome.session);
    let every = Duration::from_millis((welcome.lease_ms / 3).max(200));
    let id = welcome.session.clone();
    let v = vol.clone();
    tokio::spawn(async move {
        loop {
            while let Ok(Some(msg)) = down.message().await {
                if let Some(p::session_down::Msg::Invalidation(inv)) = msg.msg {
                    if tx.send(inv).is_err() {
                        return;
                    }
                }
            }
            tracing::warn!("session stream to the server broke; reconnecting");
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                match v.client().session(stream_of(&v, id.clone(), every)).await {
                    Ok(s) => {
                        down = s;
                        break;
                    }
                    Err(e) => tracing::warn!("reconnecting session: {e}"),
                }
            }
        }
    });
    Ok((welcome.session, rx))
}

/// Replays invalidations into the kernel's caches.
pub(crate) fn spawn_invalidator(
    n: fuser::Notifier,
    rx: std_mpsc::Receiver<p::Invalidation>,
    root: u64,
    on_inode: impl Fn(u64) + Send + 'static,
) {
    use std::os::unix::ffi::OsStrExt;
    let k = move |ino: u64| fuser::INodeNo(if ino == root { 1 } else { ino });
    std::thread::Builder::new()
        .name("svol-inval".into())
        .spawn(move || {
            for inv in rx {
                for e in &inv.entries {
                    let _ = n.inval_entry(k(e.parent), std::ffi::OsStr::from_bytes(&e.name));
                }
                for ino in &inv.inodes {
                    on_inode(*ino);
                    let _ = n.inval_inode(k(*ino), 0, 0);
                }
            }
        })
        .ok();
}
