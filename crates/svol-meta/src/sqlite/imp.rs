//! `MetaBackend` for `Sqlite`: each method is one transaction around the
//! operation functions of the sibling modules.

use rusqlite::{params, OptionalExtension};

use super::{apps, content, control, rows, tree, Sqlite};
use crate::lifetimes::*;
use crate::types::*;
use crate::{MetaBackend, MetaError, Result};

impl MetaBackend for Sqlite {
    fn create_workspace(&self, name: &str) -> Result<Workspace> {
        self.write(false, |c| control::create_workspace(c, name))
    }
    fn workspace(&self, name: &str) -> Result<Workspace> {
        self.read(|c| control::workspace(c, name))
    }
    fn list_workspaces(&self) -> Result<Vec<Workspace>> {
        self.read(|c| control::list_workspaces(c))
    }
    fn add_token(
        &self,
        ws: WorkspaceId,
        hash: &[u8; 32],
        label: &str,
        admin: bool,
    ) -> Result<TokenInfo> {
        self.write(true, |c| control::add_token(c, ws, hash, label, admin))
    }
    fn authenticate(&self, hash: &[u8; 32]) -> Result<Grant> {
        self.read(|c| control::authenticate(c, hash))
    }
    fn list_tokens(&self, ws: WorkspaceId) -> Result<Vec<TokenInfo>> {
        self.read(|c| control::list_tokens(c, ws))
    }
    fn revoke_token(&self, ws: Option<WorkspaceId>, token: TokenRef<'_>) -> Result<TokenInfo> {
        self.write(true, |c| control::revoke_token(c, ws, token))
    }

    fn create_app(&self, ws: WorkspaceId, name: &str, now_ms: i64) -> Result<App> {
        self.write(true, |c| apps::create_app(c, ws, name, now_ms))
    }
    fn list_apps(&self, ws: WorkspaceId) -> Result<Vec<App>> {
        self.read(|c| apps::list_apps(c, ws))
    }
    fn app(&self, ws: WorkspaceId, id: &str) -> Result<App> {
        self.read(|c| apps::app(c, ws, id))
    }
    fn stop_app(&self, ws: WorkspaceId, id: &str, _now: Timespec) -> Result<Outcome<App>> {
        self.write(true, |c| apps::stop_app(c, ws, id))
    }
    fn stop_idle_apps(&self, now_ms: i64, grace_ms: i64) -> Result<Outcome<Vec<App>>> {
        self.write(true, |c| apps::stop_idle_apps(c, now_ms, grace_ms))
    }

    fn create_volume(&self, ws: WorkspaceId, name: &str, now: Timespec) -> Result<Volume> {
        self.write(true, |c| control::create_volume(c, ws, name, now))
    }
    fn create_ephemeral_volume(&self, ws: WorkspaceId, app: &str, now: Timespec) -> Result<Volume> {
        self.write(true, |c| apps::create_ephemeral_volume(c, ws, app, now))
    }
    fn persist_volume(
        &self,
        ws: WorkspaceId,
        id: &str,
        name: &str,
        now: Timespec,
    ) -> Result<Volume> {
        self.write(true, |c| apps::persist_volume(c, ws, id, name, now))
    }
    fn list_volumes(&self, ws: WorkspaceId) -> Result<Vec<Volume>> {
        self.read(|c| control::list_volumes(c, ws))
    }
    fn volume(&self, ws: WorkspaceId, key: &str) -> Result<Volume> {
        self.read(|c| control::volume(c, ws, key))
    }
    fn rename_volume(&self, ws: WorkspaceId, name: &str, new_name: &str) -> Result<Volume> {
        self.write(true, |c| control::rename_volume(c, ws, name, new_name))
    }
    fn delete_volume(&self, ws: WorkspaceId, key: &str) -> Result<Outcome<Volume>> {
        self.write(true, |c| control::delete_volume(c, ws, key))
    }
    fn compact(&self) -> Result<()> {
        self.compact()
    }
    fn volume_usage(&self, vol: Ino) -> Result<VolumeUsage> {
        self.read(|c| control::volume_usage(c, vol))
    }

