//! Whole listings of directories, with their entries' attributes, kept so
//! the mount can answer lookups itself: "no such name" before a create or
//! a rename, and the attributes of a name that exists (`stat`, `find`,
//! `git status`, the lookup before every open).
//!
//! A listing is only trusted while the server watches it for this
//! session: another client's change to the directory's names, or to any
//! entry it lists, is held until this mount has dropped the listing (the
//! server *recalls* it, see `ReadDirRequest.watch`) or, for a change to
//! an entry's attributes only, put the new ones in it (the server sends
//! them in commit order: [`Listings::changed`]), so nothing another
//! mount changed is answered stale after its call returned. This mount's
//! own changes update the listing from their replies. Anything doubtful —
//! a recall, a reset, a broken session, a reply that disagrees with the
//! listing — drops the listing; a later miss lists the directory again.
//!
//! A listing is read in pages; the server registers the entries of each
//! page for recall after reading it, so an entry changed in between is
//! told to this mount only as a plain invalidation. Each page says how far
//! the session's invalidations had gone when it was registered; the
//! listing is kept only once those were processed here and none of them
//! touched an entry it holds.
//!
//! The kernel may keep a listed entry's attributes for [`KERNEL_TTL`]
//! (`stat`, the permission check of every path through a directory): each
//! inode handed out so is noted, and whatever drops its listing — a recall
//! above all — drops the kernel's copy first (`notify_inval_inode` with no
//! page range, which waits on no request), so the recall is answered only
//! once the kernel too has forgotten. A getattr answered from a listing a
//! recall then dropped loses to it in the kernel (its attribute version is
//! older). A lookup's reply may make a new kernel inode, which a drop sent
//! before the kernel took the reply cannot reach: lookups hand out listed
//! attributes for [`LOOKUP_TTL`] only — long enough that the `stat` or
//! `open` that made the lookup needs no second request, short enough that
//! the one reply racing a recall is stale for a few milliseconds at most
//! (what DESIGN.md promises for metadata; an unlisted inode's attributes
//! rely on a plain push for a second).

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use svol_sdk::{Attr, FileKind, INLINE_MAX};

/// Entries asked for per page; a directory with more is listed whole only
/// once it has been looked up in [`BIG_MISSES`] times.
pub(crate) const PAGE: usize = 4096;
/// Lookups that missed the listings in a big directory before it is listed.
const BIG_MISSES: u32 = 64;
/// Entries held over all listings; past it every listing is dropped.
const MAX_ENTRIES: usize = 2_000_000;
/// A directory recalled twice this close together is not listed again for
/// as long: another client keeps changing it, and each listing would only
/// be recalled again. One recall alone (a file made or removed now and
/// then) is listed again at once: resting after it would send every open
/// in the directory to the server for that while.
const COOL_DOWN: Duration = Duration::from_secs(1);
/// How long the kernel keeps a listed entry's attributes: until its
/// listing is dropped, and a lost drop (a bug) heals after this.
pub(crate) const KERNEL_TTL: Duration = Duration::from_secs(10);
/// How long the kernel keeps the attributes a lookup answered from a
/// listing gave it (see above): the call that looked the name up uses them.
pub(crate) const LOOKUP_TTL: Duration = Duration::from_millis(2);
/// Inodes the kernel may keep attributes of, over all listings; past it
/// the kernel's copies are all dropped.
const MAX_GIVEN: usize = 1_000_000;

/// What a listing says about a name.
#[derive(Debug, PartialEq, Clone)]
pub(crate) enum Known {
    Absent,
    Present(Attr),
    Unknown,
}

/// A listing being read: kept only if nothing touched it meanwhile.
#[must_use]
pub(crate) struct Fill {
    pub(crate) dir: u64,
    token: u64,
    /// Read every page (a big directory), or only the first.
    pub(crate) whole: bool,
}

struct Filling {
    token: u64,
    /// Inodes invalidations named while the listing was read.
    touched: HashSet<u64>,
}

