//! Sessions of mounted clients: each holds a lease renewed by heartbeats
//! and a channel down which the server pushes invalidations. A session whose
//! lease runs out is ended in the metadata store (its open files released),
//! which is also what happens to every session of a crashed client.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use svol_meta::{self as m, Ino, SessionOwner};
use svol_proto as p;
use tokio::sync::{mpsc, watch};
use tonic::{Request, Status, Streaming};

use crate::recall::Recall;
use crate::service::State;

mod holds;

/// Listed entries one session may have watched at once.
const MAX_WATCHED: usize = 1_000_000;

/// What a client says of itself (`host`, `purpose`): shown on pages and
/// in lists, so short and printable.
fn described(field: &str, v: &str) -> Result<String, Status> {
    if v.len() > 256 || v.chars().any(char::is_control) {
        return Err(Status::invalid_argument(format!(
            "Hello.{field} must be at most 256 bytes without control characters"
        )));
    }
    Ok(v.to_string())
}

/// How a session shows in logs: a fingerprint, never the id itself.
pub(crate) fn tag(id: &str) -> String {
    hex::encode(&blake3::hash(id.as_bytes()).as_bytes()[..4])
}

type Down = Result<p::SessionDown, Status>;

struct Live {
    owner: SessionOwner,
    vol: Ino,
    /// The generation whose stream is attached.
    generation: u64,
    tx: Option<mpsc::Sender<Down>>,
    /// Invalidations sent so far (each carries its number).
    seq: u64,
    /// The last one the client says it applied.
    acked: u64,
    /// Some were dropped (queue full): the next one sent says `reset`.
    lost: bool,
    /// Directories whose listing the client keeps (see `recall.rs`), with
    /// the entries handed out in it.
    watched: HashMap<Ino, Vec<Ino>>,
    /// Entry → the watched directories that list it.
    listed_in: HashMap<Ino, Listed>,
    /// The last invalidation whose recall the client has carried out.
    recalled: watch::Sender<u64>,
    /// Directories this session holds (see `holds.rs`).
    held: HashSet<Ino>,
}

/// Where an entry is listed, and the newest change to it the client's
/// listings reflect.
#[derive(Default)]
struct Listed {
    dirs: Vec<Ino>,
    /// The feed position of that change: at least the store's feed head
    /// when the listing was read, then each update's. A change at or
    /// before it cannot be sent as attributes (they could be older than
    /// what the client has): it recalls the listings instead.
    stamp: u64,
}

/// The sessions this server process knows about.
pub(crate) struct Sessions {
    live: Mutex<HashMap<String, Live>>,
    /// Invalidations a client may have unapplied; beyond, they are dropped
    /// and the client is told to drop its caches (never silently stale,
    /// never unbounded memory here for a client that stopped reading).
    cap: u64,
}

impl Sessions {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            live: Mutex::default(),
            cap: cap.max(1) as u64,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Live>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The channel a session's stream reads from: room for the in-flight
    /// cap plus the odd lease acknowledgement.
    pub(crate) fn channel(&self) -> (mpsc::Sender<Down>, mpsc::Receiver<Down>) {
        mpsc::channel(self.cap as usize + 64)
    }

