//! The PostgreSQL schema: the same tables and columns as the SQLite one
//! (so the shared SQL runs on both and `svol admin migrate` copies rows
//! one to one), with PostgreSQL's types.

use postgres::Client;

use super::conn;
use crate::{MetaError, Result};

/// Version of the schema below; a database with a newer one is refused.
const VERSION: i64 = 7;

/// Advisory lock key serialising schema creation by servers starting
/// together ("svolsche").
const SCHEMA_LOCK: i64 = 0x7376_6f6c_7363_6865;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS svol_schema(
    id BIGINT PRIMARY KEY CHECK (id = 1), version BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS workspaces(
    id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL UNIQUE, created BIGINT NOT NULL,
    stored BIGINT NOT NULL DEFAULT 0, max_bytes BIGINT NOT NULL DEFAULT 0,
    max_files BIGINT NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS tokens(
    hash BYTEA PRIMARY KEY, workspace BIGINT NOT NULL, label TEXT NOT NULL,
    revoked BIGINT NOT NULL DEFAULT 0, public_id TEXT, admin BIGINT NOT NULL DEFAULT 0,
    created BIGINT NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS apps(
    id BIGSERIAL PRIMARY KEY, public_id TEXT NOT NULL UNIQUE,
    workspace BIGINT NOT NULL, name TEXT NOT NULL, kind BIGINT NOT NULL,
    state BIGINT NOT NULL, created BIGINT NOT NULL, last_active BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS apps_workspace ON apps(workspace);
CREATE TABLE IF NOT EXISTS volumes(
    root BIGINT PRIMARY KEY, public_id TEXT NOT NULL UNIQUE, workspace BIGINT NOT NULL,
    name TEXT NOT NULL, created BIGINT NOT NULL, app BIGINT NOT NULL DEFAULT 0,
    ephemeral BIGINT NOT NULL DEFAULT 0, snapshot_of BIGINT NOT NULL DEFAULT 0,
    files BIGINT NOT NULL DEFAULT 0, stored BIGINT NOT NULL DEFAULT 0,
    max_bytes BIGINT NOT NULL DEFAULT 0, max_files BIGINT NOT NULL DEFAULT 0,
    file_trash BIGINT NOT NULL DEFAULT 0, UNIQUE(workspace, name));
CREATE TABLE IF NOT EXISTS volume_blocks(
    volume BIGINT NOT NULL, hash BYTEA NOT NULL, refs BIGINT NOT NULL,
    PRIMARY KEY(volume, hash));
CREATE INDEX IF NOT EXISTS volumes_app ON volumes(app);
-- Old to new inode numbers while one transaction copies a tree (empty
-- outside it).
CREATE TABLE IF NOT EXISTS ino_map(old BIGINT PRIMARY KEY, new BIGINT NOT NULL);
-- Deleted volumes kept until `purge_at` (ms): their rows left `volumes`,
-- their trees stay.
CREATE TABLE IF NOT EXISTS trash(
    root BIGINT PRIMARY KEY, public_id TEXT NOT NULL, workspace BIGINT NOT NULL,
    name TEXT NOT NULL, created BIGINT NOT NULL, ephemeral BIGINT NOT NULL,
    snapshot_of BIGINT NOT NULL, deleted BIGINT NOT NULL, purge_at BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS trash_purge ON trash(purge_at);
CREATE INDEX IF NOT EXISTS trash_workspace ON trash(workspace);
-- Files a volume with a file trash kept after their last name went:
-- inode `ino` (nlink 0) under the `path` it had, until `purge_at` (ms).
CREATE TABLE IF NOT EXISTS file_trash(
    id BIGSERIAL PRIMARY KEY, volume BIGINT NOT NULL, ino BIGINT NOT NULL UNIQUE,
    path BYTEA NOT NULL, deleted BIGINT NOT NULL, purge_at BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS file_trash_volume ON file_trash(volume, path);
CREATE INDEX IF NOT EXISTS file_trash_purge ON file_trash(purge_at);
CREATE TABLE IF NOT EXISTS inodes(
    ino BIGSERIAL PRIMARY KEY, volume BIGINT NOT NULL, kind BIGINT NOT NULL,
    mode BIGINT NOT NULL, uid BIGINT NOT NULL, gid BIGINT NOT NULL, nlink BIGINT NOT NULL,
    size BIGINT NOT NULL, atime_s BIGINT NOT NULL, atime_ns BIGINT NOT NULL,
    mtime_s BIGINT NOT NULL, mtime_ns BIGINT NOT NULL, ctime_s BIGINT NOT NULL,
    ctime_ns BIGINT NOT NULL, rdev BIGINT NOT NULL, version BIGINT NOT NULL, target BYTEA);
CREATE INDEX IF NOT EXISTS inodes_volume ON inodes(volume);
CREATE TABLE IF NOT EXISTS dentries(
    id BIGSERIAL PRIMARY KEY, parent BIGINT NOT NULL, name BYTEA NOT NULL,
    ino BIGINT NOT NULL, UNIQUE(parent, name));
CREATE INDEX IF NOT EXISTS dentries_ino ON dentries(ino);
-- A listing pages by (parent, id): without it every page scanned the
-- whole directory through UNIQUE(parent, name) and sorted it.
CREATE INDEX IF NOT EXISTS dentries_parent_id ON dentries(parent, id);
CREATE TABLE IF NOT EXISTS chunks(
    ino BIGINT NOT NULL, idx BIGINT NOT NULL, len BIGINT NOT NULL, hash BYTEA, data BYTEA,
    PRIMARY KEY(ino, idx));
CREATE INDEX IF NOT EXISTS chunks_hash ON chunks(hash) WHERE hash IS NOT NULL;
CREATE TABLE IF NOT EXISTS blocks(
    workspace BIGINT NOT NULL, hash BYTEA NOT NULL, size BIGINT NOT NULL,
    refs BIGINT NOT NULL, pending_until BIGINT NOT NULL,
    PRIMARY KEY(workspace, hash));
CREATE INDEX IF NOT EXISTS blocks_unreferenced ON blocks(pending_until) WHERE refs <= 0;
CREATE TABLE IF NOT EXISTS xattrs(
    ino BIGINT NOT NULL, name BYTEA NOT NULL, value BYTEA NOT NULL,
    PRIMARY KEY(ino, name));
CREATE TABLE IF NOT EXISTS sessions(
    id TEXT PRIMARY KEY, volume BIGINT NOT NULL, expires BIGINT NOT NULL,
    app BIGINT NOT NULL DEFAULT 0, workspace BIGINT NOT NULL DEFAULT 0,
    token BYTEA, generation BIGINT NOT NULL DEFAULT 1,
    host TEXT NOT NULL DEFAULT '', purpose TEXT NOT NULL DEFAULT '',
    peer TEXT NOT NULL DEFAULT '', started BIGINT NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS sessions_app ON sessions(app);
CREATE INDEX IF NOT EXISTS sessions_volume ON sessions(volume);
CREATE TABLE IF NOT EXISTS opens(
    session TEXT NOT NULL, ino BIGINT NOT NULL, count BIGINT NOT NULL,
    PRIMARY KEY(session, ino));
CREATE INDEX IF NOT EXISTS opens_ino ON opens(ino);
CREATE TABLE IF NOT EXISTS locks(
    id BIGSERIAL PRIMARY KEY, ino BIGINT NOT NULL, session TEXT NOT NULL, owner BIGINT NOT NULL,
    kind BIGINT NOT NULL, start BIGINT NOT NULL, end_ BIGINT NOT NULL, pid BIGINT NOT NULL,
    fence BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS locks_ino ON locks(ino);
CREATE INDEX IF NOT EXISTS locks_session ON locks(session);
CREATE TABLE IF NOT EXISTS lock_waiters(
    ticket BIGSERIAL PRIMARY KEY, ino BIGINT NOT NULL, session TEXT NOT NULL,
    owner BIGINT NOT NULL, kind BIGINT NOT NULL, start BIGINT NOT NULL, end_ BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS lock_waiters_ino ON lock_waiters(ino);
CREATE INDEX IF NOT EXISTS lock_waiters_session ON lock_waiters(session);
CREATE TABLE IF NOT EXISTS lock_fences(ino BIGINT PRIMARY KEY, fence BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS reserved_inos(ino BIGINT PRIMARY KEY, session TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS reserved_inos_session ON reserved_inos(session);
CREATE TABLE IF NOT EXISTS feed(
    seq BIGSERIAL PRIMARY KEY, volume BIGINT NOT NULL, origin TEXT NOT NULL,
    inodes BYTEA NOT NULL, entries BYTEA NOT NULL, unlocked BYTEA NOT NULL,
    deleted BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS feed_volume ON feed(volume);
CREATE TABLE IF NOT EXISTS feed_trim(id BIGINT PRIMARY KEY CHECK (id = 1), below BIGINT NOT NULL);
INSERT INTO feed_trim(id, below) VALUES (1, 0) ON CONFLICT DO NOTHING;
"#;

/// What schema 6 added to tables an older svol made: who a session's
/// client is, snapshots, quotas and their counters. Run only on such a
/// database: `ALTER TABLE` locks the table even when the column is there,
/// and would deadlock with other servers' transactions on every start.
const UPGRADE_6: &str = r#"
ALTER TABLE workspaces ADD COLUMN IF NOT EXISTS stored BIGINT NOT NULL DEFAULT 0;
ALTER TABLE workspaces ADD COLUMN IF NOT EXISTS max_bytes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE workspaces ADD COLUMN IF NOT EXISTS max_files BIGINT NOT NULL DEFAULT 0;
ALTER TABLE volumes ADD COLUMN IF NOT EXISTS files BIGINT NOT NULL DEFAULT 0;
ALTER TABLE volumes ADD COLUMN IF NOT EXISTS stored BIGINT NOT NULL DEFAULT 0;
ALTER TABLE volumes ADD COLUMN IF NOT EXISTS max_bytes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE volumes ADD COLUMN IF NOT EXISTS max_files BIGINT NOT NULL DEFAULT 0;
ALTER TABLE volumes ADD COLUMN IF NOT EXISTS snapshot_of BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN IF NOT EXISTS host TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN IF NOT EXISTS purpose TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN IF NOT EXISTS peer TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN IF NOT EXISTS started BIGINT NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS volumes_snapshot_of ON volumes(snapshot_of) WHERE snapshot_of <> 0;
"#;

/// What schema 7 added: each volume's file trash retention.
const UPGRADE_7: &str = r#"
ALTER TABLE volumes ADD COLUMN IF NOT EXISTS file_trash BIGINT NOT NULL DEFAULT 0;
"#;

/// Creates the schema in a new database, or checks an existing one's
/// version, in one transaction under an advisory lock (servers that start
/// together do this one after the other).
pub(crate) fn create(c: &mut Client) -> Result<()> {
    let mut tx = c.transaction().map_err(conn::error)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
        .map_err(conn::error)?;
    // "already exists, skipping" on every start is noise.
    tx.batch_execute("SET LOCAL client_min_messages = warning")
        .map_err(conn::error)?;
    tx.batch_execute(SCHEMA).map_err(conn::error)?;
    let found: Option<i64> = tx
        .query_opt("SELECT version FROM svol_schema WHERE id = 1", &[])
        .map_err(conn::error)?
        .map(|r| r.get(0));
    match found {
        None => {
            // A new database: its tables have schema 6's columns already
            // (the ALTERs find them, cheaply: nobody else uses it yet).
            tx.batch_execute(UPGRADE_6).map_err(conn::error)?;
            tx.batch_execute(UPGRADE_7).map_err(conn::error)?;
            tx.execute(
                "INSERT INTO svol_schema(id, version) VALUES (1, $1)",
                &[&VERSION],
            )
            .map_err(conn::error)?;
        }
        Some(v) if v > VERSION => {
            return Err(MetaError::Backend(format!(
                "the PostgreSQL database has svol schema {v}, newer than this svol's {VERSION}: \
                 upgrade svol"
            )))
        }
        Some(v) => {
            if v < 6 {
                // No quota is set yet, so no counter needs filling.
                tx.batch_execute(UPGRADE_6).map_err(conn::error)?;
            }
            if v < 7 {
                tx.batch_execute(UPGRADE_7).map_err(conn::error)?;
            }
            if v < VERSION {
                tx.execute(
                    "UPDATE svol_schema SET version = $1 WHERE id = 1",
                    &[&VERSION],
                )
                .map_err(conn::error)?;
            }
        }
    }
    tx.commit().map_err(conn::error)
}