#[derive(Default)]
struct State {
    dirs: HashMap<u64, HashMap<Bytes, Attr>>,
    /// Where each listed inode appears.
    by_ino: HashMap<u64, Vec<(u64, Bytes)>>,
    filling: HashMap<u64, Filling>,
    next: u64,
    entries: usize,
    /// Big directories: lookups that missed since found big.
    big: HashMap<u64, u32>,
    /// Directory → when last recalled, and recalls in a row each within
    /// [`COOL_DOWN`] of the one before.
    recalled: HashMap<u64, (Instant, u32)>,
    /// Listed inodes whose attributes the kernel was given to keep.
    given: HashSet<u64>,
    /// Of those, the ones whose listing went: the kernel's copy goes next.
    stale: Vec<u64>,
}

pub(crate) struct Listings {
    state: Mutex<State>,
    /// The session's last invalidation processed here (see `filled`).
    processed: tokio::sync::watch::Sender<u64>,
    /// The kernel's attribute cache, once mounted (see the module doc).
    kernel: OnceLock<Kernel>,
}

struct Kernel {
    notifier: fuser::Notifier,
    root: u64,
}

impl Default for Listings {
    fn default() -> Self {
        Self {
            state: Mutex::default(),
            processed: tokio::sync::watch::channel(0).0,
            kernel: OnceLock::new(),
        }
    }
}

impl Listings {
    /// The stream task has processed the session's invalidations up to
    /// `seq`.
    pub(crate) fn processed(&self, seq: u64) {
        self.processed.send_if_modified(|v| {
            let newer = seq > *v;
            if newer {
                *v = seq;
            }
            newer
        });
    }

    /// A new session numbers its invalidations from 1 again.
    pub(crate) fn renumbered(&self) {
        self.processed.send_replace(0);
    }

    /// Waits until invalidations up to `seq` are processed (at most
    /// `limit`); false if they were not.
    pub(crate) async fn caught_up(&self, seq: u64, limit: Duration) -> bool {
        let mut rx = self.processed.subscribe();
        let caught = tokio::time::timeout(limit, rx.wait_for(|v| *v >= seq)).await;
        matches!(caught, Ok(Ok(_)))
    }

    /// The mount's kernel connection: attributes handed out from now on
    /// may be kept by the kernel (see [`Listings::kernel_attr`]).
    pub(crate) fn attach(&self, notifier: fuser::Notifier, root: u64) {
        let _ = self.kernel.set(Kernel { notifier, root });
    }