    pub(crate) fn attach(
        &self,
        id: &str,
        owner: SessionOwner,
        vol: Ino,
        generation: u64,
        tx: mpsc::Sender<Down>,
    ) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let seq = live.get(id).map(|l| l.seq).unwrap_or(0);
        live.insert(
            id.to_string(),
            Live {
                owner,
                vol,
                generation,
                tx: Some(tx),
                seq,
                acked: seq,
                // A reconnecting client may have missed pushes meanwhile.
                lost: seq > 0,
                // It dropped its listings when its stream broke; a change
                // waiting on the old stream's recall goes on (the old
                // sender is dropped here).
                watched: HashMap::new(),
                listed_in: HashMap::new(),
                recalled: watch::channel(seq).0,
                held: HashSet::new(),
            },
        );
    }

    /// Starts watching `dir` for session `id` (before its first page is
    /// read): until recalled, another client's change to its names waits
    /// for this session to drop its listing. False if the session has no
    /// stream here to recall through.
    pub(crate) fn watch(&self, id: &str, dir: Ino) -> bool {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        // Held by another: its listing would miss what the holder made
        // ahead (a call recalls the hold first; a watch would outlive it).
        if live.iter().any(|(s, l)| s != id && l.held.contains(&dir)) {
            return false;
        }
        match live.get_mut(id) {
            Some(l) if l.tx.is_some() && l.listed_in.len() < MAX_WATCHED => {
                l.unwatch(dir);
                l.watched.insert(dir, Vec::new());
                true
            }
            _ => false,
        }
    }

    /// Adds the entries of a page just read to `dir`'s watch, if it still
    /// holds: a change to one of them recalls the listing too, or sends
    /// its attributes. `read_at`: the feed head when the page had been
    /// read (or later). Returns the session's invalidations sent so far
    /// (one of them may name an entry changed between the read and now),
    /// or None if the watch is gone.
    pub(crate) fn watch_entries(
        &self,
        id: &str,
        dir: Ino,
        entries: &[Ino],
        read_at: u64,
    ) -> Option<u64> {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let l = live.get_mut(id)?;
        let listed = l.watched.get_mut(&dir)?;
        listed.extend_from_slice(entries);
        for e in entries {
            let at = l.listed_in.entry(*e).or_default();
            at.dirs.push(dir);
            at.stamp = at.stamp.max(read_at);
        }
        Some(l.seq)
    }

    /// The client of session `id` dropped the listings recalled up to
    /// invalidation `seq`.
    pub(crate) fn recalled(&self, id: &str, generation: u64, seq: u64) {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(l) = live.get(id).filter(|l| l.generation == generation) {
            l.recalled.send_if_modified(|v| {
                let newer = seq > *v && seq <= l.seq;
                if newer {
                    *v = seq;
                }
                newer
            });
        }
    }

    /// Owner and volume of a session this process serves.
    pub(crate) fn owner(&self, id: &str) -> Option<(SessionOwner, Ino)> {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.get(id).map(|l| (l.owner, l.vol))
    }

    /// The stream of `generation` ended; the lease may still be renewed
    /// by a reconnect (a newer generation's stream is left alone).
    pub(crate) fn detach(&self, id: &str, generation: u64) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(l) = live.get_mut(id) {
            if l.generation == generation {
                l.tx = None;
                // The client drops its listings when its stream breaks;
                // nothing waits for it to say so.
                l.watched.clear();
                l.listed_in.clear();
                l.drop_holds();
                l.recalled.send_replace(u64::MAX);
            }
        }
    }

    /// Invalidations were lost for everyone (the feed was trimmed past
    /// this server): every session's next push says `reset`, and one is
    /// sent now.
    pub(crate) fn reset_all(&self) {
        let vols: Vec<Ino> = {
            let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
            live.values_mut().for_each(|l| l.lost = true);
            live.values().map(|l| l.vol).collect()
        };
        for vol in vols {
            let _ = self.invalidate(vol, "", p::Invalidation::default(), None);
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

    /// Pushes an invalidation to every session of `vol` except `origin`,
    /// recalling the watched listings of the directories whose names it
    /// changes. Returns the recalls the change must wait for.
    pub(crate) fn invalidate(
        &self,
        vol: Ino,
        origin: &str,
        inv: p::Invalidation,
        change: Option<&svol_meta::ChangeSet>,
    ) -> Vec<Recall> {
        let parents: HashSet<Ino> = inv.entries.iter().map(|e| e.parent).collect();
        let inodes: HashSet<Ino> = inv.inodes.iter().copied().collect();
        let mut recalls = Vec::new();
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        for (id, l) in live.iter_mut() {
            if l.vol != vol || id == origin {
                continue;
            }
            let mut inv = inv.clone();
            let mut dirs: HashSet<Ino> = parents
                .iter()
                .copied()
                .filter(|d| l.watched.contains_key(d))
                .collect();
            for i in &inodes {
                let Some(at) = l.listed_in.get_mut(i) else {
                    continue;
                };
                // Its attributes go instead of a recall if the change is
                // newer than what the listing reflects (its feed position
                // is its place in commit order); only those sent are
                // converted for the wire.
                match change.and_then(|c| Some((c, c.attr(*i)?))) {
                    Some((c, a)) if c.feed > at.stamp => {
                        at.stamp = c.feed;
                        let attr = crate::convert::attr(a);
                        // A small file's new contents go along, so the
                        // client's next open of it needs no round trip.
                        if let Some((_, chunks)) = c.contents.iter().find(|(ino, _)| ino == i) {
                            inv.contents.push(p::Peeked {
                                attr: Some(attr),
                                chunks: chunks.iter().cloned().map(crate::convert::chunk).collect(),
                            });
                        }
                        inv.updated.push(attr);
                    }
                    _ => dirs.extend(at.dirs.iter().copied()),
                }
            }
            inv.recalled = dirs.into_iter().collect();
            inv.recalled.sort_unstable();
            for d in &inv.recalled {
                l.unwatch(*d);
                l.held.remove(d);
            }
            let recall = !inv.recalled.is_empty() || !inv.updated.is_empty();
            if l.seq - l.acked >= self.cap || !send(l, inv) {
                if !l.lost {
                    // Never silently stale: once the client catches up it
                    // is told to drop all its caches.
                    tracing::warn!(session = %tag(id), "client is {} invalidations behind; it will be told to drop its caches", l.seq - l.acked);
                }
                l.lost = true;
                if recall && l.tx.is_some() {
                    // The reset it gets when it catches up is the recall.
                    recalls.push(Recall::new(tag(id), l.recalled.subscribe(), l.seq + 1));
                }
            } else if recall && l.tx.is_some() {
                recalls.push(Recall::new(tag(id), l.recalled.subscribe(), l.seq));
            }
        }
        recalls
    }

    /// The client of session `id` applied invalidations up to `seq`; one
    /// that had fallen behind gets its reset now.
    pub(crate) fn applied(&self, id: &str, generation: u64, seq: u64) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(l) = live.get_mut(id).filter(|l| l.generation == generation) {
            l.acked = l.acked.max(seq.min(l.seq));
            if l.lost && l.seq - l.acked < self.cap {
                send(l, p::Invalidation::default());
            }
        }
    }
}

