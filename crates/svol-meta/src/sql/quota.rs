//! Quotas, and the usage they are measured against. While a volume or its
//! workspace has a quota, its usage is kept as counters, so a check costs
//! a row read, never a scan: per volume, its inodes and its bytes after
//! dedup (each distinct block once, through `volume_blocks`, plus inline
//! data); per workspace, its bytes after dedup (every block it keeps, plus
//! inline data) and the inodes of its volumes. A check runs in the
//! transaction of the change, so two clients racing for the last bytes
//! cannot both get them. Without a quota nothing is counted: every create
//! and commit would otherwise write the same volume row, which on
//! PostgreSQL would make concurrent changes of one volume conflict.
//! Setting a quota counts from the rows first (`recount_*`).

use std::collections::HashMap;

use super::{args, Conn, ConnExt};
use crate::types::*;
use crate::{MetaError, Result};

fn over(what: &str, limit: i64, unit: &str) -> MetaError {
    MetaError::Quota(format!("{what} is at its quota of {limit} {unit}"))
}

/// A volume's and its workspace's counters and quotas, as their rows have
/// them (counters are kept only while a quota needs them, see the module
/// doc).
pub(crate) struct Scope {
    vol: Ino,
    ws: WorkspaceId,
    files: i64,
    stored: i64,
    max_files: i64,
    max_bytes: i64,
    ws_stored: i64,
    ws_max_files: i64,
    ws_max_bytes: i64,
}

impl Scope {
    /// Inodes are counted for an inode quota of the volume or workspace.
    fn counts_files(&self) -> bool {
        self.max_files > 0 || self.ws_max_files > 0
    }
    fn counts_bytes(&self) -> bool {
        self.max_bytes > 0
    }
    fn ws_counts_bytes(&self) -> bool {
        self.ws_max_bytes > 0
    }
}

const SCOPE_COLS: &str = "v.root, v.workspace, v.files, v.stored, v.max_files, v.max_bytes, \
     w.stored, w.max_files, w.max_bytes";

fn scope_row(r: &dyn super::Row) -> Result<Scope> {
    Ok(Scope {
        vol: r.int(0)? as Ino,
        ws: r.int(1)?,
        files: r.int(2)?,
        stored: r.int(3)?,
        max_files: r.int(4)?,
        max_bytes: r.int(5)?,
        ws_stored: r.int(6)?,
        ws_max_files: r.int(7)?,
        ws_max_bytes: r.int(8)?,
    })
}

/// The scope of volume `vol` (None: no such volume row, e.g. a root being
/// made or a volume in the trash).
fn scope(c: &dyn Conn, vol: Ino) -> Result<Option<Scope>> {
    c.row(
        &format!(
            "SELECT {SCOPE_COLS} FROM volumes v JOIN workspaces w ON w.id = v.workspace \
             WHERE v.root = ?1"
        ),
        args![vol as i64],
        scope_row,
    )
}

