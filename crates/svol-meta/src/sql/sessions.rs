//! Mount sessions and their leases. A session is made by the server, bound
//! to the workspace and token that opened it, and lives while heartbeats
//! renew its lease. One whose lease ran out is never renewed or resumed:
//! its locks and open files are gone, and its writes are fenced (see
//! `changes::check_lease`).

use super::tx::SqlTx;
use super::{apps, args, Conn, ConnExt};
use crate::lifetimes::*;
use crate::tree::{self, Tx};
use crate::types::*;
use crate::{MetaError, Result};

pub(crate) fn open(
    c: &dyn Conn,
    owner: &SessionOwner,
    id: &str,
    vol: Ino,
    app: &str,
    client: &SessionClient,
    expires_ms: i64,
) -> Result<Lease> {
    let app = apps::session_app(c, owner.workspace, vol, app)?;
    let n = c.exec(
        "INSERT INTO sessions(id, volume, expires, app, workspace, token, generation, \
         host, purpose, peer, started) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7, ?8, ?9, ?10) ON CONFLICT(id) DO NOTHING",
        args![
            id,
            vol as i64,
            expires_ms,
            app,
            owner.workspace,
            &owner.token[..],
            &client.host,
            &client.purpose,
            &client.peer,
            client.started_ms
        ],
    )?;
    if n == 0 {
        return Err(MetaError::AlreadyExists("session".into()));
    }
    Ok(Lease {
        generation: 1,
        expires_ms,
    })
}

/// Takes a live session up again as a new generation. Its queued lock
/// waits died with the connection that made them (the client asks again),
/// so they no longer hold back anyone queued behind them.
pub(crate) fn resume(
    c: &dyn Conn,
    owner: &SessionOwner,
    id: &str,
    vol: Ino,
    now_ms: i64,
    expires_ms: i64,
) -> Result<Lease> {
    let s = get(c, id)?;
    if s.owner != *owner || s.volume != vol {
        return Err(MetaError::PermissionDenied(
            "the session belongs to another client".into(),
        ));
    }
    if s.expires_ms < now_ms {
        return Err(MetaError::NotFound("session (its lease ran out)".into()));
    }
    let generation = c
        .int(
            "UPDATE sessions SET generation = generation + 1, expires = ?2 WHERE id = ?1 \
             RETURNING generation",
            args![id, expires_ms],
        )?
        .ok_or_else(|| MetaError::NotFound("session".into()))?;
    let waits = c.rows(
        "DELETE FROM lock_waiters WHERE session = ?1 RETURNING ino",
        args![id],
        |r| r.int(0),
    )?;
    if !waits.is_empty() {
        SqlTx::new(c).append_feed(&FeedEntry {
            volume: vol,
            origin: id.to_string(),
            unlocked: waits.into_iter().map(|i| i as u64).collect(),
            ..Default::default()
        })?;
    }
    Ok(Lease {
        generation: generation as u64,
        expires_ms,
    })
}

pub(crate) fn renew(
    c: &dyn Conn,
    id: &str,
    generation: u64,
    now_ms: i64,
    expires_ms: i64,
) -> Result<Lease> {
    let n = c.exec(
        "UPDATE sessions SET expires = ?4 WHERE id = ?1 AND generation = ?2 \
         AND expires >= ?3",
        args![id, generation as i64, now_ms, expires_ms],
    )?;
    if n == 0 {
        return Err(MetaError::Fenced(
            "the lease ran out or the session was resumed elsewhere".into(),
        ));
    }
    Ok(Lease {
        generation,
        expires_ms,
    })
}

