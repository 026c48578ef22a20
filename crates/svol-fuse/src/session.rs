//! The mount's lease on the server and the invalidations it receives.
//!
//! One long-lived stream: Hello, then a heartbeat every third of the lease.
//! If the stream breaks, it is reopened with the same session id so the
//! server keeps this client's open files. Invalidations are replayed into
//! the kernel from a dedicated thread, because a notification can block
//! while the kernel holds a lock that a request in flight also needs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use svol_sdk::{ClientError, Invalidation, SessionDown, SessionUp, Volume};
use tokio::sync::{oneshot, watch};

use crate::ahead::Ahead;
use crate::lease::LeaseState;
use crate::listings::Listings;
use crate::peeks::Peeks;

/// The mount's creates made ahead, once it has them (made after the
/// session, which they need).
pub(crate) type AheadSlot = Arc<std::sync::OnceLock<Arc<Ahead>>>;

/// What each (re)opened stream of the session sends from.
#[derive(Clone)]
struct Upstream {
    every_ms: Arc<AtomicU64>,
    bye: watch::Receiver<bool>,
    lease: Arc<LeaseState>,
    /// Invalidations applied to the kernel (acknowledged lazily).
    applied: watch::Receiver<u64>,
    /// Recalls carried out (acknowledged at once: a change waits).
    recalled: watch::Receiver<u64>,
}

/// Who the session is for: the app its lease keeps running ("" = the
/// volume's) and what the mount is for, as people will see it listed.
#[derive(Clone)]
pub(crate) struct Describe {
    pub app: String,
    pub purpose: String,
}

/// This host's name, as the server lists the client (truncated to what
/// the server takes).
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into `buf`.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end])
        .chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect()
}

/// `s` cut to at most 256 bytes on a character boundary, without control
/// characters (the server refuses longer or unprintable descriptions).
fn printable(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > 256 {
            break;
        }
        out.push(c);
    }
    out
}

/// Hello, then a heartbeat every `every_ms` until `bye` turns true, then
/// Bye; acknowledgements of invalidations and recalls in between.
fn stream_of(
    vol: &Volume,
    resume: String,
    who: Describe,
    up: Upstream,
) -> impl futures::Stream<Item = SessionUp> + Send + 'static {
    let Upstream {
        every_ms,
        bye,
        lease,
        applied,
        recalled,
    } = up;
    static BEATS: AtomicU64 = AtomicU64::new(0);
    let hello = SessionUp::Hello {
        volume: vol.info().id.clone(),
        resume_session: resume,
        app: who.app,
        host: host_name(),
        purpose: printable(&who.purpose),
    };
    // Acknowledges applied invalidations (coalesced: only the latest), so
    // the server knows how far behind this mount is.
    let acks = futures::stream::unfold(
        (applied, bye.clone()),
        |(mut applied, mut bye)| async move {
            tokio::select! {
                r = applied.changed() => r.ok()?,
                _ = bye.changed() => return None,
            }
            // One acknowledgement covers what arrives meanwhile: a busy
            // volume costs one message per 10 ms, not one per change.
            tokio::time::sleep(Duration::from_millis(10)).await;
            let seq = *applied.borrow_and_update();
            Some((SessionUp::Applied(seq), (applied, bye)))
        },
    );
    let recalls = futures::stream::unfold(
        (recalled, bye.clone()),
        |(mut recalled, mut bye)| async move {
            tokio::select! {
                r = recalled.changed() => r.ok()?,
                _ = bye.changed() => return None,
            }
            let seq = *recalled.borrow_and_update();
            Some((SessionUp::Recalled(seq), (recalled, bye)))
        },
    );
    let beats = futures::stream::unfold(Some(bye), move |bye| {
        let every_ms = every_ms.clone();
        let lease = lease.clone();
        async move {
            let mut bye = bye?;
            let wait = Duration::from_millis(every_ms.load(Ordering::Relaxed));
            let leaving = *bye.borrow()
                || tokio::select! {
                    _ = tokio::time::sleep(wait) => false,
                    r = bye.changed() => r.is_ok() && *bye.borrow(),
                };
            let msg = if leaving {
                SessionUp::Bye
            } else {
                let n = BEATS.fetch_add(1, Ordering::Relaxed) + 1;
                lease.sending(n);
                SessionUp::Heartbeat(n)
            };
            Some((msg, (!leaving).then_some(bye)))
        }
    });
    futures::stream::once(async move { hello }).chain(futures::stream::select(
        beats,
        futures::stream::select(acks, recalls),
    ))
}

