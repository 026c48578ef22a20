//! Tails the change feed in the metadata store and pushes what it says to
//! this server's own sessions: invalidations to the mounts of the volume
//! (all but the one that made the change), wake-ups to lock waiters, the
//! end of the sessions of a deleted volume. The feed table is the truth;
//! a doorbell (rung when someone must know the tailer has caught up, as a
//! lock grant must) and a once-a-second look for changes other processes
//! made only say when to read it.
//!
//! A change this server made is pushed to its own sessions at once, before
//! the call returns (`State::publish`), and the tailer then skips it; so
//! invalidations reach local mounts as fast as without a feed.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use svol_meta::{self as m, FeedEntry, Ino};
use svol_proto as p;
use tokio::sync::{watch, Notify};

use crate::recall::Recall;
use crate::service::State;

/// Entries the tailer reads per batch.
const PAGE: usize = 1024;
/// Entries kept in the feed for servers that fell behind; one further
/// behind resets its sessions' caches.
pub(crate) const KEEP: u64 = 100_000;

pub(crate) struct Feed {
    doorbell: Notify,
    /// Position up to which every entry has been pushed to local sessions.
    applied: watch::Sender<u64>,
    /// Entries already pushed by the call that made them.
    pushed: Mutex<BTreeSet<u64>>,
    /// Lock waiters by file, woken when the feed says its locks changed.
    waiters: Mutex<HashMap<Ino, Arc<Notify>>>,
}

fn guard<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Feed {
    pub(crate) fn new(head: u64) -> Self {
        Self {
            doorbell: Notify::new(),
            applied: watch::channel(head).0,
            pushed: Mutex::default(),
            waiters: Mutex::default(),
        }
    }

    /// Position up to which every entry has been pushed (metrics: the
    /// store's head less this is the lag).
    pub(crate) fn seen(&self) -> u64 {
        *self.applied.borrow()
    }

    pub(crate) fn ring(&self) {
        self.doorbell.notify_one();
    }

    /// Records that the call which made entry `seq` pushed it itself.
    pub(crate) fn pushed(&self, seq: u64) {
        if seq > *self.applied.borrow() {
            guard(&self.pushed).insert(seq);
        }
    }

    /// Waits until every entry up to `seq` has been pushed to this
    /// server's sessions (at most `limit`).
    pub(crate) async fn caught_up(&self, seq: u64, limit: Duration) {
        let mut rx = self.applied.subscribe();
        self.ring();
        let _ = tokio::time::timeout(limit, rx.wait_for(|p| *p >= seq)).await;
    }

    /// The wake-up of waiters on `ino`.
    pub(crate) fn waiter(&self, ino: Ino) -> Arc<Notify> {
        guard(&self.waiters).entry(ino).or_default().clone()
    }

    /// A waiter on `ino` is done; its wake-up goes when nobody else waits.
    pub(crate) fn done_waiting(&self, ino: Ino) {
        let mut w = guard(&self.waiters);
        if w.get(&ino).is_some_and(|n| Arc::strong_count(n) == 1) {
            w.remove(&ino);
        }
    }

    pub(crate) fn wake(&self, ino: Ino) {
        if let Some(n) = guard(&self.waiters).get(&ino) {
            n.notify_waiters();
        }
    }
}

/// The invalidation a change means for the other mounts of its volume.
pub(crate) fn invalidation(inodes: &[Ino], entries: &[(Ino, Vec<u8>)]) -> p::Invalidation {
    p::Invalidation {
        inodes: inodes.to_vec(),
        entries: entries
            .iter()
            .map(|(parent, name)| p::EntryRef {
                parent: *parent,
                name: Bytes::copy_from_slice(name),
            })
            .collect(),
        ..Default::default()
    }
}