pub(crate) fn get(c: &dyn Conn, id: &str) -> Result<SessionInfo> {
    let row = c.row(
        "SELECT workspace, token, volume, expires, generation FROM sessions WHERE id = ?1",
        args![id],
        |r| Ok((r.int(0)?, r.opt_bytes(1)?, r.int(2)?, r.int(3)?, r.int(4)?)),
    )?;
    let (workspace, token, volume, expires_ms, generation) =
        row.ok_or_else(|| MetaError::NotFound("session".into()))?;
    // Sessions from before sessions had owners belong to nobody.
    let token: [u8; 32] = token
        .and_then(|t| t.try_into().ok())
        .ok_or_else(|| MetaError::NotFound("session".into()))?;
    Ok(SessionInfo {
        owner: SessionOwner { workspace, token },
        volume: volume as u64,
        expires_ms,
        generation: generation as u64,
    })
}

/// Sessions whose lease runs at `now_ms`, of workspace `ws` (or of all),
/// oldest first.
pub(crate) fn live(c: &dyn Conn, ws: Option<WorkspaceId>, now_ms: i64) -> Result<Vec<LiveSession>> {
    c.rows(
        "SELECT s.id, s.workspace, v.public_id, v.name, coalesce(a.public_id, ''), \
         s.host, s.purpose, s.peer, s.started, s.expires \
         FROM sessions s JOIN volumes v ON v.root = s.volume \
         LEFT JOIN apps a ON a.id = s.app \
         WHERE s.expires >= ?1 AND (?2 < 0 OR s.workspace = ?2) \
         ORDER BY s.started, s.id",
        args![now_ms, ws.unwrap_or(-1)],
        |r| {
            Ok(LiveSession {
                id: r.text(0)?,
                workspace: r.int(1)?,
                volume: r.text(2)?,
                volume_name: r.text(3)?,
                app: r.text(4)?,
                client: SessionClient {
                    host: r.text(5)?,
                    purpose: r.text(6)?,
                    peer: r.text(7)?,
                    started_ms: r.int(8)?,
                },
                expires_ms: r.int(9)?,
            })
        },
    )
}

/// Ends sessions whose lease ran out (or `only`): their open files are
/// released, their locks and lock waits dropped (the feed wakes whoever
/// waits on those files), their apps' idle clocks started.
pub(crate) fn expire(
    c: &dyn Conn,
    now_ms: i64,
    only: Option<&str>,
) -> Result<Outcome<Vec<String>>> {
    let pair = |r: &dyn super::Row| Ok((r.text(0)?, r.int(1)?));
    let ids = match only {
        Some(id) => c.rows(
            "SELECT id, volume FROM sessions WHERE id = ?1",
            args![id],
            pair,
        )?,
        None => c.rows(
            "SELECT id, volume FROM sessions WHERE expires < ?1",
            args![now_ms],
            pair,
        )?,
    };
    let t = SqlTx::new(c);
    let mut out = Outcome::new(Vec::new(), Vec::new());
    let mut unlocked_by: Vec<(String, i64, Vec<Ino>)> = Vec::new();
    for (id, vol) in ids {
        let inos = c.rows(
            "DELETE FROM opens WHERE session = ?1 RETURNING ino",
            args![&id],
            |r| r.int(0),
        )?;
        let unlocked = t.drop_session_locks(&id)?;
        if !unlocked.is_empty() {
            out.changes.unlocked.extend(&unlocked);
            unlocked_by.push((id.clone(), vol, unlocked));
        }
        apps::touch_session_apps(c, &id, now_ms)?;
        c.exec("DELETE FROM reserved_inos WHERE session = ?1", args![&id])?;
        c.exec("DELETE FROM sessions WHERE id = ?1", args![&id])?;
        for ino in inos {
            tree::destroy_if_unreachable(&t, ino as u64, &mut out.changes.freed)?;
        }
        out.value.push(id);
    }
    // Last: on PostgreSQL the feed append orders the commit.
    for (id, vol, unlocked) in unlocked_by {
        t.append_feed(&FeedEntry {
            volume: vol as u64,
            origin: id,
            unlocked,
            ..Default::default()
        })?;
    }
    Ok(out)
}
