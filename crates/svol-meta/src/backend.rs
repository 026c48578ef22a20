use crate::lifetimes::*;
use crate::types::*;
use crate::Result;

/// A deletion of a block's bytes that has not finished this long after it
/// was marked is taken to have died with its reaper, and is started again.
/// Far longer than any block store request may take.
pub const STALE_MARK_MS: i64 = 10 * 60 * 1000;

/// Every metadata operation svol performs. Each method is one transaction:
/// it happens entirely or not at all, and concurrent callers (other
/// threads, other server processes on the same database) see it atomically.
///
/// File-system methods take the volume's root inode as `vol` and refuse
/// inodes of any other volume with `NotFound`.
pub trait MetaBackend: Send + Sync + 'static {
    // ---- workspaces and tokens ----
    /// Creates workspace `name`; `AlreadyExists` if taken.
    fn create_workspace(&self, name: &str) -> Result<Workspace>;
    fn workspace(&self, name: &str) -> Result<Workspace>;
    fn list_workspaces(&self) -> Result<Vec<Workspace>>;
    /// Stores a token by its hash (never the token itself).
    fn add_token(
        &self,
        ws: WorkspaceId,
        token_hash: &[u8; 32],
        label: &str,
        admin: bool,
    ) -> Result<TokenInfo>;
    /// What a (hashed) token may do; `PermissionDenied` if unknown or
    /// revoked.
    fn authenticate(&self, token_hash: &[u8; 32]) -> Result<Grant>;
    /// Tokens of `ws`, revoked ones included.
    fn list_tokens(&self, ws: WorkspaceId) -> Result<Vec<TokenInfo>>;
    /// Revokes a token of workspace `ws` (of any workspace if `ws` is
    /// `None`, which is how an admin caller asks); `NotFound` if there is no
    /// such token there. A caller limited to `ws` may not revoke an admin
    /// token (`PermissionDenied`): a worker's token cannot lock out the
    /// workspace's administrator.
    fn revoke_token(&self, ws: Option<WorkspaceId>, token: TokenRef<'_>) -> Result<TokenInfo>;

    // ---- apps ----
    /// A running app of kind `App`, idle since `now_ms`.
    fn create_app(&self, ws: WorkspaceId, name: &str, now_ms: i64) -> Result<App>;
    /// Apps of the workspace, newest first, stopped ones included.
    fn list_apps(&self, ws: WorkspaceId) -> Result<Vec<App>>;
    fn app(&self, ws: WorkspaceId, id: &str) -> Result<App>;
    /// Stops the app and deletes every volume it owns (for an app of kind
    /// `Volume`: its persisted volume). Stopping a stopped app is a no-op.
    /// Its volumes go as `retire` says (to the trash, or at once).
    fn stop_app(&self, ws: WorkspaceId, id: &str, retire: Retire) -> Result<Outcome<App>>;
    /// Stops every running app of kind `App` that no session holds (as its
    /// app or through one of its volumes) and
    /// whose last session ended (or that was created) before
    /// `now_ms - grace_ms`. Their volumes go to the trash for `keep_ms`
    /// (0: at once).
    fn stop_idle_apps(&self, now_ms: i64, grace_ms: i64, keep_ms: i64)
        -> Result<Outcome<Vec<App>>>;

    // ---- volumes ----
    /// A persisted, named volume (shown as an app of kind `Volume`).
    fn create_volume(&self, ws: WorkspaceId, name: &str, now: Timespec) -> Result<Volume>;
    /// An unnamed volume owned by running app `app`, deleted when it stops.
    fn create_ephemeral_volume(&self, ws: WorkspaceId, app: &str, now: Timespec) -> Result<Volume>;
    /// Names an ephemeral volume and makes it outlive its app.
    fn persist_volume(
        &self,
        ws: WorkspaceId,
        id: &str,
        name: &str,
        now: Timespec,
    ) -> Result<Volume>;
    fn list_volumes(&self, ws: WorkspaceId) -> Result<Vec<Volume>>;
    /// By name or public id, within the workspace only.
    fn volume(&self, ws: WorkspaceId, name_or_id: &str) -> Result<Volume>;
    fn rename_volume(&self, ws: WorkspaceId, name: &str, new_name: &str) -> Result<Volume>;
    /// Deletes the volume and its whole tree (and stops its own app).
    /// Deletes a volume (with its snapshots): to the trash, or at once.
    fn delete_volume(
        &self,
        ws: WorkspaceId,
        name_or_id: &str,
        retire: Retire,
    ) -> Result<Outcome<Volume>>;
    /// The workspace's trash, most recently deleted first.
    fn list_trash(&self, ws: WorkspaceId) -> Result<Vec<Trashed>>;
    /// Brings volume `id` back from the trash (with its snapshots) as a
    /// persisted volume called `name` (default: the name it had).
    fn restore_trashed(
        &self,
        ws: WorkspaceId,
        id: &str,
        name: Option<&str>,
        now: Timespec,
    ) -> Result<Volume>;
    /// Drops volumes from the trash now; returns their ids.
    fn purge_trash(&self, which: Purge<'_>) -> Result<Outcome<Vec<String>>>;
    fn volume_usage(&self, vol: Ino) -> Result<VolumeUsage>;
    /// How long volume `key` keeps files whose last name is removed, in
    /// ms (0: it does not).
    fn set_file_trash(&self, ws: WorkspaceId, key: &str, keep_ms: i64) -> Result<Volume>;
    /// The files of volume `vol`'s trash that `sel` picks, newest first.
    fn list_deleted_files(&self, vol: Ino, sel: &DeletedSelection<'_>) -> Result<Vec<DeletedFile>>;
    /// Gives files of volume `vol`'s trash their names back (of each path
    /// the newest deletion), at the paths they had or with `sel.path`
    /// replaced by `to`; missing directories are made. All or nothing:
    /// `AlreadyExists` if a path is taken. Returns (from, to) paths.
    fn restore_deleted_files(
        &self,
        vol: Ino,
        sel: &DeletedSelection<'_>,
        to: Option<&[u8]>,
        cx: &Cx<'_>,
    ) -> Result<Outcome<Restored>>;
    /// Drops files from volume `vol`'s trash now; returns how many.
    fn purge_deleted_files(&self, vol: Ino, sel: &DeletedSelection<'_>) -> Result<Outcome<usize>>;
    /// Drops a batch of files, of any volume, whose retention ended by
    /// `now_ms`; returns how many.
    fn purge_expired_files(&self, now_ms: i64) -> Result<Outcome<usize>>;
    /// Snapshot `snap` of volume `key`: a read-only volume `key@snap`
    /// holding its tree as of now, sharing its blocks (metadata only).
    fn snapshot_volume(
        &self,
        ws: WorkspaceId,
        key: &str,
        snap: &str,
        now: Timespec,
    ) -> Result<Volume>;
    /// The snapshots of volume `key`, oldest first.
    fn list_snapshots(&self, ws: WorkspaceId, key: &str) -> Result<Vec<Volume>>;
    /// Puts snapshot `snap`'s tree in place of volume `key`'s; `Busy` while
    /// a session (lease running at `now_ms`) is on the volume.
    fn restore_volume(
        &self,
        ws: WorkspaceId,
        key: &str,
        snap: &str,
        now_ms: i64,
    ) -> Result<Outcome<Volume>>;
    /// A new persisted volume `name` with a copy of volume or snapshot
    /// `from` (blocks shared).
    fn clone_volume(
        &self,
        ws: WorkspaceId,
        from: &str,
        name: &str,
        now: Timespec,
    ) -> Result<Volume>;
    /// Quotas of volume `vol` and its workspace, with their usage. With
    /// no limit on either, the bytes are not counted (`stored` is 0: a
    /// volume-wide sum is a scan, and nothing needs it then).
    fn quota_view(&self, vol: Ino) -> Result<QuotaView>;
    /// Whether any quota applies to volume `vol` (its own or its
    /// workspace's): one row, no counting.
    fn quota_limited(&self, vol: Ino) -> Result<bool>;
    /// Sets a volume's quotas (None: unchanged, 0: no limit).
    fn set_volume_quota(
        &self,
        ws: WorkspaceId,
        key: &str,
        max_bytes: Option<u64>,
        max_files: Option<u64>,
    ) -> Result<Volume>;
    /// Sets a workspace's quotas (None: unchanged, 0: no limit).
    fn set_workspace_quota(
        &self,
        name: &str,
        max_bytes: Option<u64>,
        max_files: Option<u64>,
    ) -> Result<Workspace>;
    /// What workspace `ws` holds: volumes, apps, files, bytes, sessions.
    fn workspace_usage(&self, ws: WorkspaceId) -> Result<WorkspaceUsage>;
    /// The live token whose hash is `hash`.
    fn token(&self, hash: &[u8; 32]) -> Result<TokenInfo>;
    /// Totals over the whole store (every workspace), for metrics.
    fn stats(&self) -> Result<StoreStats>;
    /// Gives the space of deleted rows back to the file system (after a
    /// volume or app is deleted), so deleting really frees disk.
    fn compact(&self) -> Result<()>;

    // ---- the tree ----
    // Every change takes a `Cx` (who and when: a mount's lease is checked
    // inside the change's transaction) and returns what it changed; the
    // change is in the feed when the call returns.
    fn lookup(&self, vol: Ino, parent: Ino, name: &[u8]) -> Result<Attr>;
    fn getattr(&self, vol: Ino, ino: Ino) -> Result<Attr>;
    /// The directory holding one of `ino`'s names (None: it has none).
    fn dir_of(&self, vol: Ino, ino: Ino) -> Result<Option<Ino>>;
    /// A size change is fenced: `cx.fence`, if set, must be a write lock
    /// the caller still holds on `ino`.
    fn setattr(&self, vol: Ino, ino: Ino, set: &SetAttr, cx: &Cx<'_>) -> Result<Outcome<Attr>>;
    /// Creates a node. With `exclusive` false an existing regular file of
    /// that name is returned (open with O_CREAT but without O_EXCL).
    fn create(
        &self,
        vol: Ino,
        parent: Ino,
        name: &[u8],
        node: &NewNode,
        exclusive: bool,
        cx: &Cx<'_>,
    ) -> Result<Outcome<Attr>>;
    fn link(
        &self,
        vol: Ino,
        ino: Ino,
        new_parent: Ino,
        new_name: &[u8],
        cx: &Cx<'_>,
    ) -> Result<Outcome<Attr>>;
    /// Removes a name (`directory` selects rmdir semantics). Returns the
    /// inode the name pointed at. An inode that loses its last name while a
    /// session has it open lives on until the last `release`.
    fn unlink(
        &self,
        vol: Ino,
        parent: Ino,
        name: &[u8],
        directory: bool,
        cx: &Cx<'_>,
    ) -> Result<Outcome<Ino>>;
    /// Returns the inode that was replaced, if any.
    #[allow(clippy::too_many_arguments)]
    fn rename(
        &self,
        vol: Ino,
        parent: Ino,
        name: &[u8],
        new_parent: Ino,
        new_name: &[u8],
        flags: RenameFlags,
        cx: &Cx<'_>,
    ) -> Result<Outcome<Option<Ino>>>;
    /// Entries after cookie `after` (0 = from the start), at most `limit`.
    fn readdir(&self, vol: Ino, dir: Ino, after: u64, limit: usize) -> Result<Vec<DirEntry>>;
    fn readlink(&self, vol: Ino, ino: Ino) -> Result<Vec<u8>>;
    /// Walks a `/`-separated path from the root (symlinks not followed).
    fn resolve(&self, vol: Ino, path: &str) -> Result<Attr>;
    /// Copies `src` (recursively) to a new name; data blocks are shared.
    fn copy(
        &self,
        vol: Ino,
        src: Ino,
        dst_parent: Ino,
        dst_name: &[u8],
        cx: &Cx<'_>,
    ) -> Result<Outcome<Attr>>;

    // ---- file contents ----
    /// Registers an open by `cx.session` (none for "") and returns the
    /// file's chunk map.
    fn open(&self, vol: Ino, ino: Ino, cx: &Cx<'_>) -> Result<(Attr, Vec<Chunk>)>;
    fn release(&self, vol: Ino, session: &str, ino: Ino) -> Result<Outcome<()>>;
    /// `create` and `open` of the new (or, not `exclusive`, the existing)
    /// file in one transaction: what every `open(O_CREAT)` does, at the
    /// cost of one write instead of two.
    fn create_open(
        &self,
        vol: Ino,
        parent: Ino,
        name: &[u8],
        node: &NewNode,
        exclusive: bool,
        cx: &Cx<'_>,
    ) -> Result<Outcome<(Attr, Vec<Chunk>)>>;
    /// `n` inode numbers for session `session` alone to create with
    /// (`apply`); numbers it never uses are simply never used. Its
    /// reservations end with it.
    fn reserve_inos(&self, session: &str, n: usize) -> Result<Vec<Ino>>;
    /// Applies what a mount of session `cx.session` did ahead of the
    /// server, in order, in one transaction: creates, each as the
    /// reserved inode it names, and commits and attribute changes, each
    /// at its own time. Each operation's own refusal (`AlreadyExists`, a
    /// number not reserved by the session, ...) is its result and the
    /// others still land; a failed lease or store fails them all.
    fn apply(&self, vol: Ino, ops: &[Queued], cx: &Cx<'_>) -> Result<Outcome<Vec<Result<Attr>>>>;
    /// `release` of several opens of `session` in one transaction (a
    /// client sends the closes it has collected together). An inode
    /// already gone is skipped.
    fn release_many(&self, vol: Ino, session: &str, inos: &[Ino]) -> Result<Outcome<()>>;
    fn chunks(&self, vol: Ino, ino: Ino) -> Result<Vec<Chunk>>;
    /// Replaces the given chunks, makes the file at least `write_end` long.
    /// Fails with `MissingBlock` if a referenced block is not registered,
    /// with `Fenced` if `cx.fence` is set and that write lock is gone.
    fn commit(
        &self,
        vol: Ino,
        ino: Ino,
        chunks: &[Chunk],
        write_end: u64,
        durable: bool,
        cx: &Cx<'_>,
    ) -> Result<Outcome<Attr>>;

    /// Makes every committed operation durable (an fsync of a directory,
    /// or of a file with nothing to commit).
    fn sync(&self) -> Result<()>;

    // ---- xattrs ----
    fn get_xattr(&self, vol: Ino, ino: Ino, name: &[u8]) -> Result<Vec<u8>>;
    fn set_xattr(
        &self,
        vol: Ino,
        ino: Ino,
        name: &[u8],
        value: &[u8],
        mode: XattrMode,
        cx: &Cx<'_>,
    ) -> Result<Outcome<()>>;
    fn list_xattr(&self, vol: Ino, ino: Ino) -> Result<Vec<Vec<u8>>>;
    fn remove_xattr(&self, vol: Ino, ino: Ino, name: &[u8], cx: &Cx<'_>) -> Result<Outcome<()>>;

    // ---- sessions ----
    /// Makes session `id` (chosen by the server, never by a client) on
    /// volume `vol` for `owner`, generation 1. The session keeps app `app`
    /// (public id; "" = the app owning the volume) alive; it must be a
    /// running app of the owner's workspace.
    fn open_session(
        &self,
        owner: &SessionOwner,
        id: &str,
        vol: Ino,
        app: &str,
        client: &SessionClient,
        expires_ms: i64,
    ) -> Result<Lease>;
    /// Sessions whose lease runs at `now_ms`: of workspace `ws`, or of
    /// every workspace with `None`. Oldest first.
    fn live_sessions(&self, ws: Option<WorkspaceId>, now_ms: i64) -> Result<Vec<LiveSession>>;
    /// Takes up a live session again (a reconnect): a new generation, so a
    /// stream of the old one can no longer renew it. `NotFound` once its
    /// lease ran out (it is never revived), `PermissionDenied` if it is
    /// another owner's or on another volume.
    fn resume_session(
        &self,
        owner: &SessionOwner,
        id: &str,
        vol: Ino,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<Lease>;
    /// The session `id` as stored; `NotFound` once it ended.
    fn session(&self, id: &str) -> Result<SessionInfo>;
    /// Extends the lease of generation `generation`; `Fenced` if the lease
    /// already ran out or a newer generation took the session over.
    fn renew_session(
        &self,
        id: &str,
        generation: u64,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<Lease>;
    /// Ends sessions whose lease ran out before `now_ms` (or this one, if
    /// given): their open files are released, their locks dropped (the
    /// change set and the feed name the files) and their apps' idle clocks
    /// start at `now_ms`.
    fn expire_sessions(&self, now_ms: i64, only: Option<&str>) -> Result<Outcome<Vec<String>>>;

    // ---- locks ----
    /// F_GETLK: the first lock that would block `want`.
    fn test_lock(&self, vol: Ino, ino: Ino, want: &LockRange) -> Result<Option<LockRange>>;
    /// Takes `want` if nothing held blocks it. `ticket` (from `queue_lock`)
    /// or `wait` also makes it yield to earlier waiters. The session's
    /// lease is checked in the same transaction.
    fn lock(
        &self,
        vol: Ino,
        ino: Ino,
        want: &LockRange,
        ticket: Option<u64>,
        wait: bool,
        cx: &Cx<'_>,
    ) -> Result<LockOutcome>;
    /// Joins the queue of waiters on `ino`; `NoLocks` when it is full.
    fn queue_lock(&self, vol: Ino, ino: Ino, want: &LockRange, cx: &Cx<'_>) -> Result<u64>;
    /// Leaves the queue (granted, or gave up); later waiters are woken.
    fn unqueue_lock(&self, vol: Ino, ticket: u64) -> Result<()>;
    /// Unlocks [start, end] of (session, owner)'s locks on `ino`. The value
    /// is the newest fencing token the session still holds on the file (0
    /// for none); waiters on the file are woken through the feed.
    #[allow(clippy::too_many_arguments)]
    fn unlock(
        &self,
        vol: Ino,
        ino: Ino,
        session: &str,
        owner: u64,
        start: u64,
        end: u64,
    ) -> Result<Outcome<u64>>;
    /// Forgets every queued waiter (their calls died with a server that
    /// was restarted; live ones queue again).
    fn clear_lock_queue(&self) -> Result<()>;

    // ---- change feed ----
    /// Entries after position `after`, at most `limit`.
    fn feed_since(&self, after: u64, limit: usize) -> Result<FeedPage>;
    /// The newest position.
    fn feed_head(&self) -> Result<u64>;
    /// Drops all but the newest `keep` entries.
    fn trim_feed(&self, keep: u64) -> Result<()>;

    // ---- block reference counts ----
    // Blocks belong to the workspace that uploaded them: a commit may only
    // reference blocks its own workspace registered, and nothing here ever
    // tells a workspace whether another one holds a hash.
    /// Blocks of `hashes` that workspace `ws` does not hold: the client must
    /// upload those.
    fn missing_blocks(&self, ws: WorkspaceId, hashes: &[BlockId]) -> Result<Vec<BlockId>>;
    /// Does workspace `ws` hold this block (and may so read it)?
    fn block_visible(&self, ws: WorkspaceId, hash: &BlockId) -> Result<bool>;
    // An upload is: `claim_block`, write the bytes, `register_block`. It
    // consults the metadata, never the block store (whose "already there"
    // may be bytes a reaper on another server is deleting right now).
    /// First step of an upload: a block `ws` already holds keeps its bytes
    /// at least until `until_ms` (no reaper may start deleting them while
    /// they are written again). `Stale` while the block is being deleted:
    /// wait until it is gone, then upload.
    fn claim_block(&self, block: &BlockRef, until_ms: i64) -> Result<()>;
    /// `Quota` if `block` is new to its workspace and `size` more bytes
    /// would take the workspace past its byte quota (a read: the check
    /// that counts is `register_block`'s).
    fn check_block_quota(&self, block: &BlockRef, size: u64) -> Result<()>;
    /// Last step of an upload, once its bytes are stored: records the block;
    /// it is kept unreferenced until `pending_until_ms` to give the
    /// uploader time to commit. `Stale` if it is being deleted.
    fn register_block(&self, block: &BlockRef, size: u64, pending_until_ms: i64) -> Result<()>;
    /// First step of deleting a block: if nothing references it and its
    /// grace is over, marks it as being deleted at `now_ms` (a commit can
    /// no longer reference it, an upload waits) and returns true: the
    /// caller must now delete its bytes, then call `drop_block` with the
    /// same time. A mark is given to one caller only, unless its deletion
    /// did not finish within [`STALE_MARK_MS`] (its reaper died): then the
    /// block is offered again by `expired_blocks` and marked anew.
    fn mark_block(&self, block: &BlockRef, now_ms: i64) -> Result<bool>;
    /// Last step of deleting a block: forgets it, if it still carries the
    /// mark made at `marked_ms`.
    fn drop_block(&self, block: &BlockRef, marked_ms: i64) -> Result<()>;
    /// Unreferenced blocks whose grace ended before `now_ms`, and marked
    /// ones whose deletion did not finish within [`STALE_MARK_MS`].
    fn expired_blocks(&self, now_ms: i64, limit: usize) -> Result<Vec<BlockRef>>;
    /// Every block held, in (workspace, hash) order, after `after` (for a
    /// copy of all block bytes to another store); at most `limit`.
    fn list_blocks(&self, after: Option<&BlockRef>, limit: usize) -> Result<Vec<BlockRef>>;
    /// Workspaces that hold a block of this hash (to move the blocks of the
    /// first on-disk layout, which was shared by all workspaces).
    fn block_owners(&self, hash: &BlockId) -> Result<Vec<WorkspaceId>>;
    /// Every block row: the block and how many chunks refer to it (0 or
    /// less: unreferenced, waiting for the reaper).
    fn all_blocks(&self) -> Result<Vec<(BlockRef, i64)>>;
    /// The files whose chunks name `block`: (volume name, path), at most
    /// `limit` of them (a file in a trash shows the path it had).
    fn block_users(&self, block: &BlockRef, limit: usize) -> Result<Vec<(String, String)>>;
}
