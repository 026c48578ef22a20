//! The embedded default backend: one SQLite file in WAL mode.
//!
//! Writers are serialised by an in-process mutex and open `BEGIN IMMEDIATE`
//! transactions, so a second process on the same file waits on SQLite's
//! lock instead of failing half-way. Reads use a small pool of separate
//! connections and never block on writers (WAL). Commits run with
//! `synchronous=NORMAL` (durable once the WAL is checkpointed, safe against a
//! crash of the process); an operation that must be durable right away
//! (`fsync`) switches its transaction to `synchronous=FULL`.

mod conn;
mod migrate;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, Transaction, TransactionBehavior};

use crate::sql::{Conn, Engine};
use crate::{MetaError, Result};

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS workspaces(
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created INTEGER NOT NULL,
    stored INTEGER NOT NULL DEFAULT 0, max_bytes INTEGER NOT NULL DEFAULT 0,
    max_files INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS tokens(
    hash BLOB PRIMARY KEY, workspace INTEGER NOT NULL, label TEXT NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0, public_id TEXT, admin INTEGER NOT NULL DEFAULT 0,
    created INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS apps(
    id INTEGER PRIMARY KEY AUTOINCREMENT, public_id TEXT NOT NULL UNIQUE,
    workspace INTEGER NOT NULL, name TEXT NOT NULL, kind INTEGER NOT NULL,
    state INTEGER NOT NULL, created INTEGER NOT NULL, last_active INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS apps_workspace ON apps(workspace);
CREATE TABLE IF NOT EXISTS volumes(
    root INTEGER PRIMARY KEY, public_id TEXT NOT NULL UNIQUE, workspace INTEGER NOT NULL,
    name TEXT NOT NULL, created INTEGER NOT NULL, app INTEGER NOT NULL DEFAULT 0,
    ephemeral INTEGER NOT NULL DEFAULT 0, snapshot_of INTEGER NOT NULL DEFAULT 0,
    files INTEGER NOT NULL DEFAULT 0, stored INTEGER NOT NULL DEFAULT 0,
    max_bytes INTEGER NOT NULL DEFAULT 0, max_files INTEGER NOT NULL DEFAULT 0,
    file_trash INTEGER NOT NULL DEFAULT 0, UNIQUE(workspace, name));
-- References from a volume's chunks to each block: a volume's bytes after
-- dedup count a block once, while any of its files uses it.
CREATE TABLE IF NOT EXISTS volume_blocks(
    volume INTEGER NOT NULL, hash BLOB NOT NULL, refs INTEGER NOT NULL,
    PRIMARY KEY(volume, hash)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS volumes_app ON volumes(app);
CREATE INDEX IF NOT EXISTS volumes_snapshot_of ON volumes(snapshot_of) WHERE snapshot_of <> 0;
-- Old to new inode numbers while one transaction copies a tree (empty
-- outside it).
CREATE TABLE IF NOT EXISTS ino_map(old INTEGER PRIMARY KEY, new INTEGER NOT NULL);
-- Deleted volumes kept until `purge_at` (ms): their rows left `volumes`,
-- their trees stay.
CREATE TABLE IF NOT EXISTS trash(
    root INTEGER PRIMARY KEY, public_id TEXT NOT NULL, workspace INTEGER NOT NULL,
    name TEXT NOT NULL, created INTEGER NOT NULL, ephemeral INTEGER NOT NULL,
    snapshot_of INTEGER NOT NULL, deleted INTEGER NOT NULL, purge_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS trash_purge ON trash(purge_at);
CREATE INDEX IF NOT EXISTS trash_workspace ON trash(workspace);
-- Files a volume with a file trash kept after their last name went:
-- inode `ino` (nlink 0) under the `path` it had, until `purge_at` (ms).
CREATE TABLE IF NOT EXISTS file_trash(
    id INTEGER PRIMARY KEY AUTOINCREMENT, volume INTEGER NOT NULL, ino INTEGER NOT NULL UNIQUE,
    path BLOB NOT NULL, deleted INTEGER NOT NULL, purge_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS file_trash_volume ON file_trash(volume, path);
CREATE INDEX IF NOT EXISTS file_trash_purge ON file_trash(purge_at);
CREATE TABLE IF NOT EXISTS inodes(
    ino INTEGER PRIMARY KEY AUTOINCREMENT, volume INTEGER NOT NULL, kind INTEGER NOT NULL,
    mode INTEGER NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT NULL, nlink INTEGER NOT NULL,
    size INTEGER NOT NULL, atime_s INTEGER NOT NULL, atime_ns INTEGER NOT NULL,
    mtime_s INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, ctime_s INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL, rdev INTEGER NOT NULL, version INTEGER NOT NULL, target BLOB);
CREATE INDEX IF NOT EXISTS inodes_volume ON inodes(volume);
CREATE TABLE IF NOT EXISTS dentries(
    id INTEGER PRIMARY KEY AUTOINCREMENT, parent INTEGER NOT NULL, name BLOB NOT NULL,
    ino INTEGER NOT NULL, UNIQUE(parent, name));
CREATE INDEX IF NOT EXISTS dentries_ino ON dentries(ino);
-- A listing pages by (parent, id): without it every page scanned the
-- whole directory through UNIQUE(parent, name) and sorted it.
CREATE INDEX IF NOT EXISTS dentries_parent_id ON dentries(parent, id);
CREATE TABLE IF NOT EXISTS chunks(
    ino INTEGER NOT NULL, idx INTEGER NOT NULL, len INTEGER NOT NULL, hash BLOB, data BLOB,
    PRIMARY KEY(ino, idx)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS chunks_hash ON chunks(hash) WHERE hash IS NOT NULL;
CREATE TABLE IF NOT EXISTS blocks(
    workspace INTEGER NOT NULL, hash BLOB NOT NULL, size INTEGER NOT NULL,
    refs INTEGER NOT NULL, pending_until INTEGER NOT NULL,
    PRIMARY KEY(workspace, hash)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS blocks_unreferenced ON blocks(pending_until) WHERE refs <= 0;
CREATE TABLE IF NOT EXISTS xattrs(
    ino INTEGER NOT NULL, name BLOB NOT NULL, value BLOB NOT NULL,
    PRIMARY KEY(ino, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sessions(
    id TEXT PRIMARY KEY, volume INTEGER NOT NULL, expires INTEGER NOT NULL,
    app INTEGER NOT NULL DEFAULT 0, workspace INTEGER NOT NULL DEFAULT 0,
    token BLOB, generation INTEGER NOT NULL DEFAULT 1,
    host TEXT NOT NULL DEFAULT '', purpose TEXT NOT NULL DEFAULT '',
    peer TEXT NOT NULL DEFAULT '', started INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sessions_app ON sessions(app);
CREATE TABLE IF NOT EXISTS opens(
    session TEXT NOT NULL, ino INTEGER NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY(session, ino)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS opens_ino ON opens(ino);
CREATE TABLE IF NOT EXISTS locks(
    id INTEGER PRIMARY KEY, ino INTEGER NOT NULL, session TEXT NOT NULL, owner INTEGER NOT NULL,
    kind INTEGER NOT NULL, start INTEGER NOT NULL, end_ INTEGER NOT NULL, pid INTEGER NOT NULL,
    fence INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS locks_ino ON locks(ino);
CREATE INDEX IF NOT EXISTS locks_session ON locks(session);
CREATE TABLE IF NOT EXISTS lock_waiters(
    ticket INTEGER PRIMARY KEY AUTOINCREMENT, ino INTEGER NOT NULL, session TEXT NOT NULL,
    owner INTEGER NOT NULL, kind INTEGER NOT NULL, start INTEGER NOT NULL, end_ INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS lock_waiters_ino ON lock_waiters(ino);
CREATE TABLE IF NOT EXISTS lock_fences(ino INTEGER PRIMARY KEY, fence INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS feed(
    seq INTEGER PRIMARY KEY AUTOINCREMENT, volume INTEGER NOT NULL, origin TEXT NOT NULL,
    inodes BLOB NOT NULL, entries BLOB NOT NULL, unlocked BLOB NOT NULL,
    deleted INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS reserved_inos(ino INTEGER PRIMARY KEY, session TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS reserved_inos_session ON reserved_inos(session);
CREATE TABLE IF NOT EXISTS syncs(id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL);
INSERT OR IGNORE INTO syncs(id, n) VALUES (1, 0);
CREATE TABLE IF NOT EXISTS feed_trim(id INTEGER PRIMARY KEY CHECK (id = 1), below INTEGER NOT NULL);
INSERT OR IGNORE INTO feed_trim(id, below) VALUES (1, coalesce((SELECT min(seq) - 1 FROM feed),
    (SELECT seq FROM sqlite_sequence WHERE name = 'feed'), 0));
"#;

pub(crate) struct Sqlite {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
}

fn connect(path: &Path) -> Result<Connection> {
    let c = Connection::open(path)?;
    c.busy_timeout(Duration::from_secs(30))?;
    // Deleted rows' pages go back to the file system (see `compact`). Only
    // takes effect on a new file, before WAL is on (older files: migrate).
    c.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.pragma_update(None, "synchronous", "NORMAL")?;
    c.pragma_update(None, "foreign_keys", "OFF")?;
    c.set_prepared_statement_cache_capacity(64);
    Ok(c)
}

impl Sqlite {
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let mut c = connect(path)?;
        migrate::upgrade(&mut c, SCHEMA)?;
        Ok(Self {
            path: path.to_path_buf(),
            writer: Mutex::new(c),
            readers: Mutex::new(Vec::new()),
        })
    }

    /// Runs `f` in one write transaction (`BEGIN IMMEDIATE`).
    pub(crate) fn write<T>(
        &self,
        durable: bool,
        f: impl FnOnce(&Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if durable {
            conn.pragma_update(None, "synchronous", "FULL")?;
        }
        let res = (|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let v = f(&tx)?;
            if durable {
                // A transaction that wrote nothing commits without touching
                // the WAL, so without syncing it; this row makes every
                // durable commit sync the log, and with it every earlier
                // (non-durable) commit still only in the OS's cache.
                tx.prepare_cached("UPDATE syncs SET n = n + 1 WHERE id = 1")?
                    .execute([])?;
            }
            tx.commit()?;
            Ok(v)
        })();
        if durable {
            conn.pragma_update(None, "synchronous", "NORMAL")?;
        }
        res
    }

    /// Frees the pages of deleted rows (auto_vacuum is incremental) and
    /// empties the write-ahead log.
    pub(crate) fn compact(&self) -> Result<()> {
        let conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        // One step frees one page: run the statement to completion.
        let mut st = conn.prepare("PRAGMA incremental_vacuum")?;
        let mut rows = st.query([])?;
        while rows.next()?.is_some() {}
        drop(rows);
        drop(st);
        // Busy readers can keep part of the log; the next compaction gets it.
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// Runs `f` on a reader connection, inside one read transaction so it
    /// sees a single snapshot.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let pooled = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut conn = match pooled {
            Some(c) => c,
            None => connect(&self.path)?,
        };
        let res = (|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
            let v = f(&tx)?;
            tx.finish()?;
            Ok::<_, MetaError>(v)
        })();
        let mut pool = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < 16 {
            pool.push(conn);
        }
        res
    }
}

impl Engine for Sqlite {
    fn read<T>(&self, f: &mut dyn FnMut(&dyn Conn) -> Result<T>) -> Result<T> {
        Sqlite::read(self, |tx| f(&conn::Lite(tx)))
    }
    fn write<T>(&self, durable: bool, f: &mut dyn FnMut(&dyn Conn) -> Result<T>) -> Result<T> {
        Sqlite::write(self, durable, |tx| f(&conn::Lite(tx)))
    }
    fn compact(&self) -> Result<()> {
        Sqlite::compact(self)
    }
}
