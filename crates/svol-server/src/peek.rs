//! Small files' contents handed out with another file's open (`peek` in
//! `OpenRequest`): a mount reading through a directory of small files gets
//! the next ones in the same round trip, and opens them without asking.
//!
//! Nothing is opened or registered: a peeked file is read whole from the
//! reply, so an unlink elsewhere cannot take its data away. Each answer's
//! contents are those of its attributes' version (read between two reads
//! of the attributes that agree: every content change bumps the version),
//! and the mount trusts them only while its listing — which the server
//! recalls on any change — says that version is current.

use svol_meta::{self as m, Ino};
use svol_proto as p;
use tonic::Status;

use crate::auth::Caller;
use crate::convert::{self, attr};
use crate::service::State;

impl State {
    /// The inline contents of those of `inos` (other than `opened`) that are
    /// small regular files of the caller's volume, up to
    /// [`p::PEEK_BYTES`]; the others are skipped.
    pub(crate) async fn peek(
        &self,
        c: &Caller,
        opened: Ino,
        inos: &[Ino],
    ) -> Result<Vec<p::Peeked>, Status> {
        if inos.len() > p::MAX_PEEK {
            return Err(Status::invalid_argument(format!(
                "{} inodes to peek at in one open; at most {}",
                inos.len(),
                p::MAX_PEEK
            )));
        }
        let vol = c.vol;
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for &ino in inos {
            if ino == opened || !seen.insert(ino) || bytes >= p::PEEK_BYTES {
                continue;
            }
            // Another volume's inode, or one gone since: not found, skipped.
            let Ok(Some((a, chunks))) = self.meta(move |m| Ok(peek_one(m, vol, ino))).await else {
                continue;
            };
            bytes += a.size as usize;
            out.push(p::Peeked {
                attr: Some(attr(&a)),
                chunks: chunks.into_iter().map(convert::chunk).collect(),
            });
        }
        Ok(out)
    }
}

/// `ino`'s attributes and chunks if it is a regular file held inline whose
/// version did not change while its chunks were read.
fn peek_one(m: &m::MetaStore, vol: Ino, ino: Ino) -> Option<(m::Attr, Vec<m::Chunk>)> {
    let before = m.getattr(vol, ino).ok()?;
    if before.kind != m::FileKind::Regular || before.size > p::INLINE_MAX as u64 {
        return None;
    }
    let chunks = m.chunks(vol, ino).ok()?;
    if !chunks
        .iter()
        .all(|c| matches!(c.data, m::ChunkData::Inline(_)))
    {
        return None;
    }
    let after = m.getattr(vol, ino).ok()?;
    (after.version == before.version && after.size == before.size).then_some((after, chunks))
}