    fn lookup(&self, vol: Ino, parent: Ino, name: &[u8]) -> Result<Attr> {
        self.read(|c| tree::lookup(c, vol, parent, name))
    }
    fn getattr(&self, vol: Ino, ino: Ino) -> Result<Attr> {
        self.read(|c| rows::attr(c, vol, ino))
    }
    fn setattr(&self, vol: Ino, ino: Ino, set: &SetAttr, now: Timespec) -> Result<Outcome<Attr>> {
        self.write(false, |c| tree::setattr(c, vol, ino, set, now))
    }
    fn create(
        &self,
        vol: Ino,
        parent: Ino,
        name: &[u8],
        node: &NewNode,
        exclusive: bool,
        now: Timespec,
    ) -> Result<Attr> {
        self.write(false, |c| {
            tree::create(c, vol, parent, name, node, exclusive, now)
        })
    }
    fn link(
        &self,
        vol: Ino,
        ino: Ino,
        new_parent: Ino,
        new_name: &[u8],
        now: Timespec,
    ) -> Result<Attr> {
        self.write(false, |c| {
            tree::link(c, vol, ino, new_parent, new_name, now)
        })
    }
    fn unlink(
        &self,
        vol: Ino,
        parent: Ino,
        name: &[u8],
        directory: bool,
        now: Timespec,
    ) -> Result<Outcome<Ino>> {
        self.write(false, |c| {
            tree::unlink(c, vol, parent, name, directory, now)
        })
    }
    fn rename(
        &self,
        vol: Ino,
        parent: Ino,
        name: &[u8],
        new_parent: Ino,
        new_name: &[u8],
        flags: RenameFlags,
        now: Timespec,
    ) -> Result<Outcome<Option<Ino>>> {
        self.write(false, |c| {
            tree::rename(c, vol, parent, name, new_parent, new_name, flags, now)
        })
    }
    fn readdir(&self, vol: Ino, dir: Ino, after: u64, limit: usize) -> Result<Vec<DirEntry>> {
        self.read(|c| tree::readdir(c, vol, dir, after, limit))
    }
    fn readlink(&self, vol: Ino, ino: Ino) -> Result<Vec<u8>> {
        self.read(|c| tree::readlink(c, vol, ino))
    }
    fn resolve(&self, vol: Ino, path: &str) -> Result<Attr> {
        self.read(|c| tree::resolve(c, vol, path))
    }
    fn copy(
        &self,
        vol: Ino,
        src: Ino,
        dst_parent: Ino,
        dst_name: &[u8],
        now: Timespec,
    ) -> Result<Attr> {
        self.write(false, |c| {
            tree::copy(c, vol, src, dst_parent, dst_name, now)
        })
    }

    fn open(&self, vol: Ino, session: &str, ino: Ino) -> Result<(Attr, Vec<Chunk>)> {
        if session.is_empty() {
            return self.read(|c| content::open(c, vol, session, ino));
        }
        self.write(false, |c| content::open(c, vol, session, ino))
    }
    fn release(&self, vol: Ino, session: &str, ino: Ino) -> Result<Outcome<()>> {
        self.write(false, |c| content::release(c, vol, session, ino))
    }
    fn chunks(&self, vol: Ino, ino: Ino) -> Result<Vec<Chunk>> {
        self.read(|c| {
            rows::attr(c, vol, ino)?;
            rows::chunks(c, ino)
        })
    }
    fn commit(
        &self,
        vol: Ino,
        ino: Ino,
        chunks: &[Chunk],
        write_end: u64,
        durable: bool,
        now: Timespec,
    ) -> Result<Outcome<Attr>> {
        self.write(durable, |c| {
            content::commit(c, vol, ino, chunks, write_end, now)
        })
    }

    fn sync(&self) -> Result<()> {
        self.write(true, |_| Ok(()))
    }
    fn get_xattr(&self, vol: Ino, ino: Ino, name: &[u8]) -> Result<Vec<u8>> {
        self.read(|c| content::get_xattr(c, vol, ino, name))
    }
    fn set_xattr(
        &self,
        vol: Ino,
        ino: Ino,
        name: &[u8],
        value: &[u8],
        mode: XattrMode,
        now: Timespec,
    ) -> Result<()> {
        self.write(false, |c| {
            content::set_xattr(c, vol, ino, name, value, mode, now)
        })
    }
    fn list_xattr(&self, vol: Ino, ino: Ino) -> Result<Vec<Vec<u8>>> {
        self.read(|c| content::list_xattr(c, vol, ino))
    }
    fn remove_xattr(&self, vol: Ino, ino: Ino, name: &[u8], now: Timespec) -> Result<()> {
        self.write(false, |c| content::remove_xattr(c, vol, ino, name, now))
    }

