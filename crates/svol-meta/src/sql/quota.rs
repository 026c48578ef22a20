//! Quotas, and the usage they are measured against, kept as counters so a
//! check costs a row read, never a scan: per volume, its inodes and its
//! bytes after dedup (each distinct block once, through `volume_blocks`,
//! plus inline data); per workspace, its bytes after dedup (every block it
//! keeps, plus inline data) and the inodes of its volumes. A check runs in
//! the transaction of the change, so two clients racing for the last bytes
//! cannot both get them.

use std::collections::HashMap;

use super::{args, Conn, ConnExt};
use crate::types::*;
use crate::{MetaError, Result};

/// Every usage counter from the rows: what an upgrade runs once.
pub(crate) const RECOUNT_ALL: &str = "\
UPDATE volumes SET files = (SELECT count(*) FROM inodes i WHERE i.volume = volumes.root) - 1;
DELETE FROM volume_blocks;
INSERT INTO volume_blocks(volume, hash, refs) SELECT i.volume, k.hash, count(*)
    FROM chunks k JOIN inodes i ON i.ino = k.ino
    WHERE k.hash IS NOT NULL AND i.volume IN (SELECT root FROM volumes) GROUP BY i.volume, k.hash;
UPDATE volumes SET stored =
    (SELECT CAST(coalesce(sum(b.size), 0) AS BIGINT) FROM volume_blocks vb JOIN blocks b
        ON b.hash = vb.hash AND b.workspace = volumes.workspace WHERE vb.volume = volumes.root)
  + (SELECT CAST(coalesce(sum(length(k.data)), 0) AS BIGINT) FROM chunks k
        JOIN inodes i ON i.ino = k.ino WHERE i.volume = volumes.root AND k.data IS NOT NULL);
UPDATE workspaces SET stored =
    (SELECT CAST(coalesce(sum(size), 0) AS BIGINT) FROM blocks WHERE workspace = workspaces.id)
  + (SELECT CAST(coalesce(sum(length(k.data)), 0) AS BIGINT) FROM chunks k
        JOIN inodes i ON i.ino = k.ino WHERE k.data IS NOT NULL AND i.volume IN
        (SELECT root FROM volumes WHERE workspace = workspaces.id
         UNION SELECT root FROM trash WHERE workspace = workspaces.id));
";

fn over(what: &str, limit: i64, unit: &str) -> MetaError {
    MetaError::Quota(format!("{what} is at its quota of {limit} {unit}"))
}

/// A volume's counters and quotas, as its row has them.
struct Counted {
    ws: WorkspaceId,
    files: i64,
    stored: i64,
    max_files: i64,
    max_bytes: i64,
}

fn volume_row(c: &dyn Conn, vol: Ino) -> Result<Option<Counted>> {
    c.row(
        "SELECT workspace, files, stored, max_files, max_bytes FROM volumes WHERE root = ?1",
        args![vol as i64],
        |r| {
            Ok(Counted {
                ws: r.int(0)?,
                files: r.int(1)?,
                stored: r.int(2)?,
                max_files: r.int(3)?,
                max_bytes: r.int(4)?,
            })
        },
    )
}

fn workspace_limits(c: &dyn Conn, ws: WorkspaceId) -> Result<(i64, i64, i64)> {
    Ok(c.row(
        "SELECT stored, max_files, max_bytes FROM workspaces WHERE id = ?1",
        args![ws],
        |r| Ok((r.int(0)?, r.int(1)?, r.int(2)?)),
    )?
    .unwrap_or((0, 0, 0)))
}

/// One more inode in volume `vol` (0: a root being made, not counted):
/// refused past the volume's or its workspace's inode quota.
pub(crate) fn add_inode(c: &dyn Conn, vol: Ino) -> Result<()> {
    let Some(Counted {
        ws,
        files,
        max_files,
        ..
    }) = volume_row(c, vol)?
    else {
        return Ok(());
    };
    if max_files > 0 && files + 1 > max_files {
        return Err(over("the volume", max_files, "files"));
    }
    let (_, ws_max_files, _) = workspace_limits(c, ws)?;
    if ws_max_files > 0 {
        let all = c
            .int(
                "SELECT CAST(coalesce(sum(files), 0) AS BIGINT) FROM volumes WHERE workspace = ?1",
                args![ws],
            )?
            .unwrap_or(0);
        if all + 1 > ws_max_files {
            return Err(over("the workspace", ws_max_files, "files"));
        }
    }
    c.exec(
        "UPDATE volumes SET files = files + 1 WHERE root = ?1",
        args![vol as i64],
    )?;
    Ok(())
}

