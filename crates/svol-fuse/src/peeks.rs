//! Small files' contents peeked at with another open (the server's
//! `peek.rs`): a mount reading through a directory of small files asks,
//! with one cold open, for the next files' contents too, and opens those
//! for reading without a round trip. Contents also come pushed, with the
//! update of a listed file another mount rewrote (`Invalidation.contents`).
//!
//! What is kept here is keyed by version and never invalidated: it is used
//! only while a listing — recalled before any other mount's change returns
//! — says that version is the file's current one. Kept up to [`BUDGET`]
//! bytes, the oldest dropped first.
//!
//! A file opened from here is not open on the server, which therefore
//! frees it when another mount unlinks its last name. The handle then goes
//! on with the contents and attributes it opened with (`nlink` 0), as any
//! holder of an unlinked file does; what it cannot see is a write made on
//! another mount after its open *and* before that unlink, if it read
//! nothing in between (an open on the server would have shown it).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use svol_sdk::{Chunk, Peeked};

/// Bytes of peeked contents kept.
const BUDGET: usize = 32 << 20;
/// A cold open this soon after one in the same directory peeks.
const READING_THROUGH: Duration = Duration::from_secs(2);
/// Directories whose last cold open is remembered.
const MAX_RECENT: usize = 1024;

#[derive(Default)]
pub(crate) struct Peeks {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Inode → (version, chunks, bytes).
    files: HashMap<u64, (u64, Vec<Chunk>, usize)>,
    order: VecDeque<u64>,
    bytes: usize,
    /// Directory → when a file of it was last opened the slow way.
    recent: HashMap<u64, Instant>,
}

impl Peeks {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A file of `dir` is opened the slow way: is a reader going through
    /// the directory (one was, just before), so peeking pays?
    pub(crate) fn worth(&self, dir: u64) -> bool {
        let mut s = self.state();
        let now = Instant::now();
        if s.recent.len() >= MAX_RECENT {
            s.recent
                .retain(|_, at| now.duration_since(*at) < READING_THROUGH);
        }
        s.recent
            .insert(dir, now)
            .is_some_and(|at| now.duration_since(at) < READING_THROUGH)
    }

    /// Keeps what an open peeked at.
    pub(crate) fn keep(&self, peeked: Vec<Peeked>) {
        if peeked.is_empty() {
            return;
        }
        let mut s = self.state();
        for f in peeked {
            let a = f.attr;
            let bytes = 64 + f.chunks.iter().map(|c| c.inline_data.len()).sum::<usize>();
            if let Some(old) = s.files.insert(a.ino, (a.version, f.chunks, bytes)) {
                s.bytes -= old.2;
            }
            s.bytes += bytes;
            s.order.push_back(a.ino);
        }
        while s.bytes > BUDGET {
            let Some(ino) = s.order.pop_front() else {
                break;
            };
            if let Some(old) = s.files.remove(&ino) {
                s.bytes -= old.2;
            }
        }
    }

    /// The contents of `ino` at `version`, if peeked.
    pub(crate) fn get(&self, ino: u64, version: u64) -> Option<Vec<Chunk>> {
        let s = self.state();
        let (v, chunks, _) = s.files.get(&ino)?;
        (*v == version).then(|| chunks.clone())
    }

    /// Has `ino` at `version` been peeked?
    pub(crate) fn has(&self, ino: u64, version: u64) -> bool {
        self.state().files.get(&ino).is_some_and(|f| f.0 == version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn peeked(ino: u64, version: u64, data: &'static [u8]) -> Peeked {
        Peeked {
            attr: svol_sdk::Attr {
                ino,
                version,
                size: data.len() as u64,
                ..Default::default()
            },
            chunks: vec![Chunk {
                index: 0,
                len: data.len() as u32,
                hash: Bytes::new(),
                inline_data: Bytes::from_static(data),
            }],
        }
    }

    #[test]
    fn contents_serve_only_the_version_they_were_peeked_at() {
        let p = Peeks::default();
        p.keep(vec![peeked(7, 3, b"three")]);
        assert!(p.has(7, 3));
        assert_eq!(p.get(7, 3).unwrap()[0].inline_data, &b"three"[..]);
        assert!(
            p.get(7, 4).is_none(),
            "a newer version is not what was peeked"
        );
        assert!(p.get(8, 3).is_none());
        p.keep(vec![peeked(7, 4, b"four")]);
        assert!(p.get(7, 3).is_none());
        assert_eq!(p.get(7, 4).unwrap()[0].inline_data, &b"four"[..]);
    }

    #[test]
    fn only_a_second_slow_open_in_a_directory_peeks() {
        let p = Peeks::default();
        assert!(
            !p.worth(5),
            "one open says nothing of a reader going through"
        );
        assert!(p.worth(5));
        assert!(!p.worth(6));
        assert!(p.worth(5));
    }

    #[test]
    fn the_oldest_contents_go_past_the_budget() {
        let p = Peeks::default();
        static BIG: [u8; 60 << 10] = [1; 60 << 10];
        let n = BUDGET / BIG.len() + 10;
        for i in 0..n as u64 {
            p.keep(vec![peeked(i, 1, &BIG)]);
        }
        assert!(!p.has(0, 1), "the first went");
        assert!(p.has(n as u64 - 1, 1), "the last stays");
        assert!(p.state().bytes <= BUDGET);
    }
}