impl State {
    /// Pushes a change this server just made to its own sessions and
    /// wakes its lock waiters; other servers learn it from the feed.
    /// Returns the recalls of watched listings the change must wait for
    /// before it returns (see `recall.rs`).
    pub(crate) fn publish(&self, origin: &str, ch: &m::ChangeSet) -> Vec<Recall> {
        let mut recalls = Vec::new();
        if ch.volume != 0 {
            let inodes: Vec<Ino> = ch
                .attrs
                .iter()
                .map(|a| a.ino)
                .filter(|i| !ch.created.contains(i))
                .chain(ch.gone.iter().copied())
                .collect();
            if !inodes.is_empty() || !ch.entries.is_empty() {
                recalls = self.sessions.invalidate(
                    ch.volume,
                    origin,
                    invalidation(&inodes, &ch.entries),
                    (ch.feed != 0).then_some(ch),
                );
            }
        }
        for ino in &ch.unlocked {
            self.feed.wake(*ino);
        }
        for vol in &ch.deleted_volumes {
            self.sessions.end_volume(*vol);
        }
        if ch.feed != 0 {
            self.feed.pushed(ch.feed);
        }
        // No doorbell: this change is pushed already; the tailer's next
        // look (a lock grant rings it, or the once-a-second tick) steps
        // over it without a read per change.
        recalls
    }

    fn apply(&self, e: &FeedEntry) {
        if e.volume_deleted {
            self.sessions.end_volume(e.volume);
            self.auth.forget_volumes();
        }
        if !e.inodes.is_empty() || !e.entries.is_empty() {
            // Servers sharing a store grant no watches: nothing to recall.
            let _ = self.sessions.invalidate(
                e.volume,
                &e.origin,
                invalidation(&e.inodes, &e.entries),
                None,
            );
        }
        for ino in &e.unlocked {
            self.feed.wake(*ino);
        }
    }

    /// Reads what the feed has after `pos` and applies it; returns the new
    /// position.
    fn tail_once(&self, mut pos: u64) -> m::Result<u64> {
        loop {
            let page = self.meta.feed_since(pos, PAGE)?;
            if page.gap {
                tracing::warn!("the change feed was trimmed past this server's position; every mount drops its caches");
                self.sessions.reset_all();
            }
            let n = page.entries.len();
            for e in &page.entries {
                let mine = guard(&self.feed.pushed).remove(&e.seq);
                if !mine {
                    self.apply(e);
                }
                pos = e.seq;
            }
            if n < PAGE {
                pos = pos.max(page.head);
                break;
            }
        }
        guard(&self.feed.pushed).retain(|s| *s > pos);
        Ok(pos)
    }
}

/// Rings the tailer's doorbell whenever the store's rings: another server
/// changed something. Notifications sent while the connection is down are
/// lost; the tailer's once-a-second look covers them.
fn spawn_store_doorbell(state: Arc<State>) {
    if !state.meta.shared() {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("svol-feed-doorbell".into())
        .spawn(move || {
            let mut bell = None;
            loop {
                if bell.is_none() {
                    match state.meta.doorbell() {
                        Ok(b) => bell = b,
                        Err(e) => {
                            tracing::warn!("listening for the change feed: {e}");
                            std::thread::sleep(Duration::from_secs(1));
                            continue;
                        }
                    }
                }
                let Some(b) = bell.as_mut() else { return };
                match b.wait(Duration::from_secs(5)) {
                    Ok(true) => state.feed.ring(),
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!("listening for the change feed: {e}");
                        bell = None;
                        state.feed.ring();
                    }
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("no doorbell for the change feed (it is read every second): {e}");
    }
}

pub(crate) fn spawn_tailer(state: Arc<State>) {
    spawn_store_doorbell(state.clone());
    tokio::spawn(async move {
        let mut pos = *state.feed.applied.borrow();
        loop {
            tokio::select! {
                _ = state.feed.doorbell.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            match tokio::task::block_in_place(|| state.tail_once(pos)) {
                Ok(p) => {
                    pos = p;
                    state.feed.applied.send_replace(pos);
                }
                Err(e) => tracing::warn!("reading the change feed: {e}"),
            }
        }
    });
}