pub(crate) fn drop_inode(c: &dyn Conn, vol: Ino) -> Result<()> {
    c.exec(
        "UPDATE volumes SET files = files - 1 WHERE root = ?1",
        args![vol as i64],
    )?;
    Ok(())
}

fn block_size(c: &dyn Conn, ws: WorkspaceId, hash: &[u8]) -> Result<i64> {
    Ok(c.int(
        "SELECT size FROM blocks WHERE workspace = ?1 AND hash = ?2",
        args![ws, hash],
    )?
    .unwrap_or(0))
}

/// The volume of inode `ino` and that volume's workspace (None for an
/// inode whose volume has no row: a root being made, a trashed volume).
pub(crate) fn owner(c: &dyn Conn, ino: Ino) -> Result<Option<(Ino, WorkspaceId)>> {
    c.row(
        "SELECT i.volume, v.workspace FROM inodes i JOIN volumes v ON v.root = i.volume \
         WHERE i.ino = ?1",
        args![ino as i64],
        |r| Ok((r.int(0)? as Ino, r.int(1)?)),
    )
}

fn add_stored(c: &dyn Conn, vol: Ino, ws: WorkspaceId, volume: i64, workspace: i64) -> Result<()> {
    if volume != 0 {
        c.exec(
            "UPDATE volumes SET stored = stored + ?2 WHERE root = ?1",
            args![vol as i64, volume],
        )?;
    }
    if workspace != 0 {
        c.exec(
            "UPDATE workspaces SET stored = stored + ?2 WHERE id = ?1",
            args![ws, workspace],
        )?;
    }
    Ok(())
}

/// A chunk of a file of `vol` now names block `hash` (or holds `inline`
/// bytes), where it named `old` before.
pub(crate) fn chunk_changed(
    c: &dyn Conn,
    (vol, ws): (Ino, WorkspaceId),
    old: (Option<&[u8]>, i64),
    new: (Option<&[u8]>, i64),
) -> Result<()> {
    if let Some(h) = new.0 {
        let refs = c.int(
            "INSERT INTO volume_blocks(volume, hash, refs) VALUES (?1, ?2, 1) \
             ON CONFLICT(volume, hash) DO UPDATE SET refs = volume_blocks.refs + 1 RETURNING refs",
            args![vol as i64, h],
        )?;
        if refs == Some(1) {
            add_stored(c, vol, ws, block_size(c, ws, h)?, 0)?;
        }
    }
    if let Some(h) = old.0 {
        let refs = c.int(
            "UPDATE volume_blocks SET refs = refs - 1 WHERE volume = ?1 AND hash = ?2 RETURNING refs",
            args![vol as i64, h],
        )?;
        if matches!(refs, Some(r) if r <= 0) {
            c.exec(
                "DELETE FROM volume_blocks WHERE volume = ?1 AND hash = ?2",
                args![vol as i64, h],
            )?;
            add_stored(c, vol, ws, -block_size(c, ws, h)?, 0)?;
        }
    }
    let inline = new.1 - old.1;
    add_stored(c, vol, ws, inline, inline)
}