    fn state(&self) -> StateGuard<'_> {
        StateGuard {
            guard: Some(self.state.lock().unwrap_or_else(|p| p.into_inner())),
            kernel: self.kernel.get(),
        }
    }

    /// The listed attributes of `ino` for the kernel to keep for
    /// [`KERNEL_TTL`], if a listing holds it and the kernel's copy can be
    /// dropped with the listing.
    pub(crate) fn kernel_attr(&self, ino: u64) -> Option<Attr> {
        self.kernel.get()?;
        let mut s = self.state();
        let a = s.attr_of(ino)?;
        if s.given.len() >= MAX_GIVEN {
            let all: Vec<u64> = s.given.drain().collect();
            s.stale.extend(all);
        }
        s.given.insert(ino);
        Some(a)
    }

    pub(crate) fn known(&self, dir: u64, name: &[u8]) -> Known {
        match self.state().dirs.get(&dir) {
            Some(names) => match names.get(name) {
                Some(a) => Known::Present(*a),
                None => Known::Absent,
            },
            None => Known::Unknown,
        }
    }

    /// Starts listing `dir` after a lookup missed it, unless it is held,
    /// being listed, recently recalled, or big and not yet looked up in
    /// often enough.
    pub(crate) fn start(&self, dir: u64) -> Option<Fill> {
        let mut s = self.state();
        let cooling = s
            .recalled
            .get(&dir)
            .is_some_and(|(at, row)| *row > 1 && at.elapsed() < COOL_DOWN);
        if s.dirs.contains_key(&dir) || s.filling.contains_key(&dir) || cooling {
            return None;
        }
        let whole = match s.big.get_mut(&dir) {
            Some(misses) if *misses + 1 < BIG_MISSES => {
                *misses += 1;
                return None;
            }
            Some(_) => true,
            None => false,
        };
        s.next += 1;
        let token = s.next;
        s.filling.insert(
            dir,
            Filling {
                token,
                touched: HashSet::new(),
            },
        );
        Some(Fill { dir, token, whole })
    }

    /// The listing read for `fill` (the whole directory, watched, with the
    /// invalidations sent before it processed); kept unless the directory
    /// or one of its entries changed since it started. Returns whether kept.
    pub(crate) fn filled(&self, fill: Fill, entries: Vec<(Bytes, Attr)>) -> bool {
        let mut s = self.state();
        let Some(f) = s.end_fill(&fill) else {
            return false;
        };
        if entries.iter().any(|(_, a)| f.touched.contains(&a.ino)) {
            return false;
        }
        s.big.remove(&fill.dir);
        s.entries += entries.len();
        for (name, a) in &entries {
            s.by_ino
                .entry(a.ino)
                .or_default()
                .push((fill.dir, name.clone()));
        }
        s.dirs.insert(fill.dir, entries.into_iter().collect());
        if s.entries > MAX_ENTRIES {
            s.clear();
        }
        true
    }

    /// The directory of `fill` has more than one page: it is listed whole
    /// once looked up in often enough.
    pub(crate) fn big(&self, fill: Fill) {
        let mut s = self.state();
        let _ = s.end_fill(&fill);
        if s.big.len() > 100_000 {
            s.big.clear();
        }
        s.big.insert(fill.dir, 0);
    }

    /// Listing `fill` failed or was not watched.
    pub(crate) fn abandon(&self, fill: Fill) {
        let _ = self.state().end_fill(&fill);
    }

    /// This mount made `name` in `dir` (or pointed it elsewhere): it is `a`.
    pub(crate) fn added(&self, dir: u64, name: &[u8], a: &Attr) {
        let mut s = self.state();
        s.filling.remove(&dir);
        if !s.dirs.contains_key(&dir) {
            return;
        }
        let name = Bytes::copy_from_slice(name);
        s.unindex(dir, &name);
        if let Some(names) = s.dirs.get_mut(&dir) {
            names.insert(name.clone(), *a);
        }
        s.by_ino.entry(a.ino).or_default().push((dir, name));
        s.entries += 1;
        if s.entries > MAX_ENTRIES {
            s.clear();
        }
    }

    /// This mount made directory `dir` ahead, under its hold: its listing
    /// is empty and complete.
    pub(crate) fn made_dir(&self, dir: u64) {
        let mut s = self.state();
        s.filling.remove(&dir);
        s.dirs.insert(dir, HashMap::new());
    }

    /// Does this mount keep `dir`'s listing?
    pub(crate) fn is_listed(&self, dir: u64) -> bool {
        self.state().dirs.contains_key(&dir)
    }

    /// This mount removed `name` from `dir`.
    pub(crate) fn removed(&self, dir: u64, name: &[u8]) {
        let mut s = self.state();
        s.filling.remove(&dir);
        s.unindex(dir, name);
    }

    /// Attributes this mount's calls returned: listed entries take them,
    /// unless what is listed is newer (an update pushed while the reply
    /// was on its way: see [`Listings::changed`]).
    pub(crate) fn attrs<'a>(&self, attrs: impl IntoIterator<Item = &'a Attr>) {
        let mut s = self.state();
        for a in attrs {
            s.set(a, |listed| age(listed) <= age(a));
        }
    }

    /// Another client changed `inodes`. `updated`: the attributes, as
    /// they are now, of those listings here hold that the server keeps
    /// watched (only their attributes changed); they replace the listed
    /// ones. Every other listing holding one of `inodes` is dropped, and
    /// so is any listing being read.
    pub(crate) fn changed(&self, inodes: &[u64], updated: &[Attr]) {
        let mut s = self.state();
        if s.filling.is_empty() && s.by_ino.is_empty() {
            return;
        }
        for f in s.filling.values_mut() {
            f.touched.extend(inodes.iter().copied());
        }
        // Sent in the order the changes were made: the newest, always.
        for a in updated {
            s.set(a, |_| true);
        }
        let dirs: Vec<u64> = inodes
            .iter()
            .filter(|i| !updated.iter().any(|a| a.ino == **i))
            .filter_map(|i| s.by_ino.get(i))
            .flat_map(|v| v.iter().map(|(d, _)| *d))
            .collect();
        s.recall(dirs);
    }

    /// Does a listing hold `ino`?
    pub(crate) fn holds(&self, ino: u64) -> bool {
        self.state().by_ino.contains_key(&ino)
    }

    /// The listed attributes of `ino`, if a listing holds it.
    pub(crate) fn attr_of(&self, ino: u64) -> Option<Attr> {
        self.state().attr_of(ino)
    }

    /// The directory `ino` is listed in, and up to `n` small regular files
    /// listed beside it with the next inode numbers (made after it: the
    /// order a tree was written in), with their versions.
    pub(crate) fn next_files(&self, ino: u64, n: usize) -> Option<(u64, Vec<(u64, u64)>)> {
        let s = self.state();
        let (dir, _) = s.by_ino.get(&ino)?.first()?;
        let mut next: Vec<(u64, u64)> = s
            .dirs
            .get(dir)?
            .values()
            .filter(|a| a.ino > ino && a.kind == FileKind::Regular && a.size <= INLINE_MAX as u64)
            .map(|a| (a.ino, a.version))
            .collect();
        if next.len() > n {
            next.select_nth_unstable(n);
            next.truncate(n);
        }
        next.sort_unstable();
        Some((*dir, next))
    }

    /// Another client changed these inodes (a plain invalidation): a
    /// listing holding one of them, or being read, cannot be trusted.
    pub(crate) fn touched(&self, inodes: &[u64]) {
        self.changed(inodes, &[]);
    }

    /// Drops the listings of `dirs`: recalled by the server, or found to
    /// disagree with it.
    pub(crate) fn recall(&self, dirs: impl IntoIterator<Item = u64>) {
        self.state().recall(dirs);
    }

    /// Drops everything: invalidations were lost, or the session changed.
    pub(crate) fn clear(&self) {
        self.state().clear();
    }
}

