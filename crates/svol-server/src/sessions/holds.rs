//! Holds: a session may hold a directory whose listing it watches, and
//! then create there before the server knows (its mount answers the
//! application at once and sends the creates in batches, `Apply`). The
//! price is paid by everyone else: any other client's call that looks
//! into a held directory — a lookup or listing in it, a create, unlink or
//! rename there, its attributes — first recalls the hold, and the holder
//! sends what it made before it answers `Recalled`. So a name created on
//! one mount is visible on another before that other's call is answered,
//! even though the creator's call returned before the server knew.
//!
//! A hold is granted only if no other session watches or holds the
//! directory, and only by a server alone on its store (servers sharing a
//! store could not recall each other's sessions). A directory a holder
//! creates is held by it from birth: nobody else can have looked into it.
//! A hold ends with its recall, the session's stream, or a reset.

use std::collections::HashSet;

use svol_meta::Ino;
use svol_proto as p;

use super::{send, tag, Live, Sessions};
use crate::recall::Recall;

impl Sessions {
    /// Grants session `id` a hold on `dir`, if it watches `dir`'s listing
    /// and no other session watches or holds it.
    pub(crate) fn hold(&self, id: &str, dir: Ino) -> bool {
        let mut live = self.lock();
        let taken = live
            .iter()
            .any(|(s, l)| s != id && (l.watched.contains_key(&dir) || l.held.contains(&dir)));
        match live.get_mut(id) {
            Some(l) if !taken && l.tx.is_some() && l.watched.contains_key(&dir) => {
                l.held.insert(dir);
                true
            }
            _ => false,
        }
    }

    /// Directory `dir` was just made by session `id` under a hold: held
    /// (and its empty listing watched) from birth.
    pub(crate) fn hold_new(&self, id: &str, dir: Ino) {
        let mut live = self.lock();
        if let Some(l) = live.get_mut(id).filter(|l| l.tx.is_some()) {
            l.watched.entry(dir).or_default();
            l.held.insert(dir);
        }
    }

    /// Does a session other than `origin` hold a directory of `vol`?
    pub(crate) fn others_hold(&self, vol: Ino, origin: &str) -> bool {
        self.lock()
            .iter()
            .any(|(id, l)| l.vol == vol && id != origin && !l.held.is_empty())
    }

    /// Before a call of `origin` (a session, or "" for a one-shot client)
    /// that looks into `inos` (all of volume `vol` if None): recalls the
    /// holds other sessions have on them. Returns the recalls to wait for.
    pub(crate) fn recall_holds(&self, vol: Ino, origin: &str, inos: Option<&[Ino]>) -> Vec<Recall> {
        let mut live = self.lock();
        let mut recalls = Vec::new();
        for (id, l) in live.iter_mut() {
            if l.vol != vol || id == origin || l.held.is_empty() {
                continue;
            }
            let dirs: Vec<Ino> = match inos {
                Some(inos) => inos
                    .iter()
                    .copied()
                    .filter(|i| l.held.contains(i))
                    .collect(),
                None => l.held.iter().copied().collect(),
            };
            if dirs.is_empty() {
                continue;
            }
            for d in &dirs {
                l.held.remove(d);
                l.unwatch(*d);
            }
            if l.tx.is_none() {
                continue;
            }
            let inv = p::Invalidation {
                recalled: dirs,
                ..Default::default()
            };
            // A full queue: the reset the client gets later drops all it
            // holds, and is what this waits for.
            let seq = if send(l, inv) {
                l.seq
            } else {
                l.lost = true;
                l.seq + 1
            };
            recalls.push(Recall::new(tag(id), l.recalled.subscribe(), seq));
        }
        recalls
    }
}

impl Live {
    /// Every hold ends (the stream broke, or the client drops all).
    pub(super) fn drop_holds(&mut self) {
        self.held = HashSet::new();
    }
}