/// The mount's lease. [`Lease::close`] ends it at once instead of letting
/// it run out, so an app waiting on this client can stop without delay.
pub(crate) struct Lease {
    bye: watch::Sender<bool>,
    closed: Option<oneshot::Receiver<()>>,
}

impl Lease {
    pub(crate) async fn close(mut self) {
        let _ = self.bye.send(true);
        if let Some(rx) = self.closed.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), rx).await;
        }
    }
}

/// Opens the session; returns its id, the lease, what the mount may do
/// under it, and the receiving end of invalidations. `app`: the app this
/// mount works for ("" = the volume's).
pub(crate) async fn start(
    vol: Volume,
    who: Describe,
    applied: watch::Receiver<u64>,
    listings: Arc<Listings>,
    peeks: Arc<Peeks>,
    ahead: AheadSlot,
) -> Result<
    (
        String,
        Lease,
        Arc<LeaseState>,
        std_mpsc::Receiver<Invalidation>,
    ),
    ClientError,
> {
    let (tx, rx) = std_mpsc::channel();
    let (bye_tx, bye_rx) = watch::channel(false);
    let (closed_tx, closed_rx) = oneshot::channel();
    // Until the server names the lease, beat often enough for any lease.
    let every_ms = Arc::new(AtomicU64::new(1000));
    let hello_at = Instant::now();
    let state = Arc::new(LeaseState::new(hello_at, 0));
    let (recalled_tx, recalled) = watch::channel(0u64);
    let upstream = Upstream {
        every_ms: every_ms.clone(),
        bye: bye_rx.clone(),
        lease: state.clone(),
        applied,
        recalled,
    };
    let mut down = vol
        .client()
        .session(stream_of(
            &vol,
            String::new(),
            who.clone(),
            upstream.clone(),
        ))
        .await?;
    let welcome = match down.message().await? {
        Some(SessionDown::Welcome(w)) => w,
        _ => {
            return Err(ClientError::Internal(
                "server did not welcome the session".into(),
            ))
        }
    };
    vol.client().set_session(&welcome.session);
    every_ms.store((welcome.lease_ms / 3).max(200), Ordering::Relaxed);
    state.welcomed(hello_at, welcome.lease_ms);
    let mut id = welcome.session.clone();
    let v = vol.clone();
    let st = state.clone();
    let acks = spawn_recall_acks(recalled_tx, ahead.clone());
    tokio::spawn(async move {
        loop {
            loop {
                match down.message().await {
                    Ok(Some(msg)) => {
                        let mut inv = match msg {
                            SessionDown::Invalidation(inv) => {
                                crate::metrics::add(&crate::metrics::INVALIDATIONS, 1);
                                inv
                            }
                            SessionDown::Lease { n, lease_ms } => {
                                st.acked(n, lease_ms);
                                continue;
                            }
                            SessionDown::Welcome(_) => continue,
                        };
                        // Listings first, and said so at once: the change
                        // that recalls them is waiting (see listings.rs).
                        if inv.reset {
                            listings.clear();
                        }
                        let parents = inv.entries.iter().map(|e| e.0);
                        listings.recall(inv.recalled.iter().copied().chain(parents));
                        // Contents before the attributes that name their
                        // version: an open between the two asks the server.
                        peeks.keep(std::mem::take(&mut inv.contents));
                        listings.changed(&inv.inodes, &inv.updated);
                        listings.processed(inv.seq);
                        if inv.reset || !inv.recalled.is_empty() || !inv.updated.is_empty() {
                            // Holds end here, before anything else can be
                            // made ahead in those directories.
                            let land = ahead
                                .get()
                                .is_some_and(|a| a.recalled(&inv.recalled, inv.reset));
                            let _ = acks.send((inv.seq, land));
                        }
                        if tx.send(inv).is_err() {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        if matches!(e, ClientError::Fs(svol_sdk::FsErrno::Fenced, _)) {
                            // Nothing more goes out under this session.
                            st.refused();
                        }
                        tracing::warn!("session: {e}");
                        break;
                    }
                }
            }
            // Nothing recalls a listing while the stream is down; the
            // server dropped this session's holds with it.
            listings.clear();
            if let Some(a) = ahead.get() {
                a.lost_holds();
            }
            if *bye_rx.borrow() {
                let _ = closed_tx.send(());
                return;
            }
            tracing::warn!("session stream to the server broke; reconnecting");
            loop {
                // A server that died refuses at once: move on to another
                // of the cluster's (with one server, this only waits).
                let epoch = v.client().epoch();
                tokio::time::sleep(Duration::from_millis(100)).await;
                let hello_at = Instant::now();
                let up = stream_of(&v, id.clone(), who.clone(), upstream.clone());
                let mut s = match v.client().session(up).await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!("reconnecting session: {e}");
                        v.client().fail_over(epoch).await;
                        continue;
                    }
                };
                match s.message().await {
                    Ok(Some(SessionDown::Welcome(w))) => {
                        // Pushes made while the stream was down are lost.
                        let _ = tx.send(Invalidation {
                            reset: true,
                            ..Default::default()
                        });
                        if !w.resumed || w.session != id {
                            // The old lease ran out: the server made a new
                            // session; the old one's open files and locks
                            // are gone, and its handles are fenced.
                            tracing::warn!("the lease had expired; continuing with a new session (files open under the old one fail with EIO)");
                            id = w.session;
                            listings.renumbered();
                            if let Some(a) = ahead.get() {
                                a.new_session();
                            }
                            v.client().set_session(&id);
                            st.replaced(hello_at);
                        } else {
                            st.welcomed(hello_at, w.lease_ms);
                        }
                        down = s;
                        break;
                    }
                    Ok(_) => {
                        tracing::warn!("reconnecting session: no welcome");
                        v.client().fail_over(epoch).await;
                    }
                    Err(e) => {
                        tracing::warn!("reconnecting session: {e}");
                        v.client().fail_over(epoch).await;
                    }
                }
            }
        }
    });
    let lease = Lease {
        bye: bye_tx,
        closed: Some(closed_rx),
    };
    Ok((welcome.session, lease, state, rx))
}