/// Refuses a commit of `new` chunks to file `ino` of `vol` that would take
/// the volume or its workspace past their byte quota (counting blocks the
/// volume does not have yet, and inline bytes, less what it replaces).
/// Checked before anything is written, so a refused commit changes nothing.
pub(crate) fn check_commit(c: &dyn Conn, vol: Ino, ino: Ino, new: &[Chunk]) -> Result<()> {
    let Some(Counted {
        ws,
        stored,
        max_bytes,
        ..
    }) = volume_row(c, vol)?
    else {
        return Ok(());
    };
    let (ws_stored, _, ws_max_bytes) = workspace_limits(c, ws)?;
    if max_bytes == 0 && ws_max_bytes == 0 {
        return Ok(());
    }
    let (mut vol_delta, mut ws_delta) = (0i64, 0i64);
    let mut net: HashMap<BlockId, i64> = HashMap::new();
    for ch in new {
        let old = c.row(
            "SELECT hash, length(data) FROM chunks WHERE ino = ?1 AND idx = ?2",
            args![ino as i64, ch.index as i64],
            |r| Ok((r.opt_bytes(0)?, r.opt_int(1)?)),
        )?;
        if let Some((h, len)) = old {
            if let Some(h) = h.and_then(|h| BlockId::try_from(h).ok()) {
                *net.entry(h).or_default() -= 1;
            }
            vol_delta -= len.unwrap_or(0);
            ws_delta -= len.unwrap_or(0);
        }
        match &ch.data {
            ChunkData::Block(h) => *net.entry(*h).or_default() += 1,
            ChunkData::Inline(d) => {
                vol_delta += d.len() as i64;
                ws_delta += d.len() as i64;
            }
        }
    }
    for (h, n) in net {
        let refs = c
            .int(
                "SELECT refs FROM volume_blocks WHERE volume = ?1 AND hash = ?2",
                args![vol as i64, &h[..]],
            )?
            .unwrap_or(0);
        match (refs > 0, refs + n > 0) {
            (false, true) => vol_delta += block_size(c, ws, &h)?,
            (true, false) => vol_delta -= block_size(c, ws, &h)?,
            _ => {}
        }
    }
    if max_bytes > 0 && vol_delta > 0 && stored + vol_delta > max_bytes {
        return Err(over("the volume", max_bytes, "bytes"));
    }
    if ws_max_bytes > 0 && ws_delta > 0 && ws_stored + ws_delta > ws_max_bytes {
        return Err(over("the workspace", ws_max_bytes, "bytes"));
    }
    Ok(())
}

/// A new block of `size` bytes for workspace `ws`: refused past its byte
/// quota, counted otherwise. Called in the transaction that records it.
pub(crate) fn add_block(c: &dyn Conn, ws: WorkspaceId, size: i64) -> Result<()> {
    let (stored, _, max_bytes) = workspace_limits(c, ws)?;
    if max_bytes > 0 && stored + size > max_bytes {
        return Err(over("the workspace", max_bytes, "bytes"));
    }
    add_stored(c, 0, ws, 0, size)
}

pub(crate) fn drop_block(c: &dyn Conn, ws: WorkspaceId, size: i64) -> Result<()> {
    add_stored(c, 0, ws, 0, -size)
}

/// Counts volume `root` again from its rows: inodes, distinct blocks,
/// stored bytes. For a volume whose counters were not kept (restored from
/// the trash, copied whole, or written by an older svol).
pub(crate) fn recount_volume(c: &dyn Conn, root: Ino) -> Result<()> {
    let vol = root as i64;
    for sql in [
        "UPDATE volumes SET files = (SELECT count(*) FROM inodes WHERE volume = ?1) - 1 \
         WHERE root = ?1",
        "DELETE FROM volume_blocks WHERE volume = ?1",
        "INSERT INTO volume_blocks(volume, hash, refs) SELECT ?1, k.hash, count(*) \
         FROM chunks k JOIN inodes i ON i.ino = k.ino WHERE i.volume = ?1 AND k.hash IS NOT NULL \
         GROUP BY k.hash",
        "UPDATE volumes SET stored = \
         (SELECT CAST(coalesce(sum(b.size), 0) AS BIGINT) FROM volume_blocks vb JOIN blocks b \
          ON b.hash = vb.hash AND b.workspace = volumes.workspace WHERE vb.volume = ?1) + \
         (SELECT CAST(coalesce(sum(length(k.data)), 0) AS BIGINT) FROM chunks k \
          JOIN inodes i ON i.ino = k.ino WHERE i.volume = ?1 AND k.data IS NOT NULL) \
         WHERE root = ?1",
    ] {
        c.exec(sql, args![vol])?;
    }
    Ok(())
}

