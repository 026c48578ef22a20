//! Copies a whole store from one engine to another (SQLite to PostgreSQL
//! when a deployment grows into a cluster, or back), table by table in the
//! shared SQL. The target must be empty; the source must not be in use.
//!
//! Sessions, open files and locks are copied with the rest: the new
//! servers' leader ends the sessions whose lease ran out (all of them, for
//! a store copied offline), which releases their files and locks as it
//! would have on the old server. Lock waiters and the change feed are not
//! copied: both belong to calls and servers that are gone.

use super::{Arg, Conn, ConnExt, Dialect, Engine};
use crate::{MetaError, Result};

#[derive(Clone, Copy)]
enum Kind {
    Int,
    Text,
    Bytes,
}
use Kind::*;

/// Every table copied, with its columns (the schemas of both engines have
/// exactly these).
const TABLES: &[(&str, &[(&str, Kind)])] = &[
    (
        "workspaces",
        &[
            ("id", Int),
            ("name", Text),
            ("created", Int),
            ("stored", Int),
            ("max_bytes", Int),
            ("max_files", Int),
        ],
    ),
    (
        "tokens",
        &[
            ("hash", Bytes),
            ("workspace", Int),
            ("label", Text),
            ("revoked", Int),
            ("public_id", Text),
            ("admin", Int),
            ("created", Int),
        ],
    ),
    (
        "apps",
        &[
            ("id", Int),
            ("public_id", Text),
            ("workspace", Int),
            ("name", Text),
            ("kind", Int),
            ("state", Int),
            ("created", Int),
            ("last_active", Int),
        ],
    ),
    (
        "volumes",
        &[
            ("root", Int),
            ("public_id", Text),
            ("workspace", Int),
            ("name", Text),
            ("created", Int),
            ("app", Int),
            ("ephemeral", Int),
            ("snapshot_of", Int),
            ("files", Int),
            ("stored", Int),
            ("max_bytes", Int),
            ("max_files", Int),
            ("file_trash", Int),
        ],
    ),
    (
        "volume_blocks",
        &[("volume", Int), ("hash", Bytes), ("refs", Int)],
    ),
    (
        "inodes",
        &[
            ("ino", Int),
            ("volume", Int),
            ("kind", Int),
            ("mode", Int),
            ("uid", Int),
            ("gid", Int),
            ("nlink", Int),
            ("size", Int),
            ("atime_s", Int),
            ("atime_ns", Int),
            ("mtime_s", Int),
            ("mtime_ns", Int),
            ("ctime_s", Int),
            ("ctime_ns", Int),
            ("rdev", Int),
            ("version", Int),
            ("target", Bytes),
        ],
    ),
    (
        "dentries",
        &[("id", Int), ("parent", Int), ("name", Bytes), ("ino", Int)],
    ),
    (
        "chunks",
        &[
            ("ino", Int),
            ("idx", Int),
            ("len", Int),
            ("hash", Bytes),
            ("data", Bytes),
        ],
    ),
    (
        "blocks",
        &[
            ("workspace", Int),
            ("hash", Bytes),
            ("size", Int),
            ("refs", Int),
            ("pending_until", Int),
        ],
    ),
    ("xattrs", &[("ino", Int), ("name", Bytes), ("value", Bytes)]),
    (
        "sessions",
        &[
            ("id", Text),
            ("volume", Int),
            ("expires", Int),
            ("app", Int),
            ("workspace", Int),
            ("token", Bytes),
            ("generation", Int),
            ("host", Text),
            ("purpose", Text),
            ("peer", Text),
            ("started", Int),
        ],
    ),
    (
        "trash",
        &[
            ("root", Int),
            ("public_id", Text),
            ("workspace", Int),
            ("name", Text),
            ("created", Int),
            ("ephemeral", Int),
            ("snapshot_of", Int),
            ("deleted", Int),
            ("purge_at", Int),
        ],
    ),
    (
        "file_trash",
        &[
            ("id", Int),
            ("volume", Int),
            ("ino", Int),
            ("path", Bytes),
            ("deleted", Int),
            ("purge_at", Int),
        ],
    ),
    ("opens", &[("session", Text), ("ino", Int), ("count", Int)]),
    (
        "locks",
        &[
            ("id", Int),
            ("ino", Int),
            ("session", Text),
            ("owner", Int),
            ("kind", Int),
            ("start", Int),
            ("end_", Int),
            ("pid", Int),
            ("fence", Int),
        ],
    ),
    ("lock_fences", &[("ino", Int), ("fence", Int)]),
];

