//! Sessions of mounted clients: each holds a lease renewed by heartbeats
//! and a channel down which the server pushes invalidations. A session whose
//! lease runs out is ended in the metadata store (its open files released),
//! which is also what happens to every session of a crashed client.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use svol_meta::{Ino, MetaError, SessionOwner};
use svol_proto as p;
use tokio::sync::mpsc;
use tonic::{Request, Status, Streaming};

use crate::service::State;

/// How a session shows in logs: a fingerprint, never the id itself.
pub(crate) fn tag(id: &str) -> String {
    hex::encode(&blake3::hash(id.as_bytes()).as_bytes()[..4])
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

type Down = Result<p::SessionDown, Status>;

struct Live {
    owner: SessionOwner,
    vol: Ino,
    tx: Option<mpsc::Sender<Down>>,
    /// Invalidations sent so far (each carries its number).
    seq: u64,
    /// Some were dropped (queue full): the next one sent says `reset`.
    lost: bool,
}

/// The sessions this server process knows about.
#[derive(Default)]
pub(crate) struct Sessions {
    live: Mutex<HashMap<String, Live>>,
}

impl Sessions {
    pub(crate) fn attach(&self, id: &str, owner: SessionOwner, vol: Ino, tx: mpsc::Sender<Down>) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let seq = live.get(id).map(|l| l.seq).unwrap_or(0);
        live.insert(
            id.to_string(),
            Live {
                owner,
                vol,
                tx: Some(tx),
                seq,
                // A reconnecting client may have missed pushes meanwhile.
                lost: seq > 0,
            },
        );
    }

    /// Owner and volume of a session this process serves.
    pub(crate) fn owner(&self, id: &str) -> Option<(SessionOwner, Ino)> {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.get(id).map(|l| (l.owner, l.vol))
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

    /// How many invalidations session `id` has been sent.
    pub(crate) fn seq(&self, id: &str) -> u64 {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.get(id).map(|l| l.seq).unwrap_or(0)
    }

    /// The volume is gone: its sessions' streams end (the clients see an
    /// error on their next call).
    pub(crate) fn end_volume(&self, vol: Ino) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.retain(|_, l| l.vol != vol);
    }

    /// Pushes an invalidation to every session of `vol` except `origin`.
    pub(crate) fn invalidate(&self, vol: Ino, origin: &str, inv: p::Invalidation) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        for (id, l) in live.iter_mut() {
            if l.vol != vol || id == origin {
                continue;
            }
            if let Some(tx) = &l.tx {
                let mut inv = inv.clone();
                inv.seq = l.seq + 1;
                inv.reset = l.lost;
                let msg = Ok(p::SessionDown {
                    msg: Some(p::session_down::Msg::Invalidation(inv)),
                });
                if tx.try_send(msg).is_ok() {
                    l.seq += 1;
                    l.lost = false;
                } else if !l.lost {
                    // Never silently stale: the next push that fits tells
                    // the client to drop all its caches.
                    l.lost = true;
                    tracing::warn!(session = %tag(id), "invalidation queue full; the client will be told to drop its caches");
                }
            }
        }
    }
}

