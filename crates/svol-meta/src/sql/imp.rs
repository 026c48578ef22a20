//! `MetaBackend` for an SQL engine: each method is one transaction around
//! the operation functions of the sibling modules.

use super::tx::SqlTx;
use super::{
    apps, args, control, feed, file_trash, quota, rows, sessions, snapshot, trash, Conn, ConnExt,
    Engine, SqlStore,
};
use crate::lifetimes::*;
use crate::tree::{self, Touch};
use crate::types::*;
use crate::STALE_MARK_MS;
use crate::{MetaBackend, MetaError, Result};

/// `pending_until` of a block marked for deletion at `now_ms` (negative;
/// never 0, which is a live block's "unreferenced since forever").
fn mark_of(now_ms: i64) -> i64 {
    -now_ms.max(1)
}

fn being_deleted(b: &BlockRef) -> MetaError {
    MetaError::Stale(format!(
        "block {} is being deleted; upload it again once it is gone",
        hex::encode(b.hash)
    ))
}

impl<E: Engine> SqlStore<E> {
    fn read<T>(&self, mut f: impl FnMut(&dyn Conn) -> Result<T>) -> Result<T> {
        self.engine.read(&mut f)
    }

    fn write<T>(&self, durable: bool, mut f: impl FnMut(&dyn Conn) -> Result<T>) -> Result<T> {
        self.engine.write(durable, &mut f)
    }