/// Answers recalls in the order they came: one that ended a hold first
/// lands what was made ahead (a later answer covers the earlier ones, so
/// none may overtake it).
fn spawn_recall_acks(
    recalled_tx: watch::Sender<u64>,
    ahead: AheadSlot,
) -> tokio::sync::mpsc::UnboundedSender<(u64, bool)> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, bool)>();
    tokio::spawn(async move {
        while let Some((seq, land)) = rx.recv().await {
            if land {
                if let Some(a) = ahead.get() {
                    if let Err(e) = a.settle().await {
                        tracing::warn!("landing creates made ahead for a recall: {e}");
                    }
                }
            }
            recalled_tx.send_replace(seq);
        }
    });
    tx
}

/// Replays invalidations into the kernel's caches.
pub(crate) fn spawn_invalidator(
    n: fuser::Notifier,
    rx: std_mpsc::Receiver<Invalidation>,
    root: u64,
    on_inode: impl Fn(Option<u64>) -> Vec<u64> + Send + 'static,
    locks: Arc<crate::locks::LockState>,
) {
    use std::os::unix::ffi::OsStrExt;
    let k = move |ino: u64| fuser::INodeNo(if ino == root { 1 } else { ino });
    std::thread::Builder::new()
        .name("svol-inval".into())
        .spawn(move || {
            for inv in rx {
                if inv.reset {
                    // Some invalidations never arrived: trust nothing cached
                    // (the kernel's entries and attributes live one second).
                    tracing::warn!("invalidations were lost; dropping caches");
                    for ino in on_inode(None) {
                        let _ = n.inval_inode(k(ino), 0, 0);
                    }
                }
                for (parent, name) in &inv.entries {
                    let _ = n.inval_entry(k(*parent), std::ffi::OsStr::from_bytes(name));
                }
                for ino in &inv.inodes {
                    let _ = on_inode(Some(*ino));
                    let _ = n.inval_inode(k(*ino), 0, 0);
                }
                // A lock grant waits for this (see locks.rs), and the
                // server for the acknowledgement.
                let seq = locks
                    .applied
                    .fetch_max(inv.seq, Ordering::Release)
                    .max(inv.seq);
                locks.applied_watch.send_replace(seq);
            }
        })
        .ok();
}
