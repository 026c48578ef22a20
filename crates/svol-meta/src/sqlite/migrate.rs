//! Brings a database written by an older svol up to the current schema.
//! `PRAGMA user_version` records which schema a file has: 0 is the first
//! release (no apps), 2 the second (blocks shared by all workspaces), 3 the
//! third (blocks owned by a workspace), 4 the current one (locks, the change
//! feed and session generations in the database).

use rusqlite::Connection;

use crate::Result;

pub(crate) const VERSION: i64 = 4;

/// Creates the schema, or brings an older file up to it, in one transaction.
pub(crate) fn upgrade(c: &mut Connection, schema: &str) -> Result<()> {
    let version: i64 = c.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let has_volumes: bool = c.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'volumes'",
        [],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )?;
    let first_release = version < 2 && has_volumes;
    let shared_blocks: bool = c.query_row(
        "SELECT count(*) FROM pragma_table_info('blocks') WHERE name = 'hash'",
        [],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )? && !c.query_row(
        "SELECT count(*) FROM pragma_table_info('blocks') WHERE name = 'workspace'",
        [],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )?;
    let owned_sessions: bool = c.query_row(
        "SELECT count(*) FROM pragma_table_info('sessions') WHERE name = 'token'",
        [],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )?;
    let has_sessions: bool = c.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'sessions'",
        [],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )?;
    let generations: bool = c.query_row(
        "SELECT count(*) FROM pragma_table_info('sessions') WHERE name = 'generation'",
        [],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )?;
    let described: bool = c.query_row(
        "SELECT count(*) FROM pragma_table_info('sessions') WHERE name = 'purpose'",
        [],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )?;
    let snapshots: bool = c.query_row(
        "SELECT count(*) FROM pragma_table_info('volumes') WHERE name = 'snapshot_of'",
        [],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )?;
    let counted: bool = c.query_row(
        "SELECT count(*) FROM pragma_table_info('volumes') WHERE name = 'max_bytes'",
        [],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )?;
    let file_trash: bool = c.query_row(
        "SELECT count(*) FROM pragma_table_info('volumes') WHERE name = 'file_trash'",
        [],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )?;
    let tx = c.transaction()?;
    if has_volumes && !file_trash {
        // Per-volume retention of removed files (0: none, as before).
        tx.execute_batch("ALTER TABLE volumes ADD COLUMN file_trash INTEGER NOT NULL DEFAULT 0;")?;
    }
    if has_volumes && !counted {
        // Quotas, and the usage counters they are checked against (filled
        // from the rows below, once the schema is complete).
        tx.execute_batch(
            "ALTER TABLE volumes ADD COLUMN files INTEGER NOT NULL DEFAULT 0;
             ALTER TABLE volumes ADD COLUMN stored INTEGER NOT NULL DEFAULT 0;
             ALTER TABLE volumes ADD COLUMN max_bytes INTEGER NOT NULL DEFAULT 0;
             ALTER TABLE volumes ADD COLUMN max_files INTEGER NOT NULL DEFAULT 0;
             ALTER TABLE workspaces ADD COLUMN stored INTEGER NOT NULL DEFAULT 0;
             ALTER TABLE workspaces ADD COLUMN max_bytes INTEGER NOT NULL DEFAULT 0;
             ALTER TABLE workspaces ADD COLUMN max_files INTEGER NOT NULL DEFAULT 0;",
        )?;
    }
    if has_volumes && !snapshots {
        tx.execute_batch("ALTER TABLE volumes ADD COLUMN snapshot_of INTEGER NOT NULL DEFAULT 0;")?;
    }
    if has_sessions && !described {
        // What the client said of itself, for the dashboard's live clients.
        tx.execute_batch(
            "ALTER TABLE sessions ADD COLUMN host TEXT NOT NULL DEFAULT '';
             ALTER TABLE sessions ADD COLUMN purpose TEXT NOT NULL DEFAULT '';
             ALTER TABLE sessions ADD COLUMN peer TEXT NOT NULL DEFAULT '';
             ALTER TABLE sessions ADD COLUMN started INTEGER NOT NULL DEFAULT 0;",
        )?;
    }
    if has_sessions && !generations {
        tx.execute_batch("ALTER TABLE sessions ADD COLUMN generation INTEGER NOT NULL DEFAULT 1;")?;
    }
    if has_sessions && !owned_sessions {
        // Sessions get owners; the ones of the old server cannot be resumed
        // (their clients get new ones) and expire as before.
        tx.execute_batch(
            "ALTER TABLE sessions ADD COLUMN workspace INTEGER NOT NULL DEFAULT 0;
             ALTER TABLE sessions ADD COLUMN token BLOB;",
        )?;
    }
    if shared_blocks {
        // Rebuilt below with a workspace per block.
        tx.execute_batch(
            "DROP INDEX IF EXISTS blocks_unreferenced;
             ALTER TABLE blocks RENAME TO blocks_shared;",
        )?;
    }
    if first_release {
        // Tokens without ids, volumes without apps.
        tx.execute_batch(
            "ALTER TABLE tokens ADD COLUMN public_id TEXT;
             ALTER TABLE tokens ADD COLUMN admin INTEGER NOT NULL DEFAULT 0;
             ALTER TABLE tokens ADD COLUMN created INTEGER NOT NULL DEFAULT 0;
             UPDATE tokens SET public_id = 'tk-' || lower(hex(randomblob(8)));
             UPDATE tokens SET admin = 1 WHERE label = 'admin';
             ALTER TABLE volumes ADD COLUMN app INTEGER NOT NULL DEFAULT 0;
             ALTER TABLE volumes ADD COLUMN ephemeral INTEGER NOT NULL DEFAULT 0;
             ALTER TABLE sessions ADD COLUMN app INTEGER NOT NULL DEFAULT 0;",
        )?;
    }
    // Whatever is still missing (all of it in a new file; `apps` and the
    // new indexes in an old one).
    tx.execute_batch(schema)?;
    if first_release {
        // Every old volume was persisted: give each its app of kind volume.
        tx.execute_batch(
            "INSERT INTO apps(public_id, workspace, name, kind, state, created, last_active)
                 SELECT 'ap-' || lower(hex(randomblob(8))), workspace, name, 2, 1, created, 0
                 FROM volumes;
             UPDATE volumes SET app = (SELECT a.id FROM apps a
                 WHERE a.workspace = volumes.workspace AND a.name = volumes.name AND a.kind = 2);",
        )?;
    }
    if shared_blocks {
        // Each workspace that references a block now owns a copy of it
        // (the block store moves the bytes, see `svol_blocks::local`).
        // Uploads nothing references yet are dropped: their uploader
        // sends them again.
        tx.execute_batch(
            "INSERT INTO blocks(workspace, hash, size, refs, pending_until)
                 SELECT v.workspace, c.hash, b.size, count(*), 0
                 FROM chunks c JOIN inodes i ON i.ino = c.ino
                 JOIN volumes v ON v.root = i.volume
                 JOIN blocks_shared b ON b.hash = c.hash
                 WHERE c.hash IS NOT NULL GROUP BY v.workspace, c.hash;
             DROP TABLE blocks_shared;",
        )?;
    }
    tx.pragma_update(None, "user_version", VERSION)?;
    tx.commit()?;
    let vacuum: i64 = c.pragma_query_value(None, "auto_vacuum", |r| r.get(0))?;
    if vacuum == 0 && has_volumes {
        // Files from the first release never shrank; one VACUUM switches
        // them to incremental vacuum so deleting frees disk from now on.
        c.execute_batch("PRAGMA auto_vacuum = INCREMENTAL; VACUUM;")?;
    }
    Ok(())
}