impl Live {
    /// Ends the watch of `dir` and forgets the entries it listed.
    fn unwatch(&mut self, dir: Ino) {
        for e in self.watched.remove(&dir).unwrap_or_default() {
            if let Some(at) = self.listed_in.get_mut(&e) {
                at.dirs.retain(|d| *d != dir);
                if at.dirs.is_empty() {
                    self.listed_in.remove(&e);
                }
            }
        }
    }
}

/// Sends one invalidation down a session's stream (numbered, and marked
/// `reset` if some were lost before it).
fn send(l: &mut Live, mut inv: p::Invalidation) -> bool {
    let Some(tx) = &l.tx else { return true };
    inv.seq = l.seq + 1;
    inv.reset = l.lost;
    let msg = Ok(p::SessionDown {
        msg: Some(p::session_down::Msg::Invalidation(inv)),
    });
    if tx.try_send(msg).is_err() {
        return false;
    }
    l.seq += 1;
    if l.lost {
        // A reset drops every listing the client has (and it answers
        // `Recalled`), so nothing it watched is watched any more, nor held.
        l.watched.clear();
        l.listed_in.clear();
        l.drop_holds();
    }
    l.lost = false;
    true
}

impl State {
    /// Hello → Welcome, then each heartbeat renews the lease (and is
    /// acknowledged with it) until Bye, the end of the stream, the lease
    /// running out, or the token being revoked.
    pub(crate) async fn open_session(
        &self,
        req: Request<Streaming<p::SessionUp>>,
    ) -> Result<mpsc::Receiver<Down>, Status> {
        // No volume: the header's session (one being resumed, or one that
        // ended) is not checked here but by `resume_session`.
        let c = self.caller(&req, "").await?;
        let peer = req.remote_addr().map(|a| a.to_string()).unwrap_or_default();
        let mut up = req.into_inner();
        let hello = match up.message().await? {
            Some(p::SessionUp {
                msg: Some(p::session_up::Msg::Hello(h)),
            }) => h,
            _ => return Err(Status::invalid_argument("a session starts with Hello")),
        };
        let client = m::SessionClient {
            host: described("host", &hello.host)?,
            purpose: described("purpose", &hello.purpose)?,
            peer,
            started_ms: self.clock.now_ms(),
        };
        let key = hello.volume.clone();
        let vol = self.meta(move |m| m.volume(c.ws, &key)).await?.root;
        let owner = SessionOwner {
            workspace: c.ws,
            token: c.token,
        };
        let lease_ms = self.lease.as_millis() as i64;
        let (id, lease, resumed) = self.take_session(&hello, owner, vol, client).await?;
        let generation = lease.generation;
        let (tx, rx) = self.sessions.channel();
        let welcome = p::Welcome {
            session: id.clone(),
            lease_ms: lease_ms as u64,
            root_ino: vol,
            resumed,
            generation,
        };
        tx.send(Ok(p::SessionDown {
            msg: Some(p::session_down::Msg::Welcome(welcome)),
        }))
        .await
        .map_err(|_| Status::internal("session closed"))?;
        self.sessions
            .attach(&id, owner, vol, generation, tx.clone());
        tracing::debug!(session = %tag(&id), generation, resumed, "session opened");
        let st = self.clone();
        tokio::spawn(async move {
            while let Ok(Some(msg)) = up.message().await {
                let n = match msg.msg {
                    Some(p::session_up::Msg::Heartbeat(h)) => h.n,
                    Some(p::session_up::Msg::Applied(a)) => {
                        st.sessions.applied(&id, generation, a.seq);
                        continue;
                    }
                    Some(p::session_up::Msg::Recalled(r)) => {
                        st.sessions.recalled(&id, generation, r.seq);
                        continue;
                    }
                    Some(p::session_up::Msg::Bye(_)) => {
                        st.end_session(&id).await;
                        return;
                    }
                    _ => continue,
                };
                if let Err(e) = st.grant(c.token) {
                    // A revoked token loses its leases at once.
                    let _ = tx.send(Err(e)).await;
                    st.end_session(&id).await;
                    return;
                }
                let (sid, now) = (id.clone(), st.clock.now_ms());
                match st
                    .meta(move |m| m.renew_session(&sid, generation, now, now + lease_ms))
                    .await
                {
                    Ok(_) => {
                        let ack = p::LeaseAck {
                            n,
                            lease_ms: lease_ms as u64,
                        };
                        let _ = tx.try_send(Ok(p::SessionDown {
                            msg: Some(p::session_down::Msg::Lease(ack)),
                        }));
                    }
                    Err(e) => {
                        // The lease ran out (the client was frozen or cut
                        // off past it) or a newer stream took the session
                        // over: this stream is done, and never revives it.
                        tracing::warn!(session = %tag(&id), "heartbeat refused: {e}");
                        let _ = tx.send(Err(e)).await;
                        st.sessions.detach(&id, generation);
                        return;
                    }
                }
            }
            st.sessions.detach(&id, generation);
        });
        Ok(rx)
    }