    fn open_session(
        &self,
        owner: &SessionOwner,
        session: &str,
        vol: Ino,
        app: &str,
        expires_ms: i64,
    ) -> Result<()> {
        self.write(false, |c| {
            let app = apps::session_app(c, owner.workspace, vol, app)?;
            let n = c.execute(
                "INSERT INTO sessions(id, volume, expires, app, workspace, token) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                 ON CONFLICT(id) DO UPDATE SET expires = excluded.expires \
                 WHERE sessions.workspace = excluded.workspace \
                 AND sessions.token = excluded.token AND sessions.volume = excluded.volume",
                params![
                    session,
                    vol as i64,
                    expires_ms,
                    app,
                    owner.workspace,
                    &owner.token[..]
                ],
            )?;
            if n == 0 {
                return Err(MetaError::PermissionDenied(
                    "the session belongs to another client".into(),
                ));
            }
            Ok(())
        })
    }
    fn session(&self, id: &str) -> Result<SessionInfo> {
        self.read(|c| {
            let row: Option<(i64, Option<Vec<u8>>, i64, i64)> = c
                .prepare_cached(
                    "SELECT workspace, token, volume, expires FROM sessions WHERE id = ?1",
                )?
                .query_row(params![id], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .optional()?;
            let (workspace, token, volume, expires_ms) =
                row.ok_or_else(|| MetaError::NotFound("session".into()))?;
            // Sessions from before sessions had owners belong to nobody.
            let token: [u8; 32] = token
                .and_then(|t| t.try_into().ok())
                .ok_or_else(|| MetaError::NotFound("session".into()))?;
            Ok(SessionInfo {
                owner: SessionOwner { workspace, token },
                volume: volume as u64,
                expires_ms,
            })
        })
    }
    fn renew_session(&self, session: &str, expires_ms: i64) -> Result<bool> {
        self.write(false, |c| {
            Ok(c.execute(
                "UPDATE sessions SET expires = ?2 WHERE id = ?1",
                params![session, expires_ms],
            )? > 0)
        })
    }
    fn expire_sessions(&self, now_ms: i64, only: Option<&str>) -> Result<Outcome<Vec<String>>> {
        self.write(false, |c| content::expire_sessions(c, now_ms, only))
    }

    fn missing_blocks(&self, ws: WorkspaceId, hashes: &[BlockId]) -> Result<Vec<BlockId>> {
        self.read(|c| {
            let mut out = Vec::new();
            for h in hashes {
                if !content::block_visible(c, ws, h)? {
                    out.push(*h);
                }
            }
            Ok(out)
        })
    }
    fn block_visible(&self, ws: WorkspaceId, hash: &BlockId) -> Result<bool> {
        self.read(|c| content::block_visible(c, ws, hash))
    }
    fn register_block(&self, b: &BlockRef, size: u64, pending_until_ms: i64) -> Result<()> {
        self.write(false, |c| {
            c.execute(
                "INSERT INTO blocks(workspace, hash, size, refs, pending_until) \
                 VALUES (?1, ?2, ?3, 0, ?4) ON CONFLICT(workspace, hash) DO UPDATE \
                 SET pending_until = max(pending_until, excluded.pending_until)",
                params![b.workspace, &b.hash[..], size as i64, pending_until_ms],
            )?;
            Ok(())
        })
    }
    fn mark_block(&self, b: &BlockRef, now_ms: i64) -> Result<bool> {
        self.write(false, |c| {
            Ok(c.execute(
                "UPDATE blocks SET pending_until = ?4 \
                 WHERE workspace = ?1 AND hash = ?2 AND refs <= 0 AND pending_until <= ?3",
                params![b.workspace, &b.hash[..], now_ms, rows::DELETING],
            )? > 0)
        })
    }
    fn drop_block(&self, b: &BlockRef) -> Result<()> {
        self.write(false, |c| {
            c.execute(
                "DELETE FROM blocks WHERE workspace = ?1 AND hash = ?2 AND refs <= 0 \
                 AND pending_until = ?3",
                params![b.workspace, &b.hash[..], rows::DELETING],
            )?;
            Ok(())
        })
    }
    fn expired_blocks(&self, now_ms: i64, limit: usize) -> Result<Vec<BlockRef>> {
        self.read(|c| {
            let v: Vec<(WorkspaceId, Vec<u8>)> = c
                .prepare(
                    "SELECT workspace, hash FROM blocks \
                     WHERE refs <= 0 AND pending_until <= ?1 LIMIT ?2",
                )?
                .query_map(params![now_ms, limit as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            v.into_iter()
                .map(|(workspace, h)| {
                    Ok(BlockRef {
                        workspace,
                        hash: rows::to_hash(h)?,
                    })
                })
                .collect()
        })
    }
    fn block_owners(&self, hash: &BlockId) -> Result<Vec<WorkspaceId>> {
        self.read(|c| {
            let v = c
                .prepare("SELECT workspace FROM blocks WHERE hash = ?1")?
                .query_map(params![&hash[..]], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            Ok(v)
        })
    }
}
