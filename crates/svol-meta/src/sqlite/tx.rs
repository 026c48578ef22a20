//! The storage primitives of the tree rules (`crate::tree::Tx`) as SQL on
//! one SQLite transaction.

use rusqlite::{params, Connection, OptionalExtension};

use super::rows::{self, DELETING};
use crate::tree::{HeldLock, InodeUpdate, Nlink, Tx};
use crate::types::*;
use crate::Result;

/// One open transaction (read or write) of the SQLite backend.
pub(crate) struct SqlTx<'a>(pub(crate) &'a Connection);

// Lock offsets are SQLite integers: ends past i64::MAX (none that the
// rules let through) would not fit.
fn off(v: u64) -> i64 {
    v.min(i64::MAX as u64) as i64
}

fn kind_of(k: i64) -> LockKind {
    if k == 1 {
        LockKind::Write
    } else {
        LockKind::Read
    }
}

fn kind_db(k: LockKind) -> i64 {
    match k {
        LockKind::Read => 0,
        LockKind::Write => 1,
    }
}

impl SqlTx<'_> {
    /// Does the query return any row?
    fn any(&self, sql: &str, p: impl rusqlite::Params) -> Result<bool> {
        Ok(self
            .0
            .prepare_cached(sql)?
            .query_row(p, |_| Ok(()))
            .optional()?
            .is_some())
    }
}

/// A lock range from columns session, owner, kind, start, end (and pid).
fn lock_range(r: &rusqlite::Row<'_>, at: usize, pid: Option<usize>) -> rusqlite::Result<LockRange> {
    Ok(LockRange {
        session: r.get(at)?,
        owner: r.get::<_, i64>(at + 1)? as u64,
        kind: kind_of(r.get(at + 2)?),
        start: r.get::<_, i64>(at + 3)?.max(0) as u64,
        end: r.get::<_, i64>(at + 4)?.max(0) as u64,
        pid: match pid {
            Some(i) => r.get::<_, i64>(i)? as u32,
            None => 0,
        },
    })
}