    /// The session a Hello gets: the one it asks to resume if that is the
    /// caller's own on this volume and its lease still runs (a new
    /// generation of it), a new one (made here, never by a client)
    /// otherwise. Another client's session is refused.
    async fn take_session(
        &self,
        hello: &p::Hello,
        owner: SessionOwner,
        vol: Ino,
        client: m::SessionClient,
    ) -> Result<(String, m::Lease, bool), Status> {
        let lease_ms = self.lease.as_millis() as i64;
        if !hello.resume_session.is_empty() {
            let (id, now) = (hello.resume_session.clone(), self.clock.now_ms());
            let sid = id.clone();
            match self
                .meta(move |m| m.resume_session(&owner, &sid, vol, now, now + lease_ms))
                .await
            {
                Ok(l) => return Ok((id, l, true)),
                Err(s) if s.code() == tonic::Code::NotFound => {
                    tracing::info!(session = %tag(&id), "lease had run out; the client gets a new session")
                }
                Err(s) if s.code() == tonic::Code::PermissionDenied => {
                    return Err(Status::permission_denied(
                        "that session belongs to another client",
                    ))
                }
                Err(s) => return Err(s),
            }
        }
        let id = format!("se-{}", hex::encode(rand::random::<[u8; 16]>()));
        let (sid, app, until) = (
            id.clone(),
            hello.app.clone(),
            self.clock.now_ms() + lease_ms,
        );
        let l = self
            .meta(move |m| m.open_session(&owner, &sid, vol, &app, &client, until))
            .await?;
        Ok((id, l, false))
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

    async fn end_session(&self, id: &str) {
        self.sessions.forget(id);
        let (sid, now) = (id.to_string(), self.clock.now_ms());
        match self.meta(move |m| m.expire_sessions(now, Some(&sid))).await {
            Ok(out) => {
                self.reap(out.changes.freed.clone());
                let _ = self.publish(id, &out.changes);
            }
            Err(e) => tracing::warn!(session = %tag(id), "ending session: {e}"),
        }
    }
}

impl State {
    /// Ends the sessions whose lease ran out: their locks go (waiters are
    /// woken), their open files are released.
    pub(crate) async fn expire_sessions(&self) {
        let now = self.clock.now_ms();
        match self.meta(move |m| m.expire_sessions(now, None)).await {
            Ok(out) => {
                for id in &out.value {
                    tracing::info!(session = %tag(id), "lease expired; session ended");
                    self.sessions.forget(id);
                }
                self.reap(out.changes.freed.clone());
                let _ = self.publish("", &out.changes);
            }
            Err(e) => tracing::warn!("expiring sessions: {e}"),
        }
    }
}

/// Ends expired sessions, stops idle apps and trims the feed once a second
/// (on one server of a cluster at a time).
pub(crate) fn spawn_reaper(state: Arc<State>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            if !state.leads() {
                continue;
            }
            state.expire_sessions().await;
            state.stop_idle_apps().await;
            state.purge_expired_trash().await;
            state.purge_expired_files().await;
            let meta = state.meta.clone();
            if let Err(e) = tokio::task::block_in_place(|| meta.trim_feed(crate::feed::KEEP)) {
                tracing::warn!("trimming the change feed: {e}");
            }
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
    fn a_client_that_falls_behind_is_told_to_reset_once_it_catches_up() {
        let s = Sessions::new(2);
        let (tx, mut rx) = s.channel();
        let owner = SessionOwner {
            workspace: 1,
            token: [0; 32],
        };
        s.attach("se-a", owner, 9, 1, tx);
        for ino in 1..=3 {
            s.invalidate(9, "se-other", inv(ino), None);
        }
        assert_eq!(
            (got(&mut rx).inodes, got(&mut rx).inodes),
            (vec![1], vec![2])
        );
        assert!(rx.try_recv().is_err(), "the third was past the cap");
        // Still behind: more are dropped, nothing is sent.
        s.invalidate(9, "se-other", inv(4), None);
        assert!(rx.try_recv().is_err());
        // An old stream's acknowledgement counts for nothing.
        s.applied("se-a", 0, 2);
        assert!(rx.try_recv().is_err());
        // The client catches up: it gets a reset at once, without waiting
        // for the next change.
        s.applied("se-a", 1, 2);
        let reset = got(&mut rx);
        assert!(reset.reset, "the client learns it missed some");
        assert_eq!(reset.seq, 3);
        s.applied("se-a", 1, 3);
        s.invalidate(9, "se-other", inv(5), None);
        let next = got(&mut rx);
        assert!(!next.reset);
        assert_eq!((next.seq, next.inodes), (4, vec![5]));
        // The origin of a change is not told about it.
        s.invalidate(9, "se-a", inv(6), None);
        assert!(rx.try_recv().is_err());
    }

    fn entry(parent: u64, name: &str) -> p::Invalidation {
        p::Invalidation {
            entries: vec![p::EntryRef {
                parent,
                name: bytes::Bytes::copy_from_slice(name.as_bytes()),
            }],
            ..Default::default()
        }
    }

    /// The server half of a recall (recall.rs), without a network: a
    /// change to the names of a directory another session watches waits
    /// until that session says it dropped its listing, and only then.
    #[tokio::test]
    async fn a_change_to_a_watched_directory_waits_for_the_recall() {
        let s = Arc::new(Sessions::new(64));
        let owner = SessionOwner {
            workspace: 1,
            token: [0; 32],
        };
        let (tx_b, mut rx_b) = s.channel();
        s.attach("se-b", owner, 9, 1, tx_b);
        let (tx_c, mut rx_c) = s.channel();
        s.attach("se-c", owner, 9, 1, tx_c);
        assert!(s.watch("se-b", 5));
        // Another directory's names, or the watcher's own change: no recall.
        assert!(s.invalidate(9, "se-a", entry(6, "x"), None).is_empty());
        assert!(s.invalidate(9, "se-b", entry(5, "x"), None).is_empty());
        got(&mut rx_b);
        got(&mut rx_c);
        got(&mut rx_c);
        // A's change in 5: B (watching) is recalled, C (not) only told.
        let recalls = s.invalidate(9, "se-a", entry(5, "y"), None);
        assert_eq!(recalls.len(), 1);
        let to_b = got(&mut rx_b);
        assert_eq!(to_b.recalled, vec![5]);
        assert!(got(&mut rx_c).recalled.is_empty());
        let waiting = tokio::spawn(crate::recall::wait(recalls, Duration::from_secs(30)));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            !waiting.is_finished(),
            "returned before B gave the listing back"
        );
        // An older stream's answer counts for nothing.
        s.recalled("se-b", 0, to_b.seq);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        s.recalled("se-b", 1, to_b.seq);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the change goes on once B answered")
            .expect("task");
        // The watch ended with the recall.
        assert!(s.invalidate(9, "se-a", entry(5, "z"), None).is_empty());
        // A watcher whose stream breaks is not waited for.
        assert!(s.watch("se-b", 5));
        let recalls = s.invalidate(9, "se-a", entry(5, "w"), None);
        assert_eq!(recalls.len(), 1);
        s.detach("se-b", 1);
        tokio::time::timeout(
            Duration::from_secs(5),
            crate::recall::wait(recalls, Duration::from_secs(30)),
        )
        .await
        .expect("a detached session releases the wait");
        // An entry of a watched listing changed (attributes only): the
        // listing is recalled as well; an entry of no listing is not.
        let (tx_b, mut rx_b) = s.channel();
        s.attach("se-b", owner, 9, 3, tx_b);
        // (A reattached stream's first message is a reset: it ends every
        // watch, as the client drops every listing.)
        assert!(s.watch("se-b", 5));
        assert!(s.invalidate(9, "se-a", inv(99), None).is_empty());
        assert!(got(&mut rx_b).reset);
        assert!(s.watch_entries("se-b", 5, &[50], 0).is_none());
        assert!(s.watch("se-b", 5));
        let seq = s
            .watch_entries("se-b", 5, &[50, 51], 0)
            .expect("still watched");
        assert_eq!(seq, s.seq("se-b"));
        assert!(s.invalidate(9, "se-a", inv(52), None).is_empty());
        got(&mut rx_b);
        let recalls = s.invalidate(9, "se-a", inv(51), None);
        assert_eq!(recalls.len(), 1);
        assert_eq!(got(&mut rx_b).recalled, vec![5]);
        assert!(
            s.watch_entries("se-b", 5, &[53], 0).is_none(),
            "recalled: no more pages"
        );
        assert!(
            s.invalidate(9, "se-a", inv(50), None).is_empty(),
            "its entries went with it"
        );
        // One that never answers is waited for at most the limit given.
        let (tx_b, _rx_b) = s.channel();
        s.attach("se-b", owner, 9, 4, tx_b);
        assert!(s.watch("se-b", 5));
        let recalls = s.invalidate(9, "se-a", entry(5, "v"), None);
        let t = std::time::Instant::now();
        crate::recall::wait(recalls, Duration::from_millis(300)).await;
        assert!(t.elapsed() >= Duration::from_millis(300));
    }

