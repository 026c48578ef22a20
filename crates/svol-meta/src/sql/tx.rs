//! The storage primitives of the tree rules (`crate::tree::Tx`) as SQL on
//! one transaction of any engine.

use std::cell::RefCell;
use std::collections::HashMap;

use super::rows;
use super::{args, Conn, ConnExt, Dialect, Row};
use crate::tree::{HeldLock, InodeUpdate, Nlink, Tx};
use crate::types::*;
use crate::Result;

/// One open transaction (read or write) of an SQL engine.
pub(crate) struct SqlTx<'a> {
    c: &'a dyn Conn,
    /// Inodes as this transaction last wrote them (`RETURNING`), by inode:
    /// the change set reads back what the operation just wrote without
    /// asking the database again. Every write to an inode row goes through
    /// `insert_inode`, `update_inode` or `delete_inode`.
    written: RefCell<HashMap<Ino, (Ino, Attr)>>,
}

impl<'a> SqlTx<'a> {
    /// The connection under the primitives, for a query they lack.
    pub(crate) fn conn(&self) -> &'a dyn Conn {
        self.c
    }

    pub(crate) fn new(c: &'a dyn Conn) -> Self {
        Self {
            c,
            written: RefCell::default(),
        }
    }

    /// Remembers an inode row returned as `volume, attr_cols!()`.
    fn wrote(&self, r: &dyn Row) -> Result<Attr> {
        let a = rows::row_attr(r, 1)?;
        self.written
            .borrow_mut()
            .insert(a.ino, (r.int(0)? as u64, a.clone()));
        Ok(a)
    }
}

// Lock offsets are 64-bit signed integers in SQL: ends past i64::MAX (none
// that the rules let through) would not fit.
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

/// A lock range from columns session, owner, kind, start, end (and pid).
fn lock_range(r: &dyn Row, at: usize, pid: Option<usize>) -> Result<LockRange> {
    Ok(LockRange {
        session: r.text(at)?,
        owner: r.int(at + 1)? as u64,
        kind: kind_of(r.int(at + 2)?),
        start: r.int(at + 3)?.max(0) as u64,
        end: r.int(at + 4)?.max(0) as u64,
        pid: match pid {
            Some(i) => r.int(i)? as u32,
            None => 0,
        },
    })
}

