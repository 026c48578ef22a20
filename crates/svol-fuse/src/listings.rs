//! Whole listings of directories, kept so the mount can answer "no such
//! name" itself. Before a file is created the kernel looks its name up;
//! before a rename it looks up the new name: in a directory this mount
//! has listed, those answers cost no round trip.
//!
//! A listing is only trusted while the server watches it for this
//! session: another client's change to the directory's names is held until
//! this mount has dropped the listing (the server *recalls* it, see
//! `ReadDirRequest.watch`), so a name created elsewhere is never answered
//! "absent" after its creator's call returned. This mount's own changes
//! update the listing from their replies. Anything doubtful — a recall, a
//! reset, a broken session, a reply that disagrees with the listing —
//! drops the listing; the next miss lists the directory again.
//!
//! Only absence is answered from here: a name that exists is still looked
//! up on the server, which returns its current attributes.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;

/// A directory with more names than this when first listed is not kept.
pub(crate) const LIST_MAX: usize = 4096;
/// Names held over all listings; past it every listing is dropped.
const MAX_NAMES: usize = 2_000_000;
/// A directory recalled this recently is not listed again: another client
/// is changing it, and each listing would only be recalled again.
const COOL_DOWN: Duration = Duration::from_secs(1);

/// What a listing says about a name.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) enum Known {
    Absent,
    Present,
    Unknown,
}

/// A listing being read: it is kept only if nothing touched the
/// directory meanwhile.
#[must_use]
pub(crate) struct Fill {
    dir: u64,
    token: u64,
}

#[derive(Default)]
struct State {
    dirs: HashMap<u64, HashSet<Bytes>>,
    filling: HashMap<u64, u64>,
    next: u64,
    names: usize,
    /// Directories found too big to keep, and when each was recalled.
    too_big: HashSet<u64>,
    recalled: HashMap<u64, Instant>,
}

#[derive(Default)]
pub(crate) struct Listings {
    state: Mutex<State>,
}

impl Listings {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn known(&self, dir: u64, name: &[u8]) -> Known {
        match self.state().dirs.get(&dir) {
            Some(names) if names.contains(name) => Known::Present,
            Some(_) => Known::Absent,
            None => Known::Unknown,
        }
    }

    /// Starts listing `dir`, unless it is held, being listed, too big, or
    /// recently recalled.
    pub(crate) fn start(&self, dir: u64) -> Option<Fill> {
        let mut s = self.state();
        let cooling = s
            .recalled
            .get(&dir)
            .is_some_and(|at| at.elapsed() < COOL_DOWN);
        if s.dirs.contains_key(&dir)
            || s.filling.contains_key(&dir)
            || s.too_big.contains(&dir)
            || cooling
        {
            return None;
        }
        s.next += 1;
        let token = s.next;
        s.filling.insert(dir, token);
        Some(Fill { dir, token })
    }

    /// The listing read for `fill` (the whole directory, watched); kept
    /// unless the directory changed since it started. Returns whether kept.
    pub(crate) fn filled(&self, fill: Fill, names: Vec<Bytes>) -> bool {
        let mut s = self.state();
        if s.filling.get(&fill.dir) != Some(&fill.token) {
            return false;
        }
        s.filling.remove(&fill.dir);
        s.names += names.len();
        s.dirs.insert(fill.dir, names.into_iter().collect());
        if s.names > MAX_NAMES {
            s.clear();
        }
        true
    }

    /// The directory of `fill` has more than [`LIST_MAX`] names.
    pub(crate) fn too_big(&self, fill: Fill) {
        let mut s = self.state();
        s.filling.remove(&fill.dir);
        if s.too_big.len() > 100_000 {
            s.too_big.clear();
        }
        s.too_big.insert(fill.dir);
    }

    /// Listing `fill` failed or was not watched.
    pub(crate) fn abandon(&self, fill: Fill) {
        let mut s = self.state();
        if s.filling.get(&fill.dir) == Some(&fill.token) {
            s.filling.remove(&fill.dir);
        }
    }

