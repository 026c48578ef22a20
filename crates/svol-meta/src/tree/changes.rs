//! What a transaction changed: the lease and fencing checks every change
//! makes first, and the change set it returns with the feed entry it
//! appends.

use super::{Tx, INLINE_LIMIT};
use crate::types::*;
use crate::{MetaError, Result};

/// Contents one change carries at most, in bytes and in files: a batch
/// that wrote many small files pushes the rest as attributes only (a mount
/// opening one asks the server), so no push to a mount grows past a
/// megabyte, and the batch reads no more than that again.
pub(crate) const CONTENTS_MAX_BYTES: u64 = 1 << 20;
pub(crate) const CONTENTS_MAX_FILES: usize = 256;

/// What an operation touched, named by the operation itself; the change
/// set is read from it at the end of the same transaction.
#[derive(Debug, Default)]
pub(crate) struct Touch {
    /// Inodes other mounts must forget.
    pub inodes: Vec<Ino>,
    /// Inodes this change created: in the change set, not in the feed
    /// (nobody else can have them cached).
    pub fresh: Vec<Ino>,
    pub entries: Vec<(Ino, Vec<u8>)>,
    /// Attributes the operation already read after its change (not read
    /// again for the change set); of several for one inode, the last.
    pub known: Vec<Attr>,
    /// Whole inline contents of small files it wrote (see `ChangeSet`).
    pub contents: Vec<(Ino, Vec<Chunk>)>,
}

impl Touch {
    pub(crate) fn inodes(inodes: &[Ino]) -> Self {
        Self {
            inodes: inodes.to_vec(),
            ..Default::default()
        }
    }

    pub(crate) fn entry(mut self, parent: Ino, name: &[u8]) -> Self {
        self.entries.push((parent, name.to_vec()));
        self
    }

    pub(crate) fn fresh(mut self, ino: Ino) -> Self {
        self.fresh.push(ino);
        self
    }

    pub(crate) fn known(mut self, a: &Attr) -> Self {
        self.known.push(a.clone());
        self
    }

    /// Notes the contents of file `a` just written, if small and inline,
    /// and if the change carries less than [`CONTENTS_MAX_BYTES`] and
    /// [`CONTENTS_MAX_FILES`] so far.
    pub(crate) fn contents_of(&mut self, t: &impl Tx, a: &Attr) -> Result<()> {
        if a.kind != FileKind::Regular || a.size > INLINE_LIMIT as u64 {
            return Ok(());
        }
        // Written again in the batch: what it held before is not current.
        self.contents.retain(|(ino, _)| *ino != a.ino);
        let held: u64 = self
            .contents
            .iter()
            .flat_map(|(_, chunks)| chunks.iter().map(|c| c.len as u64))
            .sum();
        if self.contents.len() >= CONTENTS_MAX_FILES || held + a.size > CONTENTS_MAX_BYTES {
            return Ok(());
        }
        let chunks = t.chunks(a.ino)?;
        if chunks
            .iter()
            .all(|c| matches!(c.data, ChunkData::Inline(_)))
        {
            self.contents.push((a.ino, chunks));
        }
        Ok(())
    }
}

/// A change by a mount is only made while its lease holds: a client frozen
/// past its lease, or cut off, writes nothing however late its request
/// arrives.
pub(crate) fn check_lease(t: &impl Tx, cx: &Cx<'_>) -> Result<()> {
    if cx.session.is_empty() {
        return Ok(());
    }
    match t.session_expires(cx.session)? {
        Some(e) if e >= cx.now_ms() => Ok(()),
        _ => Err(MetaError::Fenced(
            "the mount's lease has expired; its locks and open files are gone".into(),
        )),
    }
}

/// A writer that presents a fencing token must still hold that write lock.
pub(crate) fn check_fence(t: &impl Tx, cx: &Cx<'_>, ino: Ino) -> Result<()> {
    if cx.fence == 0 {
        return Ok(());
    }
    let held = t
        .locks_on(ino)?
        .iter()
        .any(|l| l.fence == cx.fence && l.range.session == cx.session);
    if !held {
        return Err(MetaError::Fenced(format!(
            "write lock {} on inode {ino} is no longer held",
            cx.fence
        )));
    }
    Ok(())
}

/// Completes an operation's outcome inside its transaction: the touched
/// inodes' new attributes and a feed entry for everyone else.
pub(crate) fn finish<T>(
    t: &impl Tx,
    vol: Ino,
    cx: &Cx<'_>,
    mut out: Outcome<T>,
    touch: Touch,
) -> Result<Outcome<T>> {
    let ch = &mut out.changes;
    ch.volume = vol;
    let mut seen = std::collections::HashSet::new();
    // The last attributes known of an inode are its newest (a batch may
    // change one several times).
    let known: std::collections::HashMap<Ino, &Attr> =
        touch.known.iter().map(|a| (a.ino, a)).collect();
    for ino in touch.inodes.iter().chain(&touch.fresh) {
        if !seen.insert(*ino) {
            continue;
        }
        if let Some(a) = known.get(ino) {
            ch.attrs.push((*a).clone());
            continue;
        }
        match t.attr(vol, *ino)? {
            Some(a) => ch.attrs.push(a),
            None => ch.gone.push(*ino),
        }
    }
    ch.entries = touch.entries;
    ch.created = touch.fresh;
    // Only of files still as they were written (a later op of a batch may
    // have removed one).
    ch.contents = touch
        .contents
        .into_iter()
        .filter(|(ino, _)| known.get(ino).is_some_and(|a| a.nlink > 0))
        .collect();
    let mut inodes = touch.inodes;
    inodes.sort_unstable();
    inodes.dedup();
    let entry = FeedEntry {
        volume: vol,
        origin: cx.session.to_string(),
        inodes,
        entries: ch.entries.clone(),
        unlocked: ch.unlocked.clone(),
        ..Default::default()
    };
    if !entry.inodes.is_empty() || !entry.entries.is_empty() || !entry.unlocked.is_empty() {
        ch.feed = t.append_feed(&entry)?;
    }
    Ok(out)
}