    /// One change of volume `vol`'s tree: the lease check, the operation,
    /// and its change set with its feed row, all in one transaction.
    fn change<T>(
        &self,
        durable: bool,
        vol: Ino,
        cx: &Cx<'_>,
        f: impl Fn(&SqlTx<'_>) -> Result<(Outcome<T>, Touch)>,
    ) -> Result<Outcome<T>> {
        self.write(durable, |c| {
            snapshot::check_writable(c, vol)?;
            let t = SqlTx::new(c);
            tree::check_lease(&t, cx)?;
            let (out, touch) = f(&t)?;
            tree::finish(&t, vol, cx, out, touch)
        })
    }

    /// Runs `f` on the tree primitives of one read transaction.
    fn read_tx<T>(&self, f: impl Fn(&SqlTx<'_>) -> Result<T>) -> Result<T> {
        self.read(|c| f(&SqlTx::new(c)))
    }

    /// Runs `f` on the tree primitives of one write transaction.
    fn write_tx<T>(&self, f: impl Fn(&SqlTx<'_>) -> Result<T>) -> Result<T> {
        self.write(false, |c| f(&SqlTx::new(c)))
    }
}

impl<E: Engine> MetaBackend for SqlStore<E> {
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
    fn stop_app(&self, ws: WorkspaceId, id: &str, retire: Retire) -> Result<Outcome<App>> {
        self.write(true, |c| apps::stop_app(c, ws, id, retire))
    }
    fn stop_idle_apps(
        &self,
        now_ms: i64,
        grace_ms: i64,
        keep_ms: i64,
    ) -> Result<Outcome<Vec<App>>> {
        self.write(true, |c| apps::stop_idle_apps(c, now_ms, grace_ms, keep_ms))
    }

    fn create_volume(&self, ws: WorkspaceId, name: &str, now: Timespec) -> Result<Volume> {
        self.write(true, |c| apps::create_volume(c, ws, name, now))
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
    fn list_trash(&self, ws: WorkspaceId) -> Result<Vec<Trashed>> {
        self.read(|c| trash::list(c, ws))
    }
    fn restore_trashed(
        &self,
        ws: WorkspaceId,
        id: &str,
        name: Option<&str>,
        now: Timespec,
    ) -> Result<Volume> {
        self.write(true, |c| trash::restore(c, ws, id, name, now))
    }
    fn set_file_trash(&self, ws: WorkspaceId, key: &str, keep_ms: i64) -> Result<Volume> {
        self.write(true, |c| file_trash::set_retention(c, ws, key, keep_ms))
    }
    fn list_deleted_files(&self, vol: Ino, sel: &DeletedSelection<'_>) -> Result<Vec<DeletedFile>> {
        self.read(|c| file_trash::list(c, vol, sel))
    }
    fn restore_deleted_files(
        &self,
        vol: Ino,
        sel: &DeletedSelection<'_>,
        to: Option<&[u8]>,
        cx: &Cx<'_>,
    ) -> Result<Outcome<Restored>> {
        self.change(true, vol, cx, |t| {
            let (done, touch) = file_trash::restore(t, vol, sel, to, cx.now)?;
            Ok((Outcome::new(done, Vec::new()), touch))
        })
    }
    fn purge_deleted_files(&self, vol: Ino, sel: &DeletedSelection<'_>) -> Result<Outcome<usize>> {
        self.write_tx(|t| {
            let mut freed = Vec::new();
            let n = file_trash::purge(t, vol, sel, &mut freed)?;
            Ok(Outcome::new(n, freed))
        })
    }
    fn purge_expired_files(&self, now_ms: i64) -> Result<Outcome<usize>> {
        self.write_tx(|t| {
            let mut freed = Vec::new();
            let n = file_trash::purge_expired(t, now_ms, 1000, &mut freed)?;
            Ok(Outcome::new(n, freed))
        })
    }
    fn purge_trash(&self, which: Purge<'_>) -> Result<Outcome<Vec<String>>> {
        self.write(true, |c| {
            let mut freed = Vec::new();
            let ids = trash::purge(c, which, &mut freed)?;
            Ok(Outcome::new(ids, freed))
        })
    }
    fn delete_volume(&self, ws: WorkspaceId, key: &str, retire: Retire) -> Result<Outcome<Volume>> {
        self.write(true, |c| {
            let mut out = control::delete_volume(c, ws, key, retire)?;
            out.changes.deleted_volumes.push(out.value.root);
            Ok(out)
        })
    }
    fn compact(&self) -> Result<()> {
        self.engine.compact()
    }
    fn volume_usage(&self, vol: Ino) -> Result<VolumeUsage> {
        self.read(|c| control::volume_usage(c, vol))
    }
    fn snapshot_volume(
        &self,
        ws: WorkspaceId,
        key: &str,
        snap: &str,
        now: Timespec,
    ) -> Result<Volume> {
        self.write(true, |c| snapshot::snapshot(c, ws, key, snap, now))
    }
    fn list_snapshots(&self, ws: WorkspaceId, key: &str) -> Result<Vec<Volume>> {
        self.read(|c| snapshot::list_snapshots(c, ws, key))
    }
    fn restore_volume(
        &self,
        ws: WorkspaceId,
        key: &str,
        snap: &str,
        now_ms: i64,
    ) -> Result<Outcome<Volume>> {
        self.write(true, |c| snapshot::restore(c, ws, key, snap, now_ms))
    }
    fn clone_volume(
        &self,
        ws: WorkspaceId,
        from: &str,
        name: &str,
        now: Timespec,
    ) -> Result<Volume> {
        self.write(true, |c| snapshot::clone(c, ws, from, name, now))
    }
    fn quota_view(&self, vol: Ino) -> Result<QuotaView> {
        self.read(|c| quota::view(c, vol))
    }
    fn quota_limited(&self, vol: Ino) -> Result<bool> {
        self.read(|c| quota::limited(c, vol))
    }
    fn set_volume_quota(
        &self,
        ws: WorkspaceId,
        key: &str,
        max_bytes: Option<u64>,
        max_files: Option<u64>,
    ) -> Result<Volume> {
        self.write(true, |c| {
            quota::set_volume(c, ws, key, max_bytes, max_files)
        })
    }
    fn set_workspace_quota(
        &self,
        name: &str,
        max_bytes: Option<u64>,
        max_files: Option<u64>,
    ) -> Result<Workspace> {
        self.write(true, |c| {
            quota::set_workspace(c, name, max_bytes, max_files)
        })
    }
    fn workspace_usage(&self, ws: WorkspaceId) -> Result<WorkspaceUsage> {
        self.read(|c| control::workspace_usage(c, ws))
    }
    fn token(&self, hash: &[u8; 32]) -> Result<TokenInfo> {
        self.read(|c| control::token(c, hash))
    }
    fn stats(&self) -> Result<StoreStats> {
        self.read(control::stats)
    }

    fn lookup(&self, vol: Ino, parent: Ino, name: &[u8]) -> Result<Attr> {
        self.read_tx(|t| tree::lookup(t, vol, parent, name))
    }
    fn getattr(&self, vol: Ino, ino: Ino) -> Result<Attr> {
        self.read_tx(|t| tree::attr(t, vol, ino))
    }
    fn dir_of(&self, vol: Ino, ino: Ino) -> Result<Option<Ino>> {
        self.read_tx(|t| {
            tree::attr(t, vol, ino)?;
            Ok(tree::Tx::entry_of(t, ino)?.map(|(dir, _)| dir))
        })
    }
    fn setattr(&self, vol: Ino, ino: Ino, set: &SetAttr, cx: &Cx<'_>) -> Result<Outcome<Attr>> {
        self.change(false, vol, cx, |c| {
            if set.size.is_some() {
                tree::check_fence(c, cx, ino)?;
            }
            let out = tree::setattr(c, vol, ino, set, cx.now)?;
            let t = Touch::inodes(&[ino]).known(&out.value);
            Ok((out, t))
        })
    }
    fn create(
        &self,
        vol: Ino,
        parent: Ino,
        name: &[u8],
        node: &NewNode,
        exclusive: bool,
        cx: &Cx<'_>,
    ) -> Result<Outcome<Attr>> {
        self.change(false, vol, cx, |c| {
            let a = tree::create(c, vol, parent, name, node, exclusive, cx.now)?;
            let t = Touch::inodes(&[parent])
                .entry(parent, name)
                .fresh(a.ino)
                .known(&a);
            Ok((Outcome::new(a, Vec::new()), t))
        })
    }
    fn link(
        &self,
        vol: Ino,
        ino: Ino,
        new_parent: Ino,
        new_name: &[u8],
        cx: &Cx<'_>,
    ) -> Result<Outcome<Attr>> {
        self.change(false, vol, cx, |c| {
            let a = tree::link(c, vol, ino, new_parent, new_name, cx.now)?;
            let t = Touch::inodes(&[ino, new_parent]).entry(new_parent, new_name);
            Ok((Outcome::new(a, Vec::new()), t))
        })
    }
    fn unlink(
        &self,
        vol: Ino,
        parent: Ino,
        name: &[u8],
        directory: bool,
        cx: &Cx<'_>,
    ) -> Result<Outcome<Ino>> {
        self.change(false, vol, cx, |c| {
            let out = tree::unlink(c, vol, parent, name, directory, cx.now)?;
            let t = Touch::inodes(&[parent, out.value]).entry(parent, name);
            Ok((out, t))
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
        cx: &Cx<'_>,
    ) -> Result<Outcome<Option<Ino>>> {
        self.change(false, vol, cx, |c| {
            let out = tree::rename(c, vol, parent, name, new_parent, new_name, flags, cx.now)?;
            // The moved inode's ctime (and a directory's "..") changed too,
            // and so did whatever it replaced or was exchanged with.
            let r = &out.value;
            let mut inodes = vec![parent, new_parent];
            inodes.extend(r.moved.iter().chain(&r.replaced).chain(&r.swapped));
            let t = Touch::inodes(&inodes)
                .entry(parent, name)
                .entry(new_parent, new_name);
            let out = Outcome {
                value: out.value.replaced,
                changes: out.changes,
            };
            Ok((out, t))
        })
    }
    fn readdir(&self, vol: Ino, dir: Ino, after: u64, limit: usize) -> Result<Vec<DirEntry>> {
        self.read_tx(|t| tree::readdir(t, vol, dir, after, limit))
    }
    fn readlink(&self, vol: Ino, ino: Ino) -> Result<Vec<u8>> {
        self.read_tx(|t| tree::readlink(t, vol, ino))
    }
    fn resolve(&self, vol: Ino, path: &str) -> Result<Attr> {
        self.read_tx(|t| tree::resolve(t, vol, path))
    }
    fn copy(
        &self,
        vol: Ino,
        src: Ino,
        dst_parent: Ino,
        dst_name: &[u8],
        cx: &Cx<'_>,
    ) -> Result<Outcome<Attr>> {
        self.change(false, vol, cx, |c| {
            let a = tree::copy(c, vol, src, dst_parent, dst_name, cx.now)?;
            let t = Touch::inodes(&[dst_parent])
                .entry(dst_parent, dst_name)
                .fresh(a.ino);
            Ok((Outcome::new(a, Vec::new()), t))
        })
    }

    fn open(&self, vol: Ino, ino: Ino, cx: &Cx<'_>) -> Result<(Attr, Vec<Chunk>)> {
        if cx.session.is_empty() {
            return self.read_tx(|t| tree::open(t, vol, "", ino));
        }
        self.write_tx(|t| {
            tree::check_lease(t, cx)?;
            tree::open(t, vol, cx.session, ino)
        })
    }
    fn release(&self, vol: Ino, session: &str, ino: Ino) -> Result<Outcome<()>> {
        self.write_tx(|t| tree::release(t, vol, session, ino))
    }
    fn create_open(
        &self,
        vol: Ino,
        parent: Ino,
        name: &[u8],
        node: &NewNode,
        exclusive: bool,
        cx: &Cx<'_>,
    ) -> Result<Outcome<(Attr, Vec<Chunk>)>> {
        self.change(false, vol, cx, |c| {
            let a = tree::create(c, vol, parent, name, node, exclusive, cx.now)?;
            let opened = tree::open(c, vol, cx.session, a.ino)?;
            let t = Touch::inodes(&[parent])
                .entry(parent, name)
                .fresh(a.ino)
                .known(&a);
            Ok((Outcome::new(opened, Vec::new()), t))
        })
    }
    fn reserve_inos(&self, session: &str, n: usize) -> Result<Vec<Ino>> {
        self.write_tx(|t| tree::Tx::reserve_inos(t, session, n))
    }
    fn apply(&self, vol: Ino, ops: &[Queued], cx: &Cx<'_>) -> Result<Outcome<Vec<Result<Attr>>>> {
        self.change(false, vol, cx, |c| {
            let mut touch = Touch::default();
            let mut freed = Vec::new();
            let mut results = Vec::with_capacity(ops.len());
            for op in ops {
                match tree::queued(c, vol, cx, op, &mut touch, &mut freed) {
                    Err(e) if tree::ends_batch(&e) => return Err(e),
                    r => results.push(r),
                }
            }
            Ok((Outcome::new(results, freed), touch))
        })
    }
    fn release_many(&self, vol: Ino, session: &str, inos: &[Ino]) -> Result<Outcome<()>> {
        self.write_tx(|t| {
            let mut freed = Vec::new();
            for ino in inos {
                freed.extend(tree::release(t, vol, session, *ino)?.changes.freed);
            }
            Ok(Outcome::new((), freed))
        })
    }
    fn chunks(&self, vol: Ino, ino: Ino) -> Result<Vec<Chunk>> {
        self.read_tx(|t| {
            tree::attr(t, vol, ino)?;
            tree::Tx::chunks(t, ino)
        })
    }
    fn commit(
        &self,
        vol: Ino,
        ino: Ino,
        chunks: &[Chunk],
        write_end: u64,
        durable: bool,
        cx: &Cx<'_>,
    ) -> Result<Outcome<Attr>> {
        self.change(durable, vol, cx, |c| {
            tree::check_fence(c, cx, ino)?;
            let privs = tree::Privs {
                caps: true,
                suidgid: cx.kill_suidgid,
            };
            let done = tree::commit(c, vol, ino, chunks, write_end, cx.now, privs)?;
            let t = if done.changed {
                let mut t = Touch::inodes(&[ino]).known(&done.out.value);
                t.contents_of(c, &done.out.value)?;
                t
            } else {
                Touch::default()
            };
            Ok((done.out, t))
        })
    }

    fn sync(&self) -> Result<()> {
        self.write(true, |_| Ok(()))
    }
    fn get_xattr(&self, vol: Ino, ino: Ino, name: &[u8]) -> Result<Vec<u8>> {
        self.read_tx(|t| tree::get_xattr(t, vol, ino, name))
    }
    fn set_xattr(
        &self,
        vol: Ino,
        ino: Ino,
        name: &[u8],
        value: &[u8],
        mode: XattrMode,
        cx: &Cx<'_>,
    ) -> Result<Outcome<()>> {
        self.change(false, vol, cx, |c| {
            tree::set_xattr(c, vol, ino, name, value, mode, cx.now)?;
            Ok((Outcome::new((), Vec::new()), Touch::inodes(&[ino])))
        })
    }
    fn list_xattr(&self, vol: Ino, ino: Ino) -> Result<Vec<Vec<u8>>> {
        self.read_tx(|t| tree::list_xattr(t, vol, ino))
    }
    fn remove_xattr(&self, vol: Ino, ino: Ino, name: &[u8], cx: &Cx<'_>) -> Result<Outcome<()>> {
        self.change(false, vol, cx, |c| {
            tree::remove_xattr(c, vol, ino, name, cx.now)?;
            Ok((Outcome::new((), Vec::new()), Touch::inodes(&[ino])))
        })
    }

    fn open_session(
        &self,
        owner: &SessionOwner,
        id: &str,
        vol: Ino,
        app: &str,
        client: &SessionClient,
        expires_ms: i64,
    ) -> Result<Lease> {
        self.write(false, |c| {
            sessions::open(c, owner, id, vol, app, client, expires_ms)
        })
    }
    fn live_sessions(&self, ws: Option<WorkspaceId>, now_ms: i64) -> Result<Vec<LiveSession>> {
        self.read(|c| sessions::live(c, ws, now_ms))
    }
    fn resume_session(
        &self,
        owner: &SessionOwner,
        id: &str,
        vol: Ino,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<Lease> {
        self.write(false, |c| {
            sessions::resume(c, owner, id, vol, now_ms, expires_ms)
        })
    }
    fn session(&self, id: &str) -> Result<SessionInfo> {
        self.read(|c| sessions::get(c, id))
    }
    fn renew_session(
        &self,
        id: &str,
        generation: u64,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<Lease> {
        self.write(false, |c| {
            sessions::renew(c, id, generation, now_ms, expires_ms)
        })
    }
    fn expire_sessions(&self, now_ms: i64, only: Option<&str>) -> Result<Outcome<Vec<String>>> {
        self.write(false, |c| sessions::expire(c, now_ms, only))
    }

    fn test_lock(&self, vol: Ino, ino: Ino, want: &LockRange) -> Result<Option<LockRange>> {
        self.read_tx(|t| tree::test(t, vol, ino, want))
    }
    fn lock(
        &self,
        vol: Ino,
        ino: Ino,
        want: &LockRange,
        ticket: Option<u64>,
        wait: bool,
        cx: &Cx<'_>,
    ) -> Result<LockOutcome> {
        self.write_tx(|t| tree::lock(t, vol, ino, want, ticket, wait, cx))
    }
    fn queue_lock(&self, vol: Ino, ino: Ino, want: &LockRange, cx: &Cx<'_>) -> Result<u64> {
        self.write_tx(|t| tree::enqueue(t, vol, ino, want, cx))
    }
    fn unqueue_lock(&self, vol: Ino, ticket: u64) -> Result<()> {
        self.write_tx(|t| {
            if let Some(ino) = tree::Tx::delete_waiter(t, ticket)? {
                // Waiters behind it may go first now.
                tree::Tx::append_feed(
                    t,
                    &FeedEntry {
                        volume: vol,
                        unlocked: vec![ino],
                        ..Default::default()
                    },
                )?;
            }
            Ok(())
        })
    }
    fn unlock(
        &self,
        vol: Ino,
        ino: Ino,
        session: &str,
        owner: u64,
        start: u64,
        end: u64,
    ) -> Result<Outcome<u64>> {
        self.write_tx(|t| {
            tree::attr(t, vol, ino)?;
            let (fence, any) = tree::unlock(t, ino, session, owner, start, end)?;
            let mut out = Outcome::new(fence, Vec::new());
            if any {
                out.changes.volume = vol;
                out.changes.unlocked.push(ino);
                out.changes.feed = tree::Tx::append_feed(
                    t,
                    &FeedEntry {
                        volume: vol,
                        origin: session.to_string(),
                        unlocked: vec![ino],
                        ..Default::default()
                    },
                )?;
            }
            Ok(out)
        })
    }
    fn clear_lock_queue(&self) -> Result<()> {
        self.write(false, |c| {
            c.exec("DELETE FROM lock_waiters", &[])?;
            Ok(())
        })
    }

    fn feed_since(&self, after: u64, limit: usize) -> Result<FeedPage> {
        self.read(|c| feed::since(c, after, limit))
    }
    fn feed_head(&self) -> Result<u64> {
        self.read(feed::head)
    }
    fn trim_feed(&self, keep: u64) -> Result<()> {
        self.write(false, |c| feed::trim(c, keep))
    }

    fn missing_blocks(&self, ws: WorkspaceId, hashes: &[BlockId]) -> Result<Vec<BlockId>> {
        self.read(|c| {
            let mut out = Vec::new();
            for h in hashes {
                if !rows::block_visible(c, ws, h)? {
                    out.push(*h);
                }
            }
            Ok(out)
        })
    }
    fn block_visible(&self, ws: WorkspaceId, hash: &BlockId) -> Result<bool> {
        self.read(|c| rows::block_visible(c, ws, hash))
    }
    fn claim_block(&self, b: &BlockRef, until_ms: i64) -> Result<()> {
        self.write(false, |c| {
            let state = c.int(
                "SELECT pending_until FROM blocks WHERE workspace = ?1 AND hash = ?2",
                args![b.workspace, &b.hash[..]],
            )?;
            match state {
                None => Ok(()),
                Some(p) if p < 0 => Err(being_deleted(b)),
                Some(_) => {
                    c.exec(
                        "UPDATE blocks SET pending_until = ?3 WHERE workspace = ?1 AND hash = ?2 \
                         AND pending_until < ?3",
                        args![b.workspace, &b.hash[..], until_ms],
                    )?;
                    Ok(())
                }
            }
        })
    }
    fn check_block_quota(&self, b: &BlockRef, size: u64) -> Result<()> {
        self.read(|c| {
            let known = c
                .int(
                    "SELECT count(*) FROM blocks WHERE workspace = ?1 AND hash = ?2",
                    args![b.workspace, &b.hash[..]],
                )?
                .unwrap_or(0)
                > 0;
            if known {
                return Ok(());
            }
            quota::check_block(c, b.workspace, size as i64)
        })
    }
    fn register_block(&self, b: &BlockRef, size: u64, pending_until_ms: i64) -> Result<()> {
        self.write(false, |c| {
            let known = c
                .int(
                    "SELECT count(*) FROM blocks WHERE workspace = ?1 AND hash = ?2",
                    args![b.workspace, &b.hash[..]],
                )?
                .unwrap_or(0)
                > 0;
            if !known {
                quota::add_block(c, b.workspace, size as i64)?;
            }
            let p = c.int(
                "INSERT INTO blocks(workspace, hash, size, refs, pending_until) \
                 VALUES (?1, ?2, ?3, 0, ?4) ON CONFLICT(workspace, hash) DO UPDATE \
                 SET pending_until = CASE WHEN blocks.pending_until < 0 \
                     OR blocks.pending_until > excluded.pending_until \
                 THEN blocks.pending_until ELSE excluded.pending_until END \
                 RETURNING pending_until",
                args![b.workspace, &b.hash[..], size as i64, pending_until_ms],
            )?;
            match p {
                Some(p) if p < 0 => Err(being_deleted(b)),
                _ => Ok(()),
            }
        })
    }
    fn mark_block(&self, b: &BlockRef, now_ms: i64) -> Result<bool> {
        // A fresh mark is never taken twice (two reapers deleting one
        // object could delete a later upload's bytes); one older than
        // STALE_MARK_MS is a reaper that died half-way, and is taken over.
        self.write(false, |c| {
            Ok(c.exec(
                "UPDATE blocks SET pending_until = ?4 \
                 WHERE workspace = ?1 AND hash = ?2 AND refs <= 0 \
                 AND ((pending_until >= 0 AND pending_until <= ?3) \
                      OR (pending_until < 0 AND pending_until > ?5))",
                args![
                    b.workspace,
                    &b.hash[..],
                    now_ms,
                    mark_of(now_ms),
                    STALE_MARK_MS - now_ms
                ],
            )? > 0)
        })
    }
    fn drop_block(&self, b: &BlockRef, marked_ms: i64) -> Result<()> {
        self.write(false, |c| {
            let size = c.int(
                "DELETE FROM blocks WHERE workspace = ?1 AND hash = ?2 AND refs <= 0 \
                 AND pending_until = ?3 RETURNING size",
                args![b.workspace, &b.hash[..], mark_of(marked_ms)],
            )?;
            if let Some(size) = size {
                quota::drop_block(c, b.workspace, size)?;
            }
            Ok(())
        })
    }
    fn expired_blocks(&self, now_ms: i64, limit: usize) -> Result<Vec<BlockRef>> {
        self.read(|c| {
            c.rows(
                "SELECT workspace, hash FROM blocks WHERE refs <= 0 \
                 AND ((pending_until >= 0 AND pending_until <= ?1) \
                      OR (pending_until < 0 AND pending_until > ?3)) LIMIT ?2",
                args![now_ms, limit as i64, STALE_MARK_MS - now_ms],
                |r| {
                    Ok(BlockRef {
                        workspace: r.int(0)?,
                        hash: rows::to_hash(r.bytes(1)?)?,
                    })
                },
            )
        })
    }
    fn list_blocks(&self, after: Option<&BlockRef>, limit: usize) -> Result<Vec<BlockRef>> {
        let (ws, hash) = after.map_or((i64::MIN, &[][..]), |b| (b.workspace, &b.hash[..]));
        self.read(|c| {
            c.rows(
                "SELECT workspace, hash FROM blocks \
                 WHERE workspace > ?1 OR (workspace = ?1 AND hash > ?2) \
                 ORDER BY workspace, hash LIMIT ?3",
                args![ws, hash, limit as i64],
                |r| {
                    Ok(BlockRef {
                        workspace: r.int(0)?,
                        hash: rows::to_hash(r.bytes(1)?)?,
                    })
                },
            )
        })
    }
    fn block_owners(&self, hash: &BlockId) -> Result<Vec<WorkspaceId>> {
        self.read(|c| {
            c.rows(
                "SELECT workspace FROM blocks WHERE hash = ?1",
                args![&hash[..]],
                |r| r.int(0),
            )
        })
    }
    fn all_blocks(&self) -> Result<Vec<(BlockRef, i64)>> {
        self.read(|c| {
            c.rows("SELECT workspace, hash, refs FROM blocks", args![], |r| {
                let b = BlockRef {
                    workspace: r.int(0)?,
                    hash: rows::to_hash(r.bytes(1)?)?,
                };
                Ok((b, r.int(2)?))
            })
        })
    }
    fn block_users(&self, b: &BlockRef, limit: usize) -> Result<Vec<(String, String)>> {
        self.read_tx(|t| {
            let found = t.conn().rows(
                "SELECT i.ino, i.volume, coalesce(v.name, tr.name, '?') FROM chunks c \
                 JOIN inodes i ON i.ino = c.ino \
                 LEFT JOIN volumes v ON v.root = i.volume \
                 LEFT JOIN trash tr ON tr.root = i.volume \
                 WHERE c.hash = ?1 AND coalesce(v.workspace, tr.workspace) = ?2 LIMIT ?3",
                args![&b.hash[..], b.workspace, limit as i64],
                |r| Ok((r.int(0)? as Ino, r.int(1)? as Ino, r.text(2)?)),
            )?;
            let mut out = Vec::new();
            for (ino, vol, name) in found {
                let path = match tree::Tx::entry_of(t, ino)? {
                    Some((parent, n)) => tree::path_of(t, vol, parent, &n)?,
                    None => t
                        .conn()
                        .row(
                            "SELECT path FROM file_trash WHERE ino = ?1",
                            args![ino as i64],
                            |r| r.bytes(0),
                        )?
                        .unwrap_or_else(|| format!("(inode {ino}, unlinked)").into_bytes()),
                };
                out.push((name, format!("/{}", String::from_utf8_lossy(&path))));
            }
            Ok(out)
        })
    }
}