impl Tx for SqlTx<'_> {
    fn attr(&self, vol: Ino, ino: Ino) -> Result<Option<Attr>> {
        Ok(self
            .0
            .prepare_cached(&format!(
                "SELECT {} FROM inodes WHERE ino = ?1 AND volume = ?2",
                rows::ATTR_COLS
            ))?
            .query_row(params![ino as i64, vol as i64], |r| rows::row_attr(r, 0))
            .optional()?)
    }

    fn insert_inode(&self, vol: Ino, n: &NewNode, nlink: u32, now: Timespec) -> Result<Ino> {
        let size = if n.kind == FileKind::Symlink {
            n.target.len() as i64
        } else {
            0
        };
        let target: Option<&[u8]> = (n.kind == FileKind::Symlink).then_some(&n.target[..]);
        self.0.prepare_cached(
            "INSERT INTO inodes(volume, kind, mode, uid, gid, nlink, size, atime_s, atime_ns, mtime_s, \
             mtime_ns, ctime_s, ctime_ns, rdev, version, target) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?8, ?9, ?8, ?9, ?10, 0, ?11)",
        )?
        .execute(params![
            vol as i64,
            n.kind as i64,
            (n.mode & 0o7777) as i64,
            n.uid as i64,
            n.gid as i64,
            nlink as i64,
            size,
            now.sec,
            now.nsec as i64,
            n.rdev as i64,
            target
        ])?;
        Ok(self.0.last_insert_rowid() as u64)
    }

    fn update_inode(&self, ino: Ino, u: &InodeUpdate) -> Result<()> {
        let (nlink_set, nlink_add) = match u.nlink {
            Some(Nlink::Set(n)) => (Some(n as i64), 0),
            Some(Nlink::Add(d)) => (None, d),
            None => (None, 0),
        };
        self.0
            .prepare_cached(
                "UPDATE inodes SET mode = coalesce(?2, mode), uid = coalesce(?3, uid), \
                 gid = coalesce(?4, gid), size = coalesce(?5, size), \
                 nlink = coalesce(?6, max(nlink + ?7, 0)), \
                 atime_s = coalesce(?8, atime_s), atime_ns = coalesce(?9, atime_ns), \
                 mtime_s = coalesce(?10, mtime_s), mtime_ns = coalesce(?11, mtime_ns), \
                 ctime_s = coalesce(?12, ctime_s), ctime_ns = coalesce(?13, ctime_ns), \
                 version = version + ?14 WHERE ino = ?1",
            )?
            .execute(params![
                ino as i64,
                u.mode.map(|m| m as i64),
                u.uid.map(|v| v as i64),
                u.gid.map(|v| v as i64),
                u.size.map(|s| s as i64),
                nlink_set,
                nlink_add,
                u.atime.map(|t| t.sec),
                u.atime.map(|t| t.nsec as i64),
                u.mtime.map(|t| t.sec),
                u.mtime.map(|t| t.nsec as i64),
                u.ctime.map(|t| t.sec),
                u.ctime.map(|t| t.nsec as i64),
                u.new_version as i64
            ])?;
        Ok(())
    }

    fn delete_inode(&self, ino: Ino) -> Result<()> {
        self.0
            .prepare_cached("DELETE FROM xattrs WHERE ino = ?1")?
            .execute(params![ino as i64])?;
        self.0
            .prepare_cached("DELETE FROM lock_fences WHERE ino = ?1")?
            .execute(params![ino as i64])?;
        self.0
            .prepare_cached("DELETE FROM inodes WHERE ino = ?1")?
            .execute(params![ino as i64])?;
        Ok(())
    }

    fn nlink(&self, ino: Ino) -> Result<Option<u32>> {
        Ok(self
            .0
            .prepare_cached("SELECT nlink FROM inodes WHERE ino = ?1")?
            .query_row(params![ino as i64], |r| r.get::<_, i64>(0))
            .optional()?
            .map(|n| n as u32))
    }

    fn symlink_target(&self, ino: Ino) -> Result<Vec<u8>> {
        Ok(self
            .0
            .prepare_cached("SELECT target FROM inodes WHERE ino = ?1")?
            .query_row(params![ino as i64], |r| r.get::<_, Option<Vec<u8>>>(0))
            .optional()?
            .flatten()
            .unwrap_or_default())
    }

    fn volume_workspace(&self, vol: Ino) -> Result<WorkspaceId> {
        rows::volume_workspace(self.0, vol)
    }

    fn inode_workspace(&self, ino: Ino) -> Result<WorkspaceId> {
        self.0
            .prepare_cached(
                "SELECT v.workspace FROM inodes i JOIN volumes v ON v.root = i.volume \
                 WHERE i.ino = ?1",
            )?
            .query_row(params![ino as i64], |r| r.get(0))
            .optional()?
            .ok_or_else(|| crate::MetaError::NotFound(format!("inode {ino}")))
    }

    fn child(&self, parent: Ino, name: &[u8]) -> Result<Option<Ino>> {
        Ok(self
            .0
            .prepare_cached("SELECT ino FROM dentries WHERE parent = ?1 AND name = ?2")?
            .query_row(params![parent as i64, name], |r| r.get::<_, i64>(0))
            .optional()?
            .map(|i| i as u64))
    }

    fn insert_entry(&self, parent: Ino, name: &[u8], ino: Ino) -> Result<()> {
        self.0
            .prepare_cached("INSERT INTO dentries(parent, name, ino) VALUES (?1, ?2, ?3)")?
            .execute(params![parent as i64, name, ino as i64])?;
        Ok(())
    }

    fn delete_entry(&self, parent: Ino, name: &[u8]) -> Result<()> {
        self.0
            .prepare_cached("DELETE FROM dentries WHERE parent = ?1 AND name = ?2")?
            .execute(params![parent as i64, name])?;
        Ok(())
    }

    fn repoint_entry(&self, parent: Ino, name: &[u8], ino: Ino) -> Result<()> {
        self.0
            .prepare_cached("UPDATE dentries SET ino = ?3 WHERE parent = ?1 AND name = ?2")?
            .execute(params![parent as i64, name, ino as i64])?;
        Ok(())
    }

    fn move_entry(&self, parent: Ino, name: &[u8], new_parent: Ino, new_name: &[u8]) -> Result<()> {
        self.0
            .prepare_cached(
                "UPDATE dentries SET parent = ?3, name = ?4 WHERE parent = ?1 AND name = ?2",
            )?
            .execute(params![parent as i64, name, new_parent as i64, new_name])?;
        Ok(())
    }

    fn has_entries(&self, dir: Ino) -> Result<bool> {
        self.any(
            "SELECT 1 FROM dentries WHERE parent = ?1 LIMIT 1",
            params![dir as i64],
        )
    }

    fn parent_of(&self, dir: Ino) -> Result<Option<Ino>> {
        Ok(self
            .0
            .prepare_cached("SELECT parent FROM dentries WHERE ino = ?1 LIMIT 1")?
            .query_row(params![dir as i64], |r| r.get::<_, i64>(0))
            .optional()?
            .map(|i| i as u64))
    }

    fn entries(&self, dir: Ino, after: u64, limit: usize) -> Result<Vec<DirEntry>> {
        let cols = rows::ATTR_COLS
            .split(", ")
            .map(|c| format!("i.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut st = self.0.prepare_cached(&format!(
            "SELECT d.id, d.name, {cols} FROM dentries d JOIN inodes i ON i.ino = d.ino \
             WHERE d.parent = ?1 AND d.id > ?2 ORDER BY d.id LIMIT ?3"
        ))?;
        let rows = st.query_map(params![dir as i64, after as i64, limit as i64], |r| {
            Ok(DirEntry {
                cookie: r.get::<_, i64>(0)? as u64,
                name: r.get(1)?,
                attr: rows::row_attr(r, 2)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn chunks(&self, ino: Ino) -> Result<Vec<Chunk>> {
        rows::chunks(self.0, ino)
    }

    fn chunk(&self, ino: Ino, index: u64) -> Result<Option<Chunk>> {
        type Row = (i64, Option<Vec<u8>>, Option<Vec<u8>>);
        let row: Option<Row> = self
            .0
            .prepare_cached("SELECT len, hash, data FROM chunks WHERE ino = ?1 AND idx = ?2")?
            .query_row(params![ino as i64, index as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        row.map(|(len, hash, data)| {
            Ok(Chunk {
                index,
                len: len as u32,
                data: match hash {
                    Some(h) => ChunkData::Block(rows::to_hash(h)?),
                    None => ChunkData::Inline(data.unwrap_or_default()),
                },
            })
        })
        .transpose()
    }

    fn put_chunk(&self, ino: Ino, c: &Chunk) -> Result<()> {
        let (hash, data): (Option<&[u8]>, Option<&[u8]>) = match &c.data {
            ChunkData::Block(h) => (Some(&h[..]), None),
            ChunkData::Inline(d) => (None, Some(&d[..])),
        };
        self.0
            .prepare_cached(
                "INSERT OR REPLACE INTO chunks(ino, idx, len, hash, data) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                ino as i64,
                c.index as i64,
                c.len as i64,
                hash,
                data
            ])?;
        Ok(())
    }

    fn remove_chunks_from(&self, ino: Ino, first: u64) -> Result<Vec<BlockId>> {
        let hashes: Vec<Vec<u8>> = self
            .0
            .prepare_cached("DELETE FROM chunks WHERE ino = ?1 AND idx >= ?2 RETURNING hash")?
            .query_map(params![ino as i64, first as i64], |r| {
                r.get::<_, Option<Vec<u8>>>(0)
            })?
            .filter_map(|h| h.transpose())
            .collect::<rusqlite::Result<_>>()?;
        hashes.into_iter().map(rows::to_hash).collect()
    }

    fn shorten_chunk(&self, ino: Ino, index: u64, len: u32) -> Result<()> {
        self.0
            .prepare_cached(
                "UPDATE chunks SET len = min(len, ?3), data = CASE WHEN data IS NULL THEN NULL \
                 ELSE substr(data, 1, ?3) END WHERE ino = ?1 AND idx = ?2",
            )?
            .execute(params![ino as i64, index as i64, len as i64])?;
        Ok(())
    }

    fn add_block_refs(&self, ws: WorkspaceId, hash: &BlockId, n: i64) -> Result<bool> {
        let changed = self
            .0
            .prepare_cached(
                "UPDATE blocks SET refs = refs + ?3 \
                 WHERE workspace = ?1 AND hash = ?2 AND pending_until <> ?4",
            )?
            .execute(params![ws, &hash[..], n, DELETING])?;
        Ok(changed > 0)
    }

    fn drop_block_refs(&self, ws: WorkspaceId, hash: &BlockId, n: i64) -> Result<bool> {
        let refs: Option<i64> = self
            .0
            .prepare_cached(
                "UPDATE blocks SET refs = refs - ?3 WHERE workspace = ?1 AND hash = ?2 \
                 RETURNING refs",
            )?
            .query_row(params![ws, &hash[..], n], |r| r.get(0))
            .optional()?;
        match refs {
            Some(r) if r <= 0 => {
                // Unreferenced from now: the reaper may take it.
                self.0
                    .prepare_cached(
                        "UPDATE blocks SET pending_until = 0 WHERE workspace = ?1 AND hash = ?2",
                    )?
                    .execute(params![ws, &hash[..]])?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn xattr(&self, ino: Ino, name: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self
            .0
            .prepare_cached("SELECT value FROM xattrs WHERE ino = ?1 AND name = ?2")?
            .query_row(params![ino as i64, name], |r| r.get(0))
            .optional()?)
    }

    fn put_xattr(&self, ino: Ino, name: &[u8], value: &[u8]) -> Result<()> {
        self.0
            .prepare_cached("INSERT OR REPLACE INTO xattrs(ino, name, value) VALUES (?1, ?2, ?3)")?
            .execute(params![ino as i64, name, value])?;
        Ok(())
    }

    fn delete_xattr(&self, ino: Ino, name: &[u8]) -> Result<bool> {
        Ok(self
            .0
            .prepare_cached("DELETE FROM xattrs WHERE ino = ?1 AND name = ?2")?
            .execute(params![ino as i64, name])?
            > 0)
    }

    fn xattr_names(&self, ino: Ino) -> Result<Vec<Vec<u8>>> {
        let mut st = self
            .0
            .prepare_cached("SELECT name FROM xattrs WHERE ino = ?1 ORDER BY name")?;
        let v = st
            .query_map(params![ino as i64], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(v)
    }

    fn copy_xattrs(&self, from: Ino, to: Ino) -> Result<()> {
        self.0
            .prepare_cached(
                "INSERT INTO xattrs(ino, name, value) SELECT ?2, name, value FROM xattrs \
                 WHERE ino = ?1",
            )?
            .execute(params![from as i64, to as i64])?;
        Ok(())
    }

    fn add_open(&self, session: &str, ino: Ino) -> Result<()> {
        self.0
            .prepare_cached(
                "INSERT INTO opens(session, ino, count) VALUES (?1, ?2, 1) \
                 ON CONFLICT(session, ino) DO UPDATE SET count = count + 1",
            )?
            .execute(params![session, ino as i64])?;
        Ok(())
    }

    fn drop_open(&self, session: &str, ino: Ino) -> Result<()> {
        let left: Option<i64> = self
            .0
            .prepare_cached(
                "UPDATE opens SET count = count - 1 WHERE session = ?1 AND ino = ?2 \
                 RETURNING count",
            )?
            .query_row(params![session, ino as i64], |r| r.get(0))
            .optional()?;
        if left.is_some_and(|n| n <= 0) {
            self.0
                .prepare_cached("DELETE FROM opens WHERE session = ?1 AND ino = ?2")?
                .execute(params![session, ino as i64])?;
        }
        Ok(())
    }

    fn is_open(&self, ino: Ino) -> Result<bool> {
        self.any(
            "SELECT 1 FROM opens WHERE ino = ?1 LIMIT 1",
            params![ino as i64],
        )
    }

    fn session_expires(&self, id: &str) -> Result<Option<i64>> {
        Ok(self
            .0
            .prepare_cached("SELECT expires FROM sessions WHERE id = ?1")?
            .query_row(params![id], |r| r.get(0))
            .optional()?)
    }

    fn locks_on(&self, ino: Ino) -> Result<Vec<HeldLock>> {
        let mut st = self.0.prepare_cached(
            "SELECT id, session, owner, kind, start, end_, pid, fence FROM locks WHERE ino = ?1",
        )?;
        let v = st
            .query_map(params![ino as i64], |r| {
                Ok(HeldLock {
                    id: r.get(0)?,
                    range: lock_range(r, 1, Some(6))?,
                    fence: r.get::<_, i64>(7)? as u64,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(v)
    }

    fn insert_lock(&self, ino: Ino, l: &LockRange, fence: u64) -> Result<()> {
        self.0
            .prepare_cached(
                "INSERT INTO locks(ino, session, owner, kind, start, end_, pid, fence) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                ino as i64,
                l.session,
                l.owner as i64,
                kind_db(l.kind),
                off(l.start),
                off(l.end),
                l.pid as i64,
                fence as i64
            ])?;
        Ok(())
    }

    fn delete_lock(&self, id: i64) -> Result<()> {
        self.0
            .prepare_cached("DELETE FROM locks WHERE id = ?1")?
            .execute(params![id])?;
        Ok(())
    }

    fn next_fence(&self, ino: Ino) -> Result<u64> {
        let f: i64 = self
            .0
            .prepare_cached(
                "INSERT INTO lock_fences(ino, fence) VALUES (?1, 1) \
                 ON CONFLICT(ino) DO UPDATE SET fence = fence + 1 RETURNING fence",
            )?
            .query_row(params![ino as i64], |r| r.get(0))?;
        Ok(f as u64)
    }

    fn waiters_before(&self, ino: Ino, ticket: Option<u64>) -> Result<Vec<LockRange>> {
        let before = ticket.map(|t| t as i64).unwrap_or(i64::MAX);
        let mut st = self.0.prepare_cached(
            "SELECT session, owner, kind, start, end_ FROM lock_waiters \
             WHERE ino = ?1 AND ticket < ?2",
        )?;
        let v = st
            .query_map(params![ino as i64, before], |r| lock_range(r, 0, None))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(v)
    }

    fn count_waiters(&self, ino: Ino) -> Result<usize> {
        let n: i64 = self
            .0
            .prepare_cached("SELECT count(*) FROM lock_waiters WHERE ino = ?1")?
            .query_row(params![ino as i64], |r| r.get(0))?;
        Ok(n as usize)
    }

    fn insert_waiter(&self, ino: Ino, l: &LockRange) -> Result<u64> {
        self.0
            .prepare_cached(
                "INSERT INTO lock_waiters(ino, session, owner, kind, start, end_) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                ino as i64,
                l.session,
                l.owner as i64,
                kind_db(l.kind),
                off(l.start),
                off(l.end)
            ])?;
        Ok(self.0.last_insert_rowid() as u64)
    }

    fn delete_waiter(&self, ticket: u64) -> Result<Option<Ino>> {
        Ok(self
            .0
            .prepare_cached("DELETE FROM lock_waiters WHERE ticket = ?1 RETURNING ino")?
            .query_row(params![ticket as i64], |r| r.get::<_, i64>(0))
            .optional()?
            .map(|i| i as u64))
    }

    fn drop_session_locks(&self, session: &str) -> Result<Vec<Ino>> {
        let mut inos: Vec<i64> = self
            .0
            .prepare_cached("DELETE FROM locks WHERE session = ?1 RETURNING ino")?
            .query_map(params![session], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let waits: Vec<i64> = self
            .0
            .prepare_cached("DELETE FROM lock_waiters WHERE session = ?1 RETURNING ino")?
            .query_map(params![session], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        inos.extend(waits);
        inos.sort_unstable();
        inos.dedup();
        Ok(inos.into_iter().map(|i| i as u64).collect())
    }

    fn append_feed(&self, e: &FeedEntry) -> Result<u64> {
        super::feed::append(self.0, e)
    }

    fn feed_head(&self) -> Result<u64> {
        super::feed::head(self.0)
    }
}