/// The listings' lock; on release, the kernel forgets the attributes of
/// inodes whose listings went meanwhile (before a recall is answered: the
/// callers answer after the call that dropped them returns).
struct StateGuard<'a> {
    guard: Option<std::sync::MutexGuard<'a, State>>,
    kernel: Option<&'a Kernel>,
}

impl std::ops::Deref for StateGuard<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        self.guard.as_ref().expect("held until dropped")
    }
}

impl std::ops::DerefMut for StateGuard<'_> {
    fn deref_mut(&mut self) -> &mut State {
        self.guard.as_mut().expect("held until dropped")
    }
}

impl Drop for StateGuard<'_> {
    fn drop(&mut self) {
        let Some(mut g) = self.guard.take() else {
            return;
        };
        let stale = std::mem::take(&mut g.stale);
        drop(g);
        let Some(k) = self.kernel else { return };
        for ino in stale {
            let kino = fuser::INodeNo(if ino == k.root { 1 } else { ino });
            // No page range: attributes only, which waits on no request
            // (an inode the kernel no longer has answers ENOENT).
            let _ = k.notifier.inval_inode(kino, -1, 0);
        }
    }
}

/// Which of two attributes of one inode is newer: every change bumps its
/// ctime, and every change of contents its version.
fn age(a: &Attr) -> (u64, i64, u32) {
    let c = a.ctime;
    (a.version, c.sec, c.nsec)
}

impl State {
    /// Puts `a` into the listings that hold its inode where `take` says
    /// so; the kernel's copy goes if one changed.
    fn set(&mut self, a: &Attr, take: impl Fn(&Attr) -> bool) {
        let Some(places) = self.by_ino.get(&a.ino).cloned() else {
            return;
        };
        let mut changed = false;
        for (dir, name) in places {
            if let Some(e) = self.dirs.get_mut(&dir).and_then(|d| d.get_mut(&name)) {
                if e != a && take(e) {
                    *e = *a;
                    changed = true;
                }
            }
        }
        // The kernel may keep what it was given: not past a change.
        if changed && self.given.remove(&a.ino) {
            self.stale.push(a.ino);
        }
    }

    fn attr_of(&self, ino: u64) -> Option<Attr> {
        let (dir, name) = self.by_ino.get(&ino)?.first()?;
        self.dirs.get(dir)?.get(name).copied()
    }

    /// `fill` is over; its state, unless a later fill of its directory
    /// replaced it (or a change ended it).
    fn end_fill(&mut self, fill: &Fill) -> Option<Filling> {
        if self
            .filling
            .get(&fill.dir)
            .is_some_and(|f| f.token == fill.token)
        {
            self.filling.remove(&fill.dir)
        } else {
            None
        }
    }

    fn unindex(&mut self, dir: u64, name: &[u8]) {
        let Some(a) = self.dirs.get_mut(&dir).and_then(|d| d.remove(name)) else {
            return;
        };
        self.entries = self.entries.saturating_sub(1);
        self.unplace(a.ino, dir, name);
    }