    /// A change that left `ino` with `mode`, at feed position `stamp`.
    fn changed(stamp: u64, ino: u64, mode: u32) -> svol_meta::ChangeSet {
        let t = svol_meta::Timespec::default();
        let a = svol_meta::Attr {
            ino,
            kind: svol_meta::FileKind::Regular,
            mode,
            uid: 0,
            gid: 0,
            nlink: 1,
            size: 0,
            atime: t,
            mtime: t,
            ctime: t,
            rdev: 0,
            version: 0,
        };
        svol_meta::ChangeSet {
            attrs: vec![a],
            feed: stamp,
            ..Default::default()
        }
    }

    /// A change to the attributes of an entry another session lists sends
    /// that session the new attributes and waits for its answer, its
    /// listing kept; a change older than what the listing reflects (read
    /// after it, or an update already sent) recalls the listing instead,
    /// so a late push never puts old attributes over newer ones.
    #[tokio::test]
    async fn attributes_of_a_listed_entry_are_sent_in_commit_order() {
        let s = Arc::new(Sessions::new(64));
        let owner = SessionOwner {
            workspace: 1,
            token: [0; 32],
        };
        let (tx_b, mut rx_b) = s.channel();
        s.attach("se-b", owner, 9, 1, tx_b);
        assert!(s.watch("se-b", 5));
        // The page was read when the feed stood at 10.
        s.watch_entries("se-b", 5, &[50, 51], 10).expect("watching");
        let recalls = s.invalidate(9, "se-a", inv(50), Some(&changed(12, 50, 0o600)));
        assert_eq!(recalls.len(), 1, "the change waits for B's answer");
        let to_b = got(&mut rx_b);
        assert!(to_b.recalled.is_empty(), "the listing stays");
        assert_eq!(to_b.inodes, vec![50]);
        assert_eq!(to_b.updated.len(), 1);
        assert_eq!((to_b.updated[0].ino, to_b.updated[0].mode), (50, 0o600));
        let waiting = tokio::spawn(crate::recall::wait(recalls, Duration::from_secs(30)));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "went on before B took the update");
        s.recalled("se-b", 1, to_b.seq);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("goes on once B answered")
            .expect("task");
        // A change committed before that one (feed 11), pushed late: not
        // sent as attributes, the listing is recalled.
        s.invalidate(9, "se-a", inv(50), Some(&changed(11, 50, 0o644)));
        let late = got(&mut rx_b);
        assert!(late.updated.is_empty());
        assert_eq!(late.recalled, vec![5]);
        // A listing read after a change (feed 10 ≥ 9): the change, pushed
        // late, recalls it too.
        assert!(s.watch("se-b", 5));
        s.watch_entries("se-b", 5, &[50], 10).expect("watching");
        s.invalidate(9, "se-a", inv(50), Some(&changed(9, 50, 0o640)));
        assert_eq!(got(&mut rx_b).recalled, vec![5]);
        // Without attributes (a change from the feed): recalled.
        assert!(s.watch("se-b", 5));
        s.watch_entries("se-b", 5, &[50], 10).expect("watching");
        s.invalidate(9, "se-a", inv(50), None);
        assert_eq!(got(&mut rx_b).recalled, vec![5]);
    }

    /// Holds (sessions/holds.rs): granted only to a session watching the
    /// directory that nobody else watches; another session's look recalls
    /// the hold and waits until the holder says it landed its creates; a
    /// held directory gives nobody else a watch; the holder's own calls
    /// recall nothing.
    #[tokio::test]
    async fn a_look_into_a_held_directory_waits_for_the_holder() {
        let s = Arc::new(Sessions::new(64));
        let owner = SessionOwner {
            workspace: 1,
            token: [0; 32],
        };
        let (tx_a, mut rx_a) = s.channel();
        s.attach("se-a", owner, 9, 1, tx_a);
        let (tx_b, _rx_b) = s.channel();
        s.attach("se-b", owner, 9, 1, tx_b);
        assert!(!s.hold("se-a", 5), "not without its own watch");
        assert!(s.watch("se-b", 5));
        assert!(s.watch("se-a", 5));
        assert!(!s.hold("se-a", 5), "another session watches it");
        s.invalidate(9, "se-a", entry(5, "x"), None);
        assert!(s.hold("se-a", 5), "B's watch went with the recall");
        assert!(!s.watch("se-b", 5), "held: no watch for B");
        // The holder's own calls, and looks elsewhere, recall nothing.
        assert!(s.recall_holds(9, "se-a", Some(&[5])).is_empty());
        assert!(s.recall_holds(9, "se-b", Some(&[6])).is_empty());
        // B looks in: A is told, and B waits for A's answer.
        let recalls = s.recall_holds(9, "se-b", Some(&[5, 6]));
        assert_eq!(recalls.len(), 1);
        let to_a = got(&mut rx_a);
        assert_eq!(to_a.recalled, vec![5]);
        let waiting = tokio::spawn(crate::recall::wait(recalls, Duration::from_secs(30)));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            !waiting.is_finished(),
            "went on before A landed its creates"
        );
        s.recalled("se-a", 1, to_a.seq);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("B goes on once A answered")
            .expect("task");
        assert!(
            s.recall_holds(9, "se-b", Some(&[5])).is_empty(),
            "hold ended"
        );
        // A directory made under a hold is held from birth; a one-shot
        // client's walk ("" , everything) recalls it; a broken stream ends
        // every hold without a wait.
        s.hold_new("se-a", 7);
        assert!(!s.watch("se-b", 7));
        assert_eq!(s.recall_holds(9, "", None).len(), 1);
        assert_eq!(got(&mut rx_a).recalled, vec![7]);
        s.hold_new("se-a", 8);
        s.detach("se-a", 1);
        assert!(s.recall_holds(9, "se-b", Some(&[8])).is_empty());
    }
}