/// Counts a workspace's stored bytes again: its blocks, and the inline
/// data of its volumes and of those in its trash.
pub(crate) fn recount_workspace(c: &dyn Conn, ws: WorkspaceId) -> Result<()> {
    c.exec(
        "UPDATE workspaces SET stored = \
         (SELECT CAST(coalesce(sum(size), 0) AS BIGINT) FROM blocks WHERE workspace = ?1) + \
         (SELECT CAST(coalesce(sum(length(k.data)), 0) AS BIGINT) FROM chunks k \
          JOIN inodes i ON i.ino = k.ino WHERE k.data IS NOT NULL AND i.volume IN \
          (SELECT root FROM volumes WHERE workspace = ?1 UNION SELECT root FROM trash WHERE workspace = ?1)) \
         WHERE id = ?1",
        args![ws],
    )?;
    Ok(())
}

/// Refuses a workspace over its quotas (after a change that adds many
/// rows at once: a snapshot, a clone).
pub(crate) fn check_workspace(c: &dyn Conn, ws: WorkspaceId) -> Result<()> {
    let (stored, max_files, max_bytes) = workspace_limits(c, ws)?;
    if max_bytes > 0 && stored > max_bytes {
        return Err(over("the workspace", max_bytes, "bytes"));
    }
    if max_files > 0 {
        let all = c
            .int(
                "SELECT CAST(coalesce(sum(files), 0) AS BIGINT) FROM volumes WHERE workspace = ?1",
                args![ws],
            )?
            .unwrap_or(0);
        if all > max_files {
            return Err(over("the workspace", max_files, "files"));
        }
    }
    Ok(())
}

/// What `statfs` and `volume info` show of quotas: the volume's and its
/// workspace's limits (0: none) and usage.
pub(crate) fn view(c: &dyn Conn, vol: Ino) -> Result<QuotaView> {
    let Some(Counted {
        ws,
        files,
        stored,
        max_files,
        max_bytes,
    }) = volume_row(c, vol)?
    else {
        return Err(MetaError::NotFound(format!("volume of inode {vol}")));
    };
    let (ws_stored, ws_max_files, ws_max_bytes) = workspace_limits(c, ws)?;
    let ws_inodes = c
        .int(
            "SELECT CAST(coalesce(sum(files), 0) AS BIGINT) FROM volumes WHERE workspace = ?1",
            args![ws],
        )?
        .unwrap_or(0);
    let u = |v: i64| v.max(0) as u64;
    Ok(QuotaView {
        inodes: u(files),
        stored: u(stored),
        max_files: u(max_files),
        max_bytes: u(max_bytes),
        ws_inodes: u(ws_inodes),
        ws_stored: u(ws_stored),
        ws_max_files: u(ws_max_files),
        ws_max_bytes: u(ws_max_bytes),
    })
}

fn limit(v: Option<u64>) -> Option<i64> {
    v.map(|x| x.min(i64::MAX as u64) as i64)
}

pub(crate) fn set_volume(
    c: &dyn Conn,
    ws: WorkspaceId,
    key: &str,
    max_bytes: Option<u64>,
    max_files: Option<u64>,
) -> Result<Volume> {
    let v = super::control::volume(c, ws, key)?;
    if !v.snapshot_of.is_empty() {
        return Err(MetaError::InvalidArgument(format!(
            "{} is a snapshot (read-only); set the quota of its volume",
            v.name
        )));
    }
    c.exec(
        "UPDATE volumes SET max_bytes = coalesce(?2, max_bytes), \
         max_files = coalesce(?3, max_files) WHERE root = ?1",
        args![v.root as i64, limit(max_bytes), limit(max_files)],
    )?;
    super::control::volume(c, ws, key)
}

pub(crate) fn set_workspace(
    c: &dyn Conn,
    name: &str,
    max_bytes: Option<u64>,
    max_files: Option<u64>,
) -> Result<Workspace> {
    let w = super::control::workspace(c, name)?;
    c.exec(
        "UPDATE workspaces SET max_bytes = coalesce(?2, max_bytes), \
         max_files = coalesce(?3, max_files) WHERE id = ?1",
        args![w.id, limit(max_bytes), limit(max_files)],
    )?;
    Ok(w)
}