    /// `ino` is no longer listed as `name` in `dir`.
    fn unplace(&mut self, ino: u64, dir: u64, name: &[u8]) {
        if let Some(v) = self.by_ino.get_mut(&ino) {
            v.retain(|(d, n)| !(*d == dir && n[..] == name[..]));
            if v.is_empty() {
                self.by_ino.remove(&ino);
                if self.given.remove(&ino) {
                    self.stale.push(ino);
                }
            }
        }
    }

    fn recalled_now(&mut self, dir: u64, now: Instant) {
        let row = match self.recalled.get(&dir) {
            Some((at, row)) if now.duration_since(*at) < COOL_DOWN => row + 1,
            _ => 1,
        };
        self.recalled.insert(dir, (now, row));
    }

    fn recall(&mut self, dirs: impl IntoIterator<Item = u64>) {
        let now = Instant::now();
        if self.recalled.len() > 100_000 {
            self.recalled
                .retain(|_, (at, _)| now.duration_since(*at) < COOL_DOWN);
        }
        for dir in dirs {
            // Only a listing held or being read rests: a change to a
            // directory this mount does not list says nothing of churn.
            let filling = self.filling.remove(&dir).is_some();
            let Some(names) = self.dirs.remove(&dir) else {
                if filling {
                    self.recalled_now(dir, now);
                }
                continue;
            };
            self.recalled_now(dir, now);
            self.entries = self.entries.saturating_sub(names.len());
            for (name, a) in names {
                self.unplace(a.ino, dir, &name);
                // Also under another listing: the kernel's copy was of
                // these attributes, which changed.
                if self.given.remove(&a.ino) {
                    self.stale.push(a.ino);
                }
            }
        }
    }

    fn clear(&mut self) {
        let given: Vec<u64> = self.given.drain().collect();
        self.stale.extend(given);
        self.dirs.clear();
        self.by_ino.clear();
        self.filling.clear();
        self.big.clear();
        self.entries = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ino: u64, version: u64) -> Attr {
        Attr {
            ino,
            version,
            ..Default::default()
        }
    }

    fn entries(v: &[(&str, u64)]) -> Vec<(Bytes, Attr)> {
        v.iter()
            .map(|(n, ino)| (Bytes::copy_from_slice(n.as_bytes()), at(*ino, 1)))
            .collect()
    }

    #[test]
    fn a_full_listing_answers_lookups_and_follows_own_changes() {
        let l = Listings::default();
        assert_eq!(l.known(7, b"a"), Known::Unknown);
        let f = l.start(7).expect("nothing held yet");
        assert!(!f.whole, "first only one page");
        assert!(l.start(7).is_none(), "one listing at a time");
        assert!(l.filled(f, entries(&[("a", 10), ("b", 11)])));
        assert_eq!(l.known(7, b"a"), Known::Present(at(10, 1)));
        assert_eq!(l.known(7, b"c"), Known::Absent);
        l.added(7, b"c", &at(12, 1));
        l.removed(7, b"a");
        assert_eq!(l.known(7, b"a"), Known::Absent);
        assert_eq!(l.known(7, b"c"), Known::Present(at(12, 1)));
        // Replies update entries by inode; an older reply does not win.
        l.attrs([&at(11, 5)]);
        l.attrs([&at(11, 3)]);
        assert_eq!(l.known(7, b"b"), Known::Present(at(11, 5)));
        assert!(l.start(7).is_none(), "already held");
    }

    #[test]
    fn a_listing_touched_while_it_was_read_is_not_kept() {
        let l = Listings::default();
        // This mount's own create lands while the listing is in flight:
        // the listing may predate it.
        let f = l.start(1).expect("fill");
        l.added(1, b"new", &at(5, 1));
        assert!(!l.filled(f, entries(&[("old", 4)])));
        assert_eq!(l.known(1, b"new"), Known::Unknown);
        // A recall while the listing is in flight.
        let f = l.start(2).expect("fill");
        l.recall([2]);
        assert!(!l.filled(f, entries(&[])));
        assert_eq!(l.known(2, b"x"), Known::Unknown);
        // An entry another client changed while the page was read.
        let f = l.start(3).expect("fill");
        l.touched(&[30]);
        assert!(!l.filled(f, entries(&[("a", 30)])));
        // Untouched ones are fine.
        let f = l.start(4).expect("fill");
        l.touched(&[99]);
        assert!(l.filled(f, entries(&[("a", 40)])));
        // So is a reset (for listings being read too).
        let f = l.start(5).expect("fill");
        l.clear();
        assert!(!l.filled(f, entries(&[])));
        assert_eq!(l.known(4, b"a"), Known::Unknown);
    }

