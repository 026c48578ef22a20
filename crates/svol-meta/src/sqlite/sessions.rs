//! Mount sessions and their leases. A session is made by the server, bound
//! to the workspace and token that opened it, and lives while heartbeats
//! renew its lease. One whose lease ran out is never renewed or resumed:
//! its locks and open files are gone, and its writes are fenced (see
//! `changes::check_lease`).

use rusqlite::{params, Connection, OptionalExtension};

use super::apps;
use super::tx::SqlTx;
use crate::lifetimes::*;
use crate::tree::{self, Tx};
use crate::types::*;
use crate::{MetaError, Result};

pub(crate) fn open(
    c: &Connection,
    owner: &SessionOwner,
    id: &str,
    vol: Ino,
    app: &str,
    expires_ms: i64,
) -> Result<Lease> {
    let app = apps::session_app(c, owner.workspace, vol, app)?;
    let n = c.execute(
        "INSERT INTO sessions(id, volume, expires, app, workspace, token, generation) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1) ON CONFLICT(id) DO NOTHING",
        params![
            id,
            vol as i64,
            expires_ms,
            app,
            owner.workspace,
            &owner.token[..]
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

pub(crate) fn resume(
    c: &Connection,
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
    let generation: i64 = c
        .prepare_cached(
            "UPDATE sessions SET generation = generation + 1, expires = ?2 WHERE id = ?1 \
             RETURNING generation",
        )?
        .query_row(params![id, expires_ms], |r| r.get(0))?;
    Ok(Lease {
        generation: generation as u64,
        expires_ms,
    })
}

pub(crate) fn renew(
    c: &Connection,
    id: &str,
    generation: u64,
    now_ms: i64,
    expires_ms: i64,
) -> Result<Lease> {
    let n = c
        .prepare_cached(
            "UPDATE sessions SET expires = ?4 WHERE id = ?1 AND generation = ?2 \
             AND expires >= ?3",
        )?
        .execute(params![id, generation as i64, now_ms, expires_ms])?;
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

pub(crate) fn get(c: &Connection, id: &str) -> Result<SessionInfo> {
    type Row = (i64, Option<Vec<u8>>, i64, i64, i64);
    let row: Option<Row> = c
        .prepare_cached(
            "SELECT workspace, token, volume, expires, generation FROM sessions WHERE id = ?1",
        )?
        .query_row(params![id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .optional()?;
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

/// Ends sessions whose lease ran out (or `only`): their open files are
/// released, their locks and lock waits dropped (the feed wakes whoever
/// waits on those files), their apps' idle clocks started.
pub(crate) fn expire(
    c: &Connection,
    now_ms: i64,
    only: Option<&str>,
) -> Result<Outcome<Vec<String>>> {
    let ids: Vec<(String, i64)> = match only {
        Some(id) => c
            .prepare_cached("SELECT id, volume FROM sessions WHERE id = ?1")?
            .query_map(params![id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?,
        None => c
            .prepare_cached("SELECT id, volume FROM sessions WHERE expires < ?1")?
            .query_map(params![now_ms], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?,
    };
    let mut out = Outcome::new(Vec::new(), Vec::new());
    for (id, vol) in ids {
        let inos: Vec<i64> = c
            .prepare_cached("SELECT ino FROM opens WHERE session = ?1")?
            .query_map(params![id], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        c.prepare_cached("DELETE FROM opens WHERE session = ?1")?
            .execute(params![id])?;
        let t = SqlTx(c);
        let unlocked = t.drop_session_locks(&id)?;
        if !unlocked.is_empty() {
            t.append_feed(&FeedEntry {
                volume: vol as u64,
                origin: id.clone(),
                unlocked: unlocked.clone(),
                ..Default::default()
            })?;
            out.changes.unlocked.extend(unlocked);
        }
        apps::touch_session_apps(c, &id, now_ms)?;
        c.prepare_cached("DELETE FROM sessions WHERE id = ?1")?
            .execute(params![id])?;
        for ino in inos {
            tree::destroy_if_unreachable(&t, ino as u64, &mut out.changes.freed)?;
        }
        out.value.push(id);
    }
    Ok(out)
}