/// The scope of the volume inode `ino` belongs to.
fn scope_of_inode(c: &dyn Conn, ino: Ino) -> Result<Option<Scope>> {
    c.row(
        &format!(
            "SELECT {SCOPE_COLS} FROM inodes i JOIN volumes v ON v.root = i.volume \
             JOIN workspaces w ON w.id = v.workspace WHERE i.ino = ?1"
        ),
        args![ino as i64],
        scope_row,
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

fn workspace_inodes(c: &dyn Conn, ws: WorkspaceId) -> Result<i64> {
    Ok(c.int(
        "SELECT CAST(coalesce(sum(files), 0) AS BIGINT) FROM volumes WHERE workspace = ?1",
        args![ws],
    )?
    .unwrap_or(0))
}

/// One more inode in volume `vol` (0: a root being made, not counted):
/// refused past the volume's or its workspace's inode quota.
pub(crate) fn add_inode(c: &dyn Conn, vol: Ino) -> Result<()> {
    let Some(s) = scope(c, vol)? else {
        return Ok(());
    };
    if !s.counts_files() {
        return Ok(());
    }
    if s.max_files > 0 && s.files + 1 > s.max_files {
        return Err(over("the volume", s.max_files, "files"));
    }
    if s.ws_max_files > 0 && workspace_inodes(c, s.ws)? + 1 > s.ws_max_files {
        return Err(over("the workspace", s.ws_max_files, "files"));
    }
    c.exec(
        "UPDATE volumes SET files = files + 1 WHERE root = ?1",
        args![vol as i64],
    )?;
    Ok(())
}

/// Inode `ino` is about to be deleted.
pub(crate) fn drop_inode(c: &dyn Conn, ino: Ino) -> Result<()> {
    if let Some(s) = scope_of_inode(c, ino)? {
        if s.counts_files() {
            c.exec(
                "UPDATE volumes SET files = files - 1 WHERE root = ?1",
                args![s.vol as i64],
            )?;
        }
    }
    Ok(())
}

fn block_size(c: &dyn Conn, ws: WorkspaceId, hash: &[u8]) -> Result<i64> {
    Ok(c.int(
        "SELECT size FROM blocks WHERE workspace = ?1 AND hash = ?2",
        args![ws, hash],
    )?
    .unwrap_or(0))
}

/// A chunk's block and inline length, as stored.
pub(crate) type ChunkUse<'a> = (Option<&'a [u8]>, i64);

/// What a change of chunk `idx` of `ino` must count, read before it is
/// made: None when nothing is counted for its volume.
pub(crate) fn chunk_scope(c: &dyn Conn, ino: Ino) -> Result<Option<Scope>> {
    Ok(scope_of_inode(c, ino)?.filter(|s| s.counts_bytes() || s.ws_counts_bytes()))
}

/// A chunk of a file of `s`'s volume now holds `new` where it held `old`.
pub(crate) fn chunk_changed(
    c: &dyn Conn,
    s: &Scope,
    old: ChunkUse<'_>,
    new: ChunkUse<'_>,
) -> Result<()> {
    let vol = s.vol as i64;
    let mut vol_delta = 0;
    if s.counts_bytes() {
        if let Some(h) = new.0 {
            let refs = c.int(
                "INSERT INTO volume_blocks(volume, hash, refs) VALUES (?1, ?2, 1) \
                 ON CONFLICT(volume, hash) DO UPDATE SET refs = volume_blocks.refs + 1 \
                 RETURNING refs",
                args![vol, h],
            )?;
            if refs == Some(1) {
                vol_delta += block_size(c, s.ws, h)?;
            }
        }
        if let Some(h) = old.0 {
            let refs = c.int(
                "UPDATE volume_blocks SET refs = refs - 1 WHERE volume = ?1 AND hash = ?2 \
                 RETURNING refs",
                args![vol, h],
            )?;
            if matches!(refs, Some(r) if r <= 0) {
                c.exec(
                    "DELETE FROM volume_blocks WHERE volume = ?1 AND hash = ?2",
                    args![vol, h],
                )?;
                vol_delta -= block_size(c, s.ws, h)?;
            }
        }
        vol_delta += new.1 - old.1;
        if vol_delta != 0 {
            c.exec(
                "UPDATE volumes SET stored = stored + ?2 WHERE root = ?1",
                args![vol, vol_delta],
            )?;
        }
    }
    let inline = new.1 - old.1;
    if s.ws_counts_bytes() && inline != 0 {
        c.exec(
            "UPDATE workspaces SET stored = stored + ?2 WHERE id = ?1",
            args![s.ws, inline],
        )?;
    }
    Ok(())
}

/// Refuses a commit of `new` chunks to file `ino` of `vol` that would take
/// the volume or its workspace past their byte quota (counting blocks the
/// volume does not have yet, and inline bytes, less what it replaces).
/// Checked before anything is written, so a refused commit changes nothing.
pub(crate) fn check_commit(c: &dyn Conn, vol: Ino, ino: Ino, new: &[Chunk]) -> Result<()> {
    let Some(s) = scope(c, vol)? else {
        return Ok(());
    };
    if !s.counts_bytes() && !s.ws_counts_bytes() {
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
    if s.counts_bytes() {
        for (h, n) in net {
            let refs = c
                .int(
                    "SELECT refs FROM volume_blocks WHERE volume = ?1 AND hash = ?2",
                    args![vol as i64, &h[..]],
                )?
                .unwrap_or(0);
            match (refs > 0, refs + n > 0) {
                (false, true) => vol_delta += block_size(c, s.ws, &h)?,
                (true, false) => vol_delta -= block_size(c, s.ws, &h)?,
                _ => {}
            }
        }
        if vol_delta > 0 && s.stored + vol_delta > s.max_bytes {
            return Err(over("the volume", s.max_bytes, "bytes"));
        }
    }
    if s.ws_counts_bytes() && ws_delta > 0 && s.ws_stored + ws_delta > s.ws_max_bytes {
        return Err(over("the workspace", s.ws_max_bytes, "bytes"));
    }
    Ok(())
}

/// Would a new block of `size` bytes take workspace `ws` past its byte
/// quota?
pub(crate) fn check_block(c: &dyn Conn, ws: WorkspaceId, size: i64) -> Result<()> {
    let (stored, _, max_bytes) = workspace_limits(c, ws)?;
    if max_bytes > 0 && stored + size > max_bytes {
        return Err(over("the workspace", max_bytes, "bytes"));
    }
    Ok(())
}

/// A new block of `size` bytes for workspace `ws`: refused past its byte
/// quota, counted under one. Called in the transaction that records it.
pub(crate) fn add_block(c: &dyn Conn, ws: WorkspaceId, size: i64) -> Result<()> {
    let (stored, _, max_bytes) = workspace_limits(c, ws)?;
    if max_bytes == 0 {
        return Ok(());
    }
    if stored + size > max_bytes {
        return Err(over("the workspace", max_bytes, "bytes"));
    }
    c.exec(
        "UPDATE workspaces SET stored = stored + ?2 WHERE id = ?1",
        args![ws, size],
    )?;
    Ok(())
}

pub(crate) fn drop_block(c: &dyn Conn, ws: WorkspaceId, size: i64) -> Result<()> {
    if workspace_limits(c, ws)?.2 > 0 {
        c.exec(
            "UPDATE workspaces SET stored = stored - ?2 WHERE id = ?1",
            args![ws, size],
        )?;
    }
    Ok(())
}

/// A volume's whole tree is about to go (`clear_tree`): its inline bytes
/// leave its workspace's count now (its blocks when they are reaped), and
/// its own counters start again from zero.
pub(crate) fn tree_cleared(c: &dyn Conn, ws: WorkspaceId, root: Ino) -> Result<()> {
    let vol = root as i64;
    if workspace_limits(c, ws)?.2 > 0 {
        let inline = c
            .int(
                "SELECT CAST(coalesce(sum(length(k.data)), 0) AS BIGINT) FROM chunks k \
                 JOIN inodes i ON i.ino = k.ino WHERE i.volume = ?1 AND k.data IS NOT NULL",
                args![vol],
            )?
            .unwrap_or(0);
        c.exec(
            "UPDATE workspaces SET stored = stored - ?2 WHERE id = ?1",
            args![ws, inline],
        )?;
    }
    c.exec("DELETE FROM volume_blocks WHERE volume = ?1", args![vol])?;
    c.exec(
        "UPDATE volumes SET files = 0, stored = 0 WHERE root = ?1",
        args![vol],
    )?;
    Ok(())
}

fn recount_files(c: &dyn Conn, root: Ino) -> Result<()> {
    c.exec(
        "UPDATE volumes SET files = (SELECT count(*) FROM inodes WHERE volume = ?1) - 1 \
         WHERE root = ?1",
        args![root as i64],
    )?;
    Ok(())
}

fn recount_bytes(c: &dyn Conn, root: Ino) -> Result<()> {
    let vol = root as i64;
    for sql in [
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
fn recount_workspace_bytes(c: &dyn Conn, ws: WorkspaceId) -> Result<()> {
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

/// Counts from the rows what the quotas of volume `root` and its
/// workspace need counted: after a change that bypassed the counters (a
/// snapshot, a clone, a restore), then checks the workspace's quotas.
pub(crate) fn recount(c: &dyn Conn, root: Ino) -> Result<()> {
    let Some(s) = scope(c, root)? else {
        return Ok(());
    };
    if s.counts_files() {
        recount_files(c, root)?;
    }
    if s.counts_bytes() {
        recount_bytes(c, root)?;
    }
    if s.ws_counts_bytes() {
        recount_workspace_bytes(c, s.ws)?;
    }
    check_workspace(c, s.ws)
}

/// Refuses a workspace over its quotas (after a change that adds many
/// rows at once: a snapshot, a clone, a restore).
pub(crate) fn check_workspace(c: &dyn Conn, ws: WorkspaceId) -> Result<()> {
    let (stored, max_files, max_bytes) = workspace_limits(c, ws)?;
    if max_bytes > 0 && stored > max_bytes {
        return Err(over("the workspace", max_bytes, "bytes"));
    }
    if max_files > 0 && workspace_inodes(c, ws)? > max_files {
        return Err(over("the workspace", max_files, "files"));
    }
    Ok(())
}

/// What `statfs` and `volume info` show of quotas: the volume's and its
/// workspace's limits (0: none) and usage. Usage no quota needs counted
/// is counted here from the rows.
pub(crate) fn limited(c: &dyn Conn, vol: Ino) -> Result<bool> {
    let Some(s) = scope(c, vol)? else {
        return Err(MetaError::NotFound(format!("volume of inode {vol}")));
    };
    Ok(s.max_files + s.max_bytes + s.ws_max_files + s.ws_max_bytes > 0)
}

pub(crate) fn view(c: &dyn Conn, vol: Ino) -> Result<QuotaView> {
    let Some(s) = scope(c, vol)? else {
        return Err(MetaError::NotFound(format!("volume of inode {vol}")));
    };
    let any = s.max_files + s.max_bytes + s.ws_max_files + s.ws_max_bytes > 0;
    let u = |v: i64| v.max(0) as u64;
    let inodes = if s.counts_files() {
        s.files
    } else {
        c.int(
            "SELECT count(*) - 1 FROM inodes WHERE volume = ?1",
            args![vol as i64],
        )?
        .unwrap_or(0)
    };
    // Stored bytes are a join over every chunk of the volume: summed only
    // when a quota makes them matter (every `statfs` — `df`, `find` —
    // asks for this view).
    let stored = if s.counts_bytes() {
        s.stored
    } else if any {
        super::control::volume_usage(c, vol)?.stored_bytes as i64
    } else {
        0
    };
    Ok(QuotaView {
        inodes: u(inodes),
        stored: u(stored),
        max_files: u(s.max_files),
        max_bytes: u(s.max_bytes),
        ws_inodes: if s.ws_max_files > 0 {
            u(workspace_inodes(c, s.ws)?)
        } else {
            0
        },
        ws_stored: u(s.ws_stored),
        ws_max_files: u(s.ws_max_files),
        ws_max_bytes: u(s.ws_max_bytes),
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
    // Counting starts now, from the rows (usage above a new limit is kept:
    // only growth is refused).
    if let Some(s) = scope(c, v.root)? {
        if s.counts_files() {
            recount_files(c, v.root)?;
        }
        if s.counts_bytes() {
            recount_bytes(c, v.root)?;
        }
    }
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
    let (_, files, bytes) = workspace_limits(c, w.id)?;
    if files > 0 {
        for root in c.rows(
            "SELECT root FROM volumes WHERE workspace = ?1",
            args![w.id],
            |r| r.int(0),
        )? {
            recount_files(c, root as Ino)?;
        }
    }
    if bytes > 0 {
        recount_workspace_bytes(c, w.id)?;
    }
    Ok(w)
}
