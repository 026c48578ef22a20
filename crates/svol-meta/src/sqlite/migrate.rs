//! Brings a database written by an older svol up to the current schema.
//! `PRAGMA user_version` records which schema a file has: 0 is the first
//! release (no apps), 2 the current one.

use rusqlite::Connection;

use crate::Result;

pub(crate) const VERSION: i64 = 2;

/// Creates the schema, or brings an older file up to it, in one transaction.
pub(crate) fn upgrade(c: &mut Connection, schema: &str) -> Result<()> {
    let version: i64 = c.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let has_volumes: bool = c.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'volumes'",
        [],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )?;
    let first_release = version < 2 && has_volumes;
    let tx = c.transaction()?;
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