    #[test]
    fn another_clients_change_to_a_listed_entry_drops_its_listings() {
        let l = Listings::default();
        for dir in [1, 2] {
            let f = l.start(dir).expect("fill");
            assert!(l.filled(f, entries(&[("shared", 50), ("own", 50 + dir)])));
        }
        let f = l.start(3).expect("fill");
        assert!(l.filled(f, entries(&[("other", 60)])));
        // A hard link listed in 1 and 2 changed elsewhere.
        l.touched(&[50]);
        assert_eq!(l.known(1, b"own"), Known::Unknown);
        assert_eq!(l.known(2, b"own"), Known::Unknown);
        assert_eq!(l.known(3, b"other"), Known::Present(at(60, 1)));
    }

    fn changed_at(ino: u64, version: u64, ctime: i64) -> Attr {
        Attr {
            ctime: svol_sdk::Timespec {
                sec: ctime,
                nsec: 0,
            },
            ..at(ino, version)
        }
    }

    #[test]
    fn pushed_attributes_replace_listed_ones_and_a_late_reply_does_not_undo_them() {
        let l = Listings::default();
        let f = l.start(1).expect("fill");
        assert!(l.filled(f, entries(&[("a", 10), ("b", 11)])));
        let f = l.start(2).expect("fill");
        assert!(l.filled(f, entries(&[("c", 20)])));
        // 10's attributes changed (chmod: same version, later ctime), and
        // 20 changed without attributes to put in its place.
        let chmod = Attr {
            mode: 0o600,
            ..changed_at(10, 1, 100)
        };
        l.changed(&[10, 20], &[chmod]);
        assert_eq!(l.known(1, b"a"), Known::Present(chmod), "kept, updated");
        assert_eq!(l.known(1, b"b"), Known::Present(at(11, 1)));
        assert_eq!(l.known(2, b"c"), Known::Unknown, "20's listing went");
        // A reply of this mount's sent before the change arrives after it.
        l.attrs([&changed_at(10, 1, 99)]);
        assert_eq!(l.known(1, b"a"), Known::Present(chmod));
        // A newer one wins.
        let newer = changed_at(10, 2, 101);
        l.attrs([&newer]);
        assert_eq!(l.known(1, b"a"), Known::Present(newer));
        // A listing being read when an update came is not kept.
        let f = l.start(3).expect("fill");
        l.changed(&[30], &[changed_at(30, 2, 5)]);
        assert!(!l.filled(f, entries(&[("d", 30)])));
    }

    #[test]
    fn a_recalled_directory_is_dropped_and_rests_only_when_recalled_in_a_row() {
        let l = Listings::default();
        let f = l.start(5).expect("fill");
        assert!(l.filled(f, entries(&[("a", 1)])));
        l.recall([5]);
        assert_eq!(l.known(5, b"zzz"), Known::Unknown);
        // One recall: listed again at once.
        let f = l.start(5).expect("a lone recall does not rest");
        assert!(l.filled(f, entries(&[("a", 1), ("b", 2)])));
        assert_eq!(l.known(5, b"zzz"), Known::Absent);
        // Another straight after: the directory is churning, so it rests.
        l.recall([5]);
        assert!(l.start(5).is_none(), "cooling down after recalls in a row");
        l.attrs([&at(1, 9)]);
        let f = l.start(6).expect("fill");
        assert!(l.filled(f, entries(&[])));
        assert_eq!(l.known(6, b"a"), Known::Absent);
    }

    #[test]
    fn a_big_directory_is_listed_whole_once_looked_up_in_often() {
        let l = Listings::default();
        let f = l.start(9).expect("fill");
        l.big(f);
        for _ in 1..BIG_MISSES {
            assert!(l.start(9).is_none());
        }
        let f = l.start(9).expect("looked up in often enough");
        assert!(f.whole);
        assert!(l.filled(f, entries(&[("a", 1)])));
        assert_eq!(l.known(9, b"b"), Known::Absent);
    }
}