    /// This mount created `name` in `dir`.
    pub(crate) fn added(&self, dir: u64, name: &[u8]) {
        let mut s = self.state();
        s.filling.remove(&dir);
        let grew = match s.dirs.get_mut(&dir) {
            Some(names) => names.insert(Bytes::copy_from_slice(name)),
            None => false,
        };
        if grew {
            s.names += 1;
            if s.names > MAX_NAMES {
                s.clear();
            }
        }
    }

    /// This mount removed `name` from `dir`.
    pub(crate) fn removed(&self, dir: u64, name: &[u8]) {
        let mut s = self.state();
        s.filling.remove(&dir);
        let shrank = s.dirs.get_mut(&dir).is_some_and(|n| n.remove(name));
        if shrank {
            s.names = s.names.saturating_sub(1);
        }
    }

    /// Drops the listings of `dirs`: recalled by the server, or found to
    /// disagree with it.
    pub(crate) fn recall(&self, dirs: impl IntoIterator<Item = u64>) {
        let mut s = self.state();
        let now = Instant::now();
        if s.recalled.len() > 100_000 {
            s.recalled
                .retain(|_, at| now.duration_since(*at) < COOL_DOWN);
        }
        for dir in dirs {
            s.filling.remove(&dir);
            if let Some(names) = s.dirs.remove(&dir) {
                s.names = s.names.saturating_sub(names.len());
            }
            s.recalled.insert(dir, now);
        }
    }

    /// Drops everything: invalidations were lost, or the session changed.
    pub(crate) fn clear(&self) {
        self.state().clear();
    }
}

impl State {
    fn clear(&mut self) {
        self.dirs.clear();
        self.filling.clear();
        self.too_big.clear();
        self.names = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<Bytes> {
        v.iter()
            .map(|n| Bytes::copy_from_slice(n.as_bytes()))
            .collect()
    }

    #[test]
    fn a_full_listing_answers_absence_and_follows_own_changes() {
        let l = Listings::default();
        assert_eq!(l.known(7, b"a"), Known::Unknown);
        let f = l.start(7).expect("nothing held yet");
        assert!(l.start(7).is_none(), "one listing at a time");
        assert!(l.filled(f, names(&["a", "b"])));
        assert_eq!(l.known(7, b"a"), Known::Present);
        assert_eq!(l.known(7, b"c"), Known::Absent);
        l.added(7, b"c");
        l.removed(7, b"a");
        assert_eq!(
            (l.known(7, b"a"), l.known(7, b"c")),
            (Known::Absent, Known::Present)
        );
        assert!(l.start(7).is_none(), "already held");
    }

    #[test]
    fn a_listing_touched_while_it_was_read_is_not_kept() {
        let l = Listings::default();
        // This mount's own create lands while the listing is in flight:
        // the listing may predate it.
        let f = l.start(1).expect("fill");
        l.added(1, b"new");
        assert!(!l.filled(f, names(&["old"])));
        assert_eq!(l.known(1, b"new"), Known::Unknown);
        // A recall while the listing is in flight.
        let f = l.start(2).expect("fill");
        l.recall([2]);
        assert!(!l.filled(f, names(&[])));
        assert_eq!(l.known(2, b"x"), Known::Unknown);
        // So does a reset.
        let f = l.start(3).expect("fill");
        l.clear();
        assert!(!l.filled(f, names(&[])));
    }

    #[test]
    fn a_recalled_directory_is_dropped_and_rests_before_it_is_listed_again() {
        let l = Listings::default();
        let f = l.start(5).expect("fill");
        assert!(l.filled(f, names(&["a"])));
        l.recall([5]);
        assert_eq!(l.known(5, b"zzz"), Known::Unknown);
        assert!(l.start(5).is_none(), "cooling down after a recall");
        // Other directories are unaffected.
        let f = l.start(6).expect("fill");
        assert!(l.filled(f, names(&[])));
        assert_eq!(l.known(6, b"a"), Known::Absent);
    }

    #[test]
    fn a_big_directory_is_not_listed_twice() {
        let l = Listings::default();
        let f = l.start(9).expect("fill");
        l.too_big(f);
        assert!(l.start(9).is_none());
        assert_eq!(l.known(9, b"a"), Known::Unknown);
        l.clear();
        assert!(l.start(9).is_some(), "a reset forgets sizes too");
    }
}