/// Columns whose values a PostgreSQL sequence hands out: after a copy the
/// sequences must start past the copied values.
const SERIALS: &[(&str, &str)] = &[
    ("workspaces", "id"),
    ("apps", "id"),
    ("inodes", "ino"),
    ("dentries", "id"),
    ("file_trash", "id"),
    ("locks", "id"),
    ("lock_waiters", "ticket"),
    ("feed", "seq"),
];

/// Rows per transaction on the target.
const BATCH: usize = 2000;

enum Val {
    Null,
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
}

impl Val {
    fn arg(&self) -> Arg<'_> {
        match self {
            Val::Null => Arg::Null,
            Val::Int(v) => Arg::Int(*v),
            Val::Text(s) => Arg::Text(s),
            Val::Bytes(b) => Arg::Bytes(b),
        }
    }
}

/// What a copy moved: rows per table.
#[derive(Debug, Default, Clone)]
pub struct Copied {
    pub tables: Vec<(String, u64)>,
}

impl Copied {
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|(_, n)| n).sum()
    }
}

pub(crate) fn copy_all(from: &impl Engine, to: &impl Engine) -> Result<Copied> {
    let used = to.read(&mut |c| {
        Ok(c.int("SELECT count(*) FROM workspaces", &[])?.unwrap_or(0)
            + c.int("SELECT count(*) FROM volumes", &[])?.unwrap_or(0))
    })?;
    if used > 0 {
        return Err(MetaError::AlreadyExists(
            "the target metadata store already holds svol data; copy into an empty one".into(),
        ));
    }
    let mut copied = Copied::default();
    for (table, cols) in TABLES {
        let names: Vec<&str> = cols.iter().map(|(n, _)| *n).collect();
        let select = format!("SELECT {} FROM {table}", names.join(", "));
        let rows = from.read(&mut |c| {
            c.rows(&select, &[], |r| {
                cols.iter()
                    .enumerate()
                    .map(|(i, (_, k))| {
                        Ok(match k {
                            Int => r.opt_int(i)?.map_or(Val::Null, Val::Int),
                            Text => r.opt_text(i)?.map_or(Val::Null, Val::Text),
                            Bytes => r.opt_bytes(i)?.map_or(Val::Null, Val::Bytes),
                        })
                    })
                    .collect::<Result<Vec<Val>>>()
            })
        })?;
        let insert = format!(
            "INSERT INTO {table}({}) VALUES ({})",
            names.join(", "),
            (1..=names.len())
                .map(|i| format!("?{i}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        for batch in rows.chunks(BATCH) {
            to.write(true, &mut |c| {
                for row in batch {
                    let args: Vec<Arg<'_>> = row.iter().map(Val::arg).collect();
                    c.exec(&insert, &args)?;
                }
                Ok(())
            })?;
        }
        copied.tables.push((table.to_string(), rows.len() as u64));
    }
    to.write(true, &mut |c| restart_sequences(c))?;
    Ok(copied)
}

fn restart_sequences(c: &dyn Conn) -> Result<()> {
    if c.dialect() != Dialect::Postgres {
        // SQLite's AUTOINCREMENT continues after the largest key itself.
        return Ok(());
    }
    for (table, col) in SERIALS {
        c.exec(
            &format!(
                "SELECT setval(pg_get_serial_sequence('{table}', '{col}'), \
                 coalesce((SELECT max({col}) FROM {table}), 0) + 1, false)"
            ),
            &[],
        )?;
    }
    Ok(())
}