impl Tx for SqlTx<'_> {
    fn attr(&self, vol: Ino, ino: Ino) -> Result<Option<Attr>> {
        if let Some((v, a)) = self.written.borrow().get(&ino) {
            return Ok((*v == vol).then(|| a.clone()));
        }
        self.c.row(
            concat!(
                "SELECT ",
                rows::attr_cols!(),
                " FROM inodes WHERE ino = ?1 AND volume = ?2"
            ),
            args![ino as i64, vol as i64],
            |r| rows::row_attr(r, 0),
        )
    }

    fn insert_inode(
        &self,
        vol: Ino,
        n: &NewNode,
        nlink: u32,
        now: Timespec,
        ino: Option<Ino>,
    ) -> Result<Ino> {
        let size = if n.kind == FileKind::Symlink {
            n.target.len() as i64
        } else {
            0
        };
        let target: Option<&[u8]> = (n.kind == FileKind::Symlink).then_some(&n.target[..]);
        // Counted (and refused past a quota) before anything is written.
        super::quota::add_inode(self.c, vol)?;
        let a = args![
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
            target,
            ino.map(|i| i as i64)
        ];
        let row = match ino {
            None => self.c.row(
                concat!(
                    "INSERT INTO inodes(volume, kind, mode, uid, gid, nlink, size, atime_s, \
                     atime_ns, mtime_s, mtime_ns, ctime_s, ctime_ns, rdev, version, target) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?8, ?9, ?8, ?9, ?10, 0, ?11) \
                     RETURNING volume, ",
                    rows::attr_cols!()
                ),
                &a[..11],
                |r| self.wrote(r),
            )?,
            Some(_) => self.c.row(
                concat!(
                    "INSERT INTO inodes(ino, volume, kind, mode, uid, gid, nlink, size, \
                     atime_s, atime_ns, mtime_s, mtime_ns, ctime_s, ctime_ns, rdev, version, \
                     target) \
                     VALUES (?12, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?8, ?9, ?8, ?9, ?10, 0, \
                     ?11) RETURNING volume, ",
                    rows::attr_cols!()
                ),
                a,
                |r| self.wrote(r),
            )?,
        };
        row.map(|a| a.ino)
            .ok_or_else(|| crate::MetaError::Backend("insert returned no inode".into()))
    }

    fn reserve_inos(&self, session: &str, n: usize) -> Result<Vec<Ino>> {
        let n = n as i64;
        let inos = match self.c.dialect() {
            // AUTOINCREMENT never hands out a number at or below the
            // table's sequence, so moving the sequence on reserves the
            // numbers passed over.
            Dialect::Sqlite => {
                let top = match self.c.int(
                    "UPDATE sqlite_sequence SET seq = seq + ?1 WHERE name = 'inodes' \
                     RETURNING seq",
                    args![n],
                )? {
                    Some(top) => top,
                    None => {
                        self.c.exec(
                            "INSERT INTO sqlite_sequence(name, seq) VALUES ('inodes', ?1)",
                            args![n],
                        )?;
                        n
                    }
                };
                self.c.exec(
                    "WITH RECURSIVE s(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM s \
                     WHERE i < ?2) INSERT INTO reserved_inos(ino, session) SELECT i, ?3 FROM s",
                    args![top - n + 1, top, session],
                )?;
                ((top - n + 1)..=top).map(|i| i as Ino).collect()
            }
            Dialect::Postgres => self.c.rows(
                "INSERT INTO reserved_inos(ino, session) \
                 SELECT nextval(pg_get_serial_sequence('inodes', 'ino')), ?2 \
                 FROM generate_series(1, ?1) RETURNING ino",
                args![n, session],
                |r| Ok(r.int(0)? as Ino),
            )?,
        };
        Ok(inos)
    }

    fn take_reserved(&self, session: &str, ino: Ino) -> Result<bool> {
        Ok(self.c.exec(
            "DELETE FROM reserved_inos WHERE ino = ?1 AND session = ?2",
            args![ino as i64, session],
        )? == 1)
    }

    fn update_inode(&self, ino: Ino, u: &InodeUpdate) -> Result<()> {
        let (nlink_set, nlink_add) = match u.nlink {
            Some(Nlink::Set(n)) => (Some(n as i64), 0),
            Some(Nlink::Add(d)) => (None, d),
            None => (None, 0),
        };
        self.c.row(
            concat!(
                "UPDATE inodes SET mode = coalesce(?2, mode), uid = coalesce(?3, uid), \
                 gid = coalesce(?4, gid), size = coalesce(?5, size), \
                 nlink = coalesce(?6, CASE WHEN nlink + ?7 > 0 THEN nlink + ?7 ELSE 0 END), \
                 atime_s = coalesce(?8, atime_s), atime_ns = coalesce(?9, atime_ns), \
                 mtime_s = coalesce(?10, mtime_s), mtime_ns = coalesce(?11, mtime_ns), \
                 ctime_s = coalesce(?12, ctime_s), ctime_ns = coalesce(?13, ctime_ns), \
                 version = version + ?14 WHERE ino = ?1 RETURNING volume, ",
                rows::attr_cols!()
            ),
            args![
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
            ],
            |r| self.wrote(r),
        )?;
        Ok(())
    }

    fn delete_inode(&self, ino: Ino) -> Result<()> {
        self.written.borrow_mut().remove(&ino);
        super::quota::drop_inode(self.c, ino)?;
        for sql in [
            "DELETE FROM xattrs WHERE ino = ?1",
            "DELETE FROM lock_fences WHERE ino = ?1",
            "DELETE FROM inodes WHERE ino = ?1",
        ] {
            self.c.exec(sql, args![ino as i64])?;
        }
        Ok(())
    }

    fn nlink(&self, ino: Ino) -> Result<Option<u32>> {
        if let Some((_, a)) = self.written.borrow().get(&ino) {
            return Ok(Some(a.nlink));
        }
        Ok(self
            .c
            .int("SELECT nlink FROM inodes WHERE ino = ?1", args![ino as i64])?
            .map(|n| n as u32))
    }

    fn symlink_target(&self, ino: Ino) -> Result<Vec<u8>> {
        Ok(self
            .c
            .row(
                "SELECT target FROM inodes WHERE ino = ?1",
                args![ino as i64],
                |r| r.opt_bytes(0),
            )?
            .flatten()
            .unwrap_or_default())
    }

    fn volume_workspace(&self, vol: Ino) -> Result<WorkspaceId> {
        rows::volume_workspace(self.c, vol)
    }

    fn inode_workspace(&self, ino: Ino) -> Result<WorkspaceId> {
        self.c
            .int(
                "SELECT v.workspace FROM inodes i JOIN volumes v ON v.root = i.volume \
                 WHERE i.ino = ?1",
                args![ino as i64],
            )?
            .ok_or_else(|| crate::MetaError::NotFound(format!("inode {ino}")))
    }

    fn child(&self, parent: Ino, name: &[u8]) -> Result<Option<Ino>> {
        Ok(self
            .c
            .int(
                "SELECT ino FROM dentries WHERE parent = ?1 AND name = ?2",
                args![parent as i64, name],
            )?
            .map(|i| i as u64))
    }

    fn insert_entry(&self, parent: Ino, name: &[u8], ino: Ino) -> Result<()> {
        self.c.exec(
            "INSERT INTO dentries(parent, name, ino) VALUES (?1, ?2, ?3)",
            args![parent as i64, name, ino as i64],
        )?;
        Ok(())
    }

    fn delete_entry(&self, parent: Ino, name: &[u8]) -> Result<()> {
        self.c.exec(
            "DELETE FROM dentries WHERE parent = ?1 AND name = ?2",
            args![parent as i64, name],
        )?;
        Ok(())
    }

    fn repoint_entry(&self, parent: Ino, name: &[u8], ino: Ino) -> Result<()> {
        self.c.exec(
            "UPDATE dentries SET ino = ?3 WHERE parent = ?1 AND name = ?2",
            args![parent as i64, name, ino as i64],
        )?;
        Ok(())
    }

    fn move_entry(&self, parent: Ino, name: &[u8], new_parent: Ino, new_name: &[u8]) -> Result<()> {
        self.c.exec(
            "UPDATE dentries SET parent = ?3, name = ?4 WHERE parent = ?1 AND name = ?2",
            args![parent as i64, name, new_parent as i64, new_name],
        )?;
        Ok(())
    }

    fn has_entries(&self, dir: Ino) -> Result<bool> {
        self.c.any(
            "SELECT 1 FROM dentries WHERE parent = ?1 LIMIT 1",
            args![dir as i64],
        )
    }

    fn entry_of(&self, ino: Ino) -> Result<Option<(Ino, Vec<u8>)>> {
        self.c.row(
            "SELECT parent, name FROM dentries WHERE ino = ?1 LIMIT 1",
            args![ino as i64],
            |r| Ok((r.int(0)? as Ino, r.bytes(1)?)),
        )
    }

    fn parent_of(&self, dir: Ino) -> Result<Option<Ino>> {
        Ok(self
            .c
            .int(
                "SELECT parent FROM dentries WHERE ino = ?1 LIMIT 1",
                args![dir as i64],
            )?
            .map(|i| i as u64))
    }

    fn entries(&self, dir: Ino, after: u64, limit: usize) -> Result<Vec<DirEntry>> {
        let cols = rows::attr_cols!()
            .split(',')
            .map(str::trim)
            .map(|c| format!("i.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        self.c.rows(
            &format!(
                "SELECT d.id, d.name, {cols} FROM dentries d JOIN inodes i ON i.ino = d.ino \
                 WHERE d.parent = ?1 AND d.id > ?2 ORDER BY d.id LIMIT ?3"
            ),
            args![dir as i64, after as i64, limit as i64],
            |r| {
                Ok(DirEntry {
                    cookie: r.int(0)? as u64,
                    name: r.bytes(1)?,
                    attr: rows::row_attr(r, 2)?,
                })
            },
        )
    }

    fn chunks(&self, ino: Ino) -> Result<Vec<Chunk>> {
        rows::chunks(self.c, ino)
    }

    fn chunk(&self, ino: Ino, index: u64) -> Result<Option<Chunk>> {
        self.c.row(
            "SELECT len, hash, data FROM chunks WHERE ino = ?1 AND idx = ?2",
            args![ino as i64, index as i64],
            |r| {
                Ok(Chunk {
                    index,
                    len: r.int(0)? as u32,
                    data: rows::chunk_data(r.opt_bytes(1)?, r.opt_bytes(2)?)?,
                })
            },
        )
    }

    fn put_chunk(&self, ino: Ino, c: &Chunk) -> Result<()> {
        let (hash, data): (Option<&[u8]>, Option<&[u8]>) = match &c.data {
            ChunkData::Block(h) => (Some(&h[..]), None),
            ChunkData::Inline(d) => (None, Some(&d[..])),
        };
        let scope = super::quota::chunk_scope(self.c, ino)?;
        let old = match scope {
            Some(_) => self.c.row(
                "SELECT hash, length(data) FROM chunks WHERE ino = ?1 AND idx = ?2",
                args![ino as i64, c.index as i64],
                |r| Ok((r.opt_bytes(0)?, r.opt_int(1)?.unwrap_or(0))),
            )?,
            None => None,
        };
        self.c.exec(
            "INSERT INTO chunks(ino, idx, len, hash, data) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT(ino, idx) DO UPDATE SET len = excluded.len, hash = excluded.hash, \
             data = excluded.data",
            args![ino as i64, c.index as i64, c.len as i64, hash, data],
        )?;
        if let Some(s) = scope {
            let (old_hash, old_len) = old.unwrap_or((None, 0));
            let new_len = data.map(|d| d.len() as i64).unwrap_or(0);
            super::quota::chunk_changed(
                self.c,
                &s,
                (old_hash.as_deref(), old_len),
                (hash, new_len),
            )?;
        }
        Ok(())
    }

    fn check_commit_quota(&self, vol: Ino, ino: Ino, new: &[Chunk]) -> Result<()> {
        super::quota::check_commit(self.c, vol, ino, new)
    }

    fn remove_chunks_from(&self, ino: Ino, first: u64) -> Result<Vec<BlockId>> {
        let scope = super::quota::chunk_scope(self.c, ino)?;
        let gone = self.c.rows(
            "DELETE FROM chunks WHERE ino = ?1 AND idx >= ?2 RETURNING hash, length(data)",
            args![ino as i64, first as i64],
            |r| Ok((r.opt_bytes(0)?, r.opt_int(1)?.unwrap_or(0))),
        )?;
        if let Some(s) = scope {
            for (h, len) in &gone {
                super::quota::chunk_changed(self.c, &s, (h.as_deref(), *len), (None, 0))?;
            }
        }
        gone.into_iter()
            .filter_map(|(h, _)| h)
            .map(rows::to_hash)
            .collect()
    }

    fn shorten_chunk(&self, ino: Ino, index: u64, len: u32) -> Result<()> {
        if let Some(s) = super::quota::chunk_scope(self.c, ino)? {
            let old = self
                .c
                .int(
                    "SELECT length(data) FROM chunks WHERE ino = ?1 AND idx = ?2",
                    args![ino as i64, index as i64],
                )?
                .unwrap_or(0);
            let new = old.min(len as i64);
            super::quota::chunk_changed(self.c, &s, (None, old), (None, new))?;
        }
        self.c.exec(
            "UPDATE chunks SET len = CASE WHEN len < ?3 THEN len ELSE ?3 END, \
             data = CASE WHEN data IS NULL THEN NULL ELSE substr(data, 1, ?4) END \
             WHERE ino = ?1 AND idx = ?2",
            args![ino as i64, index as i64, len as i64, len as i64],
        )?;
        Ok(())
    }

    fn add_block_refs(&self, ws: WorkspaceId, hash: &BlockId, n: i64) -> Result<bool> {
        let changed = self.c.exec(
            "UPDATE blocks SET refs = refs + ?3 \
             WHERE workspace = ?1 AND hash = ?2 AND pending_until >= 0",
            args![ws, &hash[..], n],
        )?;
        Ok(changed > 0)
    }

    fn drop_block_refs(&self, ws: WorkspaceId, hash: &BlockId, n: i64) -> Result<bool> {
        let refs = self.c.int(
            "UPDATE blocks SET refs = refs - ?3 WHERE workspace = ?1 AND hash = ?2 \
             RETURNING refs",
            args![ws, &hash[..], n],
        )?;
        match refs {
            Some(r) if r <= 0 => {
                // Unreferenced from now: the reaper may take it.
                self.c.exec(
                    "UPDATE blocks SET pending_until = 0 WHERE workspace = ?1 AND hash = ?2",
                    args![ws, &hash[..]],
                )?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn xattr(&self, ino: Ino, name: &[u8]) -> Result<Option<Vec<u8>>> {
        self.c.row(
            "SELECT value FROM xattrs WHERE ino = ?1 AND name = ?2",
            args![ino as i64, name],
            |r| r.bytes(0),
        )
    }

    fn put_xattr(&self, ino: Ino, name: &[u8], value: &[u8]) -> Result<()> {
        self.c.exec(
            "INSERT INTO xattrs(ino, name, value) VALUES (?1, ?2, ?3) \
             ON CONFLICT(ino, name) DO UPDATE SET value = excluded.value",
            args![ino as i64, name, value],
        )?;
        Ok(())
    }

    fn delete_xattr(&self, ino: Ino, name: &[u8]) -> Result<bool> {
        Ok(self.c.exec(
            "DELETE FROM xattrs WHERE ino = ?1 AND name = ?2",
            args![ino as i64, name],
        )? > 0)
    }

    fn xattr_names(&self, ino: Ino) -> Result<Vec<Vec<u8>>> {
        self.c.rows(
            "SELECT name FROM xattrs WHERE ino = ?1 ORDER BY name",
            args![ino as i64],
            |r| r.bytes(0),
        )
    }

    fn copy_xattrs(&self, from: Ino, to: Ino) -> Result<()> {
        self.c.exec(
            "INSERT INTO xattrs(ino, name, value) SELECT ?2, name, value FROM xattrs \
             WHERE ino = ?1",
            args![from as i64, to as i64],
        )?;
        Ok(())
    }

    fn add_open(&self, session: &str, ino: Ino) -> Result<()> {
        self.c.exec(
            "INSERT INTO opens(session, ino, count) VALUES (?1, ?2, 1) \
             ON CONFLICT(session, ino) DO UPDATE SET count = opens.count + 1",
            args![session, ino as i64],
        )?;
        Ok(())
    }

    fn drop_open(&self, session: &str, ino: Ino) -> Result<()> {
        let left = self.c.int(
            "UPDATE opens SET count = count - 1 WHERE session = ?1 AND ino = ?2 \
             RETURNING count",
            args![session, ino as i64],
        )?;
        if left.is_some_and(|n| n <= 0) {
            self.c.exec(
                "DELETE FROM opens WHERE session = ?1 AND ino = ?2",
                args![session, ino as i64],
            )?;
        }
        Ok(())
    }

    fn is_open(&self, ino: Ino) -> Result<bool> {
        self.c.any(
            "SELECT 1 FROM opens WHERE ino = ?1 LIMIT 1",
            args![ino as i64],
        )
    }

    fn session_expires(&self, id: &str) -> Result<Option<i64>> {
        self.c
            .int("SELECT expires FROM sessions WHERE id = ?1", args![id])
    }

    fn locks_on(&self, ino: Ino) -> Result<Vec<HeldLock>> {
        self.c.rows(
            "SELECT id, session, owner, kind, start, end_, pid, fence FROM locks WHERE ino = ?1",
            args![ino as i64],
            |r| {
                Ok(HeldLock {
                    id: r.int(0)?,
                    range: lock_range(r, 1, Some(6))?,
                    fence: r.int(7)? as u64,
                })
            },
        )
    }

    fn insert_lock(&self, ino: Ino, l: &LockRange, fence: u64) -> Result<()> {
        self.c.exec(
            "INSERT INTO locks(ino, session, owner, kind, start, end_, pid, fence) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            args![
                ino as i64,
                &l.session,
                l.owner as i64,
                kind_db(l.kind),
                off(l.start),
                off(l.end),
                l.pid as i64,
                fence as i64
            ],
        )?;
        Ok(())
    }

    fn delete_lock(&self, id: i64) -> Result<()> {
        self.c.exec("DELETE FROM locks WHERE id = ?1", args![id])?;
        Ok(())
    }

    fn next_fence(&self, ino: Ino) -> Result<u64> {
        let f = self.c.int(
            "INSERT INTO lock_fences(ino, fence) VALUES (?1, 1) \
             ON CONFLICT(ino) DO UPDATE SET fence = lock_fences.fence + 1 RETURNING fence",
            args![ino as i64],
        )?;
        Ok(f.unwrap_or(1) as u64)
    }

    fn waiters_before(&self, ino: Ino, ticket: Option<u64>) -> Result<Vec<LockRange>> {
        let before = ticket.map(|t| t as i64).unwrap_or(i64::MAX);
        self.c.rows(
            "SELECT session, owner, kind, start, end_ FROM lock_waiters \
             WHERE ino = ?1 AND ticket < ?2",
            args![ino as i64, before],
            |r| lock_range(r, 0, None),
        )
    }

    fn count_waiters(&self, ino: Ino) -> Result<usize> {
        let n = self.c.int(
            "SELECT count(*) FROM lock_waiters WHERE ino = ?1",
            args![ino as i64],
        )?;
        Ok(n.unwrap_or(0) as usize)
    }

    fn insert_waiter(&self, ino: Ino, l: &LockRange) -> Result<u64> {
        let t = self.c.int(
            "INSERT INTO lock_waiters(ino, session, owner, kind, start, end_) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING ticket",
            args![
                ino as i64,
                &l.session,
                l.owner as i64,
                kind_db(l.kind),
                off(l.start),
                off(l.end)
            ],
        )?;
        t.map(|t| t as u64)
            .ok_or_else(|| crate::MetaError::Backend("insert returned no ticket".into()))
    }

    fn delete_waiter(&self, ticket: u64) -> Result<Option<Ino>> {
        Ok(self
            .c
            .int(
                "DELETE FROM lock_waiters WHERE ticket = ?1 RETURNING ino",
                args![ticket as i64],
            )?
            .map(|i| i as u64))
    }

    fn drop_session_locks(&self, session: &str) -> Result<Vec<Ino>> {
        let mut inos = self.c.rows(
            "DELETE FROM locks WHERE session = ?1 RETURNING ino",
            args![session],
            |r| r.int(0),
        )?;
        inos.extend(self.c.rows(
            "DELETE FROM lock_waiters WHERE session = ?1 RETURNING ino",
            args![session],
            |r| r.int(0),
        )?);
        inos.sort_unstable();
        inos.dedup();
        Ok(inos.into_iter().map(|i| i as u64).collect())
    }

    fn file_trash_retention(&self, vol: Ino) -> Result<i64> {
        Ok(self
            .c
            .int(
                "SELECT file_trash FROM volumes WHERE root = ?1",
                args![vol as i64],
            )?
            .unwrap_or(0))
    }

    fn insert_trashed(
        &self,
        vol: Ino,
        ino: Ino,
        path: &[u8],
        at_ms: i64,
        purge_ms: i64,
    ) -> Result<()> {
        self.c.exec(
            "INSERT INTO file_trash(volume, ino, path, deleted, purge_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            args![vol as i64, ino as i64, path, at_ms, purge_ms],
        )?;
        Ok(())
    }

    fn is_trashed(&self, ino: Ino) -> Result<bool> {
        self.c
            .any("SELECT 1 FROM file_trash WHERE ino = ?1", args![ino as i64])
    }

    fn delete_trashed(&self, ino: Ino) -> Result<()> {
        self.c
            .exec("DELETE FROM file_trash WHERE ino = ?1", args![ino as i64])?;
        Ok(())
    }

    fn append_feed(&self, e: &FeedEntry) -> Result<u64> {
        super::feed::append(self.c, e)
    }

    fn feed_head(&self) -> Result<u64> {
        super::feed::head(self.c)
    }
}
