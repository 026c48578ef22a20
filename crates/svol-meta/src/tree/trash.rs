//! A volume's file trash: with a retention set on the volume, the last name
//! of a file that an unlink or a rename over it removes does not take the
//! file with it; the inode (nlink 0, as POSIX says, to anyone holding it
//! open) stays with its blocks, recorded under the path it had, until the
//! retention ends or it is restored to a path again. Directories are not
//! kept: a restore makes the directories a path needs.

use super::names::{create, touch_dir};
use super::refs::*;
use super::{InodeUpdate, Nlink, Tx};
use crate::types::*;
use crate::{MetaError, Result};

/// Entries a change made: (directory, name).
pub(crate) type NewEntries = Vec<(Ino, Vec<u8>)>;

pub(crate) fn ms(t: Timespec) -> i64 {
    t.sec.saturating_mul(1000) + (t.nsec / 1_000_000) as i64
}

/// The path of `name` in directory `dir` of volume `vol`, from its root,
/// without a leading slash.
pub(crate) fn path_of(t: &impl Tx, vol: Ino, dir: Ino, name: &[u8]) -> Result<Vec<u8>> {
    let mut parts = vec![name.to_vec()];
    let mut at = dir;
    while at != vol {
        let (parent, n) = t
            .entry_of(at)?
            .ok_or_else(|| MetaError::NotFound(format!("the path of inode {at}")))?;
        parts.push(n);
        at = parent;
    }
    parts.reverse();
    Ok(parts.join(&b'/'))
}

/// Called when `ino`, just unlinked from `name` in `parent`, may have lost
/// its last name: keeps it in the volume's trash if the volume has one.
pub(crate) fn keep_if_trashed(
    t: &impl Tx,
    vol: Ino,
    parent: Ino,
    name: &[u8],
    ino: Ino,
    now: Timespec,
) -> Result<()> {
    if t.nlink(ino)? != Some(0) {
        return Ok(());
    }
    let keep = t.file_trash_retention(vol)?;
    if keep <= 0 {
        return Ok(());
    }
    let path = path_of(t, vol, parent, name)?;
    let at = ms(now);
    t.insert_trashed(vol, ino, &path, at, at.saturating_add(keep))
}

/// Gives trashed inode `ino` the name `path` (relative to the volume's
/// root) again, making missing directories on the way (mode 0755, owned
/// as the file is). `AlreadyExists` if the name is taken. Returns the
/// directory it went into and the directories made, for the change set.
pub(crate) fn restore(
    t: &impl Tx,
    vol: Ino,
    ino: Ino,
    path: &[u8],
    now: Timespec,
) -> Result<(Ino, NewEntries)> {
    let a = attr(t, vol, ino)?;
    let parts: Vec<&[u8]> = path
        .split(|b| *b == b'/')
        .filter(|p| !p.is_empty())
        .collect();
    let Some((name, dirs)) = parts.split_last() else {
        return Err(MetaError::InvalidArgument("an empty path".into()));
    };
    let mut made = Vec::new();
    let mut at = vol;
    for d in dirs {
        at = match t.child(at, d)? {
            Some(i) => {
                dir(t, vol, i)?;
                i
            }
            None => {
                let node = NewNode {
                    kind: FileKind::Directory,
                    mode: 0o755,
                    uid: a.uid,
                    gid: a.gid,
                    rdev: 0,
                    target: Vec::new(),
                };
                made.push((at, d.to_vec()));
                create(t, vol, at, d, &node, true, now)?.ino
            }
        };
    }
    if t.child(at, name)?.is_some() {
        return Err(MetaError::AlreadyExists(format!(
            "/{} (restore it under another path with --as)",
            String::from_utf8_lossy(path)
        )));
    }
    check_name(name)?;
    t.insert_entry(at, name, ino)?;
    t.update_inode(
        ino,
        &InodeUpdate {
            nlink: Some(Nlink::Set(1)),
            ctime: Some(now),
            ..Default::default()
        },
    )?;
    touch_dir(t, at, now)?;
    t.delete_trashed(ino)?;
    made.push((at, name.to_vec()));
    Ok((at, made))
}

/// Drops trashed inode `ino` for good (unless a mount still has it open:
/// then it goes when the last one closes it).
pub(crate) fn purge(t: &impl Tx, ino: Ino, freed: &mut Freed) -> Result<()> {
    t.delete_trashed(ino)?;
    destroy_if_unreachable(t, ino, freed)
}