impl State {
    /// Hello → Welcome, then heartbeats renew the lease until Bye, the end
    /// of the stream, or the token being revoked.
    pub(crate) async fn open_session(
        &self,
        req: Request<Streaming<p::SessionUp>>,
    ) -> Result<mpsc::Receiver<Down>, Status> {
        // No volume: the header's session (one being resumed, or one that
        // ended) is not checked here but in `session_id_for`.
        let c = self.caller(&req, "").await?;
        let mut up = req.into_inner();
        let hello = match up.message().await? {
            Some(p::SessionUp {
                msg: Some(p::session_up::Msg::Hello(h)),
            }) => h,
            _ => return Err(Status::invalid_argument("a session starts with Hello")),
        };
        let key = hello.volume.clone();
        let vol = self.meta(move |m| m.volume(c.ws, &key)).await?.root;
        let owner = SessionOwner {
            workspace: c.ws,
            token: c.token,
        };
        let id = self
            .session_id_for(&hello.resume_session, owner, vol)
            .await?;
        let lease_ms = self.lease.as_millis() as i64;
        let (sid, app) = (id.clone(), hello.app.clone());
        self.meta(move |m| m.open_session(&owner, &sid, vol, &app, now_ms() + lease_ms))
            .await?;
        let (tx, rx) = mpsc::channel(4096);
        let welcome = p::Welcome {
            session: id.clone(),
            lease_ms: lease_ms as u64,
            root_ino: vol,
        };
        tx.send(Ok(p::SessionDown {
            msg: Some(p::session_down::Msg::Welcome(welcome)),
        }))
        .await
        .map_err(|_| Status::internal("session closed"))?;
        self.sessions.attach(&id, owner, vol, tx.clone());
        tracing::debug!(session = %tag(&id), "session opened");
        let st = self.clone();
        tokio::spawn(async move {
            while let Ok(Some(msg)) = up.message().await {
                match msg.msg {
                    Some(p::session_up::Msg::Heartbeat(_)) => {}
                    Some(p::session_up::Msg::Bye(_)) => {
                        st.end_session(&id).await;
                        return;
                    }
                    _ => continue,
                }
                if let Err(e) = st.grant(c.token) {
                    // A revoked token loses its leases at once.
                    let _ = tx.send(Err(e)).await;
                    st.end_session(&id).await;
                    return;
                }
                let (sid, app) = (id.clone(), hello.app.clone());
                let renewed = st
                    .meta(move |m| {
                        let until = now_ms() + lease_ms;
                        if m.renew_session(&sid, until)? {
                            Ok(true)
                        } else {
                            m.open_session(&owner, &sid, vol, &app, until)
                                .map(|_| false)
                        }
                    })
                    .await;
                match renewed {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(session = %tag(&id), "heartbeat after the lease ran out; session renewed empty")
                    }
                    Err(e) => {
                        // The volume or the app is gone.
                        let _ = tx.send(Err(e)).await;
                        st.end_session(&id).await;
                        return;
                    }
                }
            }
            st.sessions.detach(&id);
        });
        Ok(rx)
    }

    /// The id a Hello gets: the session it asks to resume if that is the
    /// caller's own on this volume and still alive, a new one (made here,
    /// never by a client) otherwise. Another client's session is refused.
    async fn session_id_for(
        &self,
        resume: &str,
        owner: SessionOwner,
        vol: Ino,
    ) -> Result<String, Status> {
        if !resume.is_empty() {
            let id = resume.to_string();
            match tokio::task::block_in_place(|| self.meta.session(&id)) {
                Ok(s) if s.owner == owner && s.volume == vol => return Ok(id),
                Ok(_) => {
                    return Err(Status::permission_denied(
                        "that session belongs to another client",
                    ))
                }
                Err(MetaError::NotFound(_)) => {
                    tracing::info!(session = %tag(&id), "lease had run out; the client gets a new session")
                }
                Err(e) => return Err(crate::convert::status(e)),
            }
        }
        Ok(format!("se-{}", hex::encode(rand::random::<[u8; 16]>())))
    }

    /// Checks that a request's session header names a live session of the
    /// caller (and of the request's volume): a session id is no password,
    /// and one that is not the caller's is refused.
    pub(crate) async fn check_session(
        &self,
        id: &str,
        owner: SessionOwner,
        vol: Ino,
    ) -> Result<(), Status> {
        let found = match self.sessions.owner(id) {
            Some(x) => Some(x),
            None => {
                let sid = id.to_string();
                match self.meta(move |m| m.session(&sid)).await {
                    Ok(s) => Some((s.owner, s.volume)),
                    Err(_) => None,
                }
            }
        };
        match found {
            Some((o, v)) if o == owner && v == vol => Ok(()),
            _ => Err(Status::failed_precondition(
                "unknown or foreign session: the mount's lease has ended",
            )),
        }
    }

    /// What this process keeps for a session that ended: its stream and
    /// its locks (the metadata side is `expire_sessions`).
    fn forget_session(&self, id: &str) {
        self.sessions.forget(id);
        self.locks.release_session(id);
    }

    async fn end_session(&self, id: &str) {
        self.forget_session(id);
        let sid = id.to_string();
        match self
            .meta(move |m| m.expire_sessions(now_ms(), Some(&sid)))
            .await
        {
            Ok(out) => self.reap(out.freed),
            Err(e) => tracing::warn!(session = %tag(id), "ending session: {e}"),
        }
    }
}

/// Ends expired sessions and stops idle apps once a second.
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
                        tracing::info!(session = %tag(id), "lease expired; session ended");
                        state.forget_session(id);
                    }
                    state.reap(out.freed);
                }
                Ok(Err(e)) => tracing::warn!("expiring sessions: {e}"),
                Err(e) => tracing::warn!("expiring sessions: {e}"),
            }
            state.stop_idle_apps().await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv(ino: u64) -> p::Invalidation {
        p::Invalidation {
            inodes: vec![ino],
            ..Default::default()
        }
    }

    fn got(rx: &mut mpsc::Receiver<Down>) -> p::Invalidation {
        match rx.try_recv() {
            Ok(Ok(p::SessionDown {
                msg: Some(p::session_down::Msg::Invalidation(i)),
            })) => i,
            _ => panic!("no invalidation queued"),
        }
    }

    #[test]
    fn an_overflowing_queue_ends_in_a_reset_not_silence() {
        let s = Sessions::default();
        let (tx, mut rx) = mpsc::channel(2);
        let owner = SessionOwner {
            workspace: 1,
            token: [0; 32],
        };
        s.attach("se-a", owner, 9, tx);
        for ino in 1..=3 {
            s.invalidate(9, "se-other", inv(ino));
        }
        assert_eq!(
            (got(&mut rx).inodes, got(&mut rx).inodes),
            (vec![1], vec![2])
        );
        assert!(rx.try_recv().is_err(), "the third did not fit");
        s.invalidate(9, "se-other", inv(4));
        let next = got(&mut rx);
        assert!(next.reset, "the client learns it missed some");
        assert_eq!(next.seq, 3);
        s.invalidate(9, "se-other", inv(5));
        assert!(!got(&mut rx).reset);
        // The origin of a change is not told about it.
        s.invalidate(9, "se-a", inv(6));
        assert!(rx.try_recv().is_err());
    }
}
