//! The server's state driven directly over a real SQLite store: leases,
//! lock release and app grace periods on a `ManualClock` (time moves by
//! assignment, not by sleeping), and the lock manager's waiting.

use std::sync::Arc;
use std::time::Duration;

use svol_blocks::BlockStore;
use svol_meta::{self as m, Cx, LockKind, LockOutcome, LockRange, MetaStore, SessionOwner};

use crate::clock::{Clock, ManualClock};
use crate::service::State;
use crate::ServerConfig;

fn state(dir: &std::path::Path, clock: Arc<ManualClock>) -> State {
    let meta = MetaStore::sqlite(&dir.join("meta.db")).expect("meta");
    let blocks = BlockStore::local(&dir.join("blocks")).expect("blocks");
    let mut cfg = ServerConfig::new(dir.to_path_buf(), "127.0.0.1:0".parse().expect("addr"));
    cfg.clock = clock;
    cfg.lease = Duration::from_secs(2);
    cfg.app_grace = Duration::from_secs(10);
    State::new(meta, blocks, &cfg).expect("state")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_ends_on_the_clock_with_its_locks_and_then_its_app() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(1_000_000));
    let st = state(dir.path(), clock.clone());
    let m = st.meta.clone();
    let ws = m.create_workspace("w").expect("workspace").id;
    let app = m.create_app(ws, "job", clock.now_ms()).expect("app");
    let vol = m
        .create_ephemeral_volume(ws, &app.id, clock.now())
        .expect("volume");
    let owner = SessionOwner {
        workspace: ws,
        token: [1; 32],
    };
    m.open_session(
        &owner,
        "se-1",
        vol.root,
        &app.id,
        &svol_meta::SessionClient::default(),
        clock.now_ms() + 2_000,
    )
    .expect("session");
    let cx = Cx::by(clock.now(), "se-1");
    let f = m
        .create(vol.root, vol.root, b"f", &file(), true, &cx)
        .expect("create")
        .value;
    let want = LockRange {
        session: "se-1".into(),
        owner: 7,
        kind: LockKind::Write,
        start: 0,
        end: u64::MAX,
        pid: 1,
    };
    let granted = m
        .lock(vol.root, f.ino, &want, None, false, &cx)
        .expect("lock");
    assert!(matches!(granted, LockOutcome::Granted { .. }));
    let other = LockRange {
        session: "se-2".into(),
        ..want.clone()
    };

    // Just inside the lease: nothing ends.
    clock.advance(1_999);
    st.expire_sessions().await;
    assert!(m.session("se-1").is_ok());
    assert!(m
        .test_lock(vol.root, f.ino, &other)
        .expect("test")
        .is_some());
    // Past it: the session, and with it the lock, are gone.
    clock.advance(2);
    st.expire_sessions().await;
    assert!(matches!(m.session("se-1"), Err(m::MetaError::NotFound(_))));
    assert!(m
        .test_lock(vol.root, f.ino, &other)
        .expect("test")
        .is_none());
    // The app's grace runs from the end of its last session.
    clock.advance(9_999);
    st.stop_idle_apps().await;
    assert_eq!(m.app(ws, &app.id).expect("app").state, m::AppState::Running);
    clock.advance(2);
    st.stop_idle_apps().await;
    assert_eq!(m.app(ws, &app.id).expect("app").state, m::AppState::Stopped);
    assert!(m.volume(ws, &vol.id).is_err(), "its volume went with it");
}

fn file() -> m::NewNode {
    m::NewNode {
        kind: m::FileKind::Regular,
        mode: 0o644,
        uid: 0,
        gid: 0,
        rdev: 0,
        target: vec![],
    }
}

/// The lock manager over the store: a waiter wakes when the holder lets
/// go (through the change it publishes, no polling), and one whose call
/// was abandoned leaves the queue instead of blocking those behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_wake_on_release_and_an_abandoned_wait_leaves_the_queue() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(1_000_000));
    let st = state(dir.path(), clock.clone());
    let m = st.meta.clone();
    let ws = m.create_workspace("w").expect("workspace").id;
    let vol = m.create_volume(ws, "v", clock.now()).expect("volume");
    let owner = SessionOwner {
        workspace: ws,
        token: [1; 32],
    };
    for id in ["se-a", "se-b", "se-c"] {
        m.open_session(
            &owner,
            id,
            vol.root,
            "",
            &svol_meta::SessionClient::default(),
            clock.now_ms() + 60_000,
        )
        .expect("session");
    }
    let f = m
        .create(
            vol.root,
            vol.root,
            b"f",
            &file(),
            true,
            &Cx::at(clock.now()),
        )
        .expect("create")
        .value;
    let want = |session: &str| LockRange {
        session: session.into(),
        owner: 1,
        kind: LockKind::Write,
        start: 0,
        end: u64::MAX,
        pid: 1,
    };
    let held = st
        .locks
        .acquire(vol.root, f.ino, &want("se-a"), false)
        .await
        .expect("a");
    assert!(matches!(held, LockOutcome::Granted { .. }));
    // B queues, then gives up (its client went away).
    let (locks, root, ino) = (st.locks.clone(), vol.root, f.ino);
    let b = tokio::spawn(async move { locks.acquire(root, ino, &want("se-b"), true).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!b.is_finished(), "B waits while A holds the lock");
    b.abort();
    let _ = b.await;
    // C queues behind; A lets go: C (not the departed B) gets the lock.
    let (locks, root, ino) = (st.locks.clone(), vol.root, f.ino);
    let c = tokio::spawn(async move { locks.acquire(root, ino, &want("se-c"), true).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!c.is_finished());
    let out = st
        .locks
        .release(vol.root, f.ino, "se-a", 1, 0, u64::MAX)
        .expect("unlock");
    let _ = st.publish("se-a", &out.changes);
    let got = tokio::time::timeout(Duration::from_secs(5), c)
        .await
        .expect("C woke up")
        .expect("task")
        .expect("lock");
    assert!(matches!(got, LockOutcome::Granted { .. }), "{got:?}");
}

fn block_files(dir: &std::path::Path) -> u64 {
    let mut n = 0;
    let mut todo = vec![dir.join("blocks")];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => todo.push(e.path()),
                Ok(_) => n += e.metadata().map(|m| m.len()).unwrap_or(0),
                Err(_) => {}
            }
        }
    }
    n
}

/// Stores `data` as a block of workspace `ws` and makes it the one chunk
/// of a new file `f` at the root of `vol`, as an upload and commit would.
async fn write_file_f(
    st: &State,
    clock: &ManualClock,
    ws: m::WorkspaceId,
    vol: &m::Volume,
    data: bytes::Bytes,
    hash: svol_blocks::BlockHash,
) {
    let len = data.len() as u32;
    st.blocks
        .put(svol_blocks::BlockKey::new(ws as u64, hash), data)
        .await
        .expect("put");
    let b = m::BlockRef {
        workspace: ws,
        hash: hash.0,
    };
    st.meta
        .register_block(&b, u64::from(len), clock.now_ms() + 1_000)
        .expect("register");
    let cx = Cx::at(clock.now());
    let f = st
        .meta
        .create(vol.root, vol.root, b"f", &file(), true, &cx)
        .expect("create")
        .value;
    let chunk = m::Chunk {
        index: 0,
        len,
        data: m::ChunkData::Block(hash.0),
    };
    st.meta
        .commit(vol.root, f.ino, &[chunk], u64::from(len), false, &cx)
        .expect("commit");
}

/// A deleted volume waits in the trash for the retention, measured on the
/// server's clock: restorable until then, its block files on disk; once
/// the clock passes it, the reaper drops it and the data dir shrinks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_volume_is_kept_for_the_retention_then_its_space_is_freed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(1_000_000));
    let meta = MetaStore::sqlite(&dir.path().join("meta.db")).expect("meta");
    let blocks = BlockStore::local(&dir.path().join("blocks")).expect("blocks");
    let mut cfg = ServerConfig::new(
        dir.path().to_path_buf(),
        "127.0.0.1:0".parse().expect("addr"),
    );
    cfg.clock = clock.clone();
    cfg.trash_retention = Duration::from_secs(3600);
    let st = State::new(meta, blocks, &cfg).expect("state");
    let m = st.meta.clone();
    let ws = m.create_workspace("w").expect("workspace").id;
    let make = |name: &str, seed: u8| {
        let vol = m.create_volume(ws, name, clock.now()).expect("volume");
        let data = bytes::Bytes::from(vec![seed; 3 << 20]);
        let hash = svol_blocks::BlockHash::of(&data);
        (vol, data, hash)
    };
    let mut volumes = Vec::new();
    for (name, seed) in [("kept", 1u8), ("purged", 2)] {
        let (vol, data, hash) = make(name, seed);
        write_file_f(&st, clock.as_ref(), ws, &vol, data, hash).await;
        volumes.push(vol);
    }
    let full = block_files(dir.path());
    assert!(full >= 6 << 20);

    for v in &volumes {
        let out = m.delete_volume(ws, &v.name, st.retire()).expect("delete");
        assert!(out.changes.freed.is_empty(), "kept, not freed");
    }
    assert!(m.volume(ws, "kept").is_err(), "gone from the volumes");
    let trash = m.list_trash(ws).expect("trash");
    assert_eq!(trash.len(), 2);
    assert!(trash
        .iter()
        .all(|t| t.purge_ms == clock.now_ms() + 3_600_000));
    // Purged early by hand: that one's space comes back at once.
    let purged = volumes[1].id.clone();
    let out = m.purge_trash(m::Purge::One(ws, &purged)).expect("purge");
    assert_eq!(out.value, vec![purged]);
    for b in out.changes.freed {
        st.reap_one(b).await;
    }
    assert_eq!(block_files(dir.path()), full - (3 << 20));

    // Just inside the retention: the reaper keeps it.
    clock.advance(3_600_000 - 1);
    st.purge_expired_trash().await;
    assert_eq!(m.list_trash(ws).expect("trash").len(), 1);
    // Restored, it is a volume again with its data; deleted again, it
    // goes back to the trash for a new retention.
    let back = m
        .restore_trashed(ws, &volumes[0].id, Some("again"), clock.now())
        .expect("restore");
    assert_eq!(back.name, "again");
    let f = m.lookup(back.root, back.root, b"f").expect("its file");
    assert_eq!(f.size, 3 << 20);
    m.delete_volume(ws, "again", st.retire())
        .expect("delete again");
    clock.advance(3_600_000 - 1);
    st.purge_expired_trash().await;
    assert_eq!(block_files(dir.path()), full - (3 << 20), "still kept");
    // Past it: dropped, and the data dir shrinks.
    clock.advance(2);
    st.purge_expired_trash().await;
    assert!(m.list_trash(ws).expect("trash").is_empty());
    let t0 = std::time::Instant::now();
    while block_files(dir.path()) > full - (6 << 20) {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "block files not deleted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A file removed from a volume with a file trash keeps its blocks for the
/// volume's retention, on the server's clock; once the clock passes it,
/// the leader's purge drops it and its block file goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_file_is_kept_for_its_volumes_retention_then_freed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(1_000_000));
    let meta = MetaStore::sqlite(&dir.path().join("meta.db")).expect("meta");
    let blocks = BlockStore::local(&dir.path().join("blocks")).expect("blocks");
    let mut cfg = ServerConfig::new(
        dir.path().to_path_buf(),
        "127.0.0.1:0".parse().expect("addr"),
    );
    cfg.clock = clock.clone();
    let st = State::new(meta, blocks, &cfg).expect("state");
    let m = st.meta.clone();
    let ws = m.create_workspace("w").expect("workspace").id;
    let vol = m.create_volume(ws, "v", clock.now()).expect("volume");
    m.set_file_trash(ws, "v", 3_600_000).expect("trash");
    let data = bytes::Bytes::from(vec![7u8; 3 << 20]);
    let hash = svol_blocks::BlockHash::of(&data);
    write_file_f(&st, clock.as_ref(), ws, &vol, data, hash).await;
    let full = block_files(dir.path());
    assert!(full >= 3 << 20);

    let out = m
        .unlink(vol.root, vol.root, b"f", false, &Cx::at(clock.now()))
        .expect("unlink");
    assert!(out.changes.freed.is_empty(), "kept, not freed");
    clock.advance(3_600_000 - 1);
    st.purge_expired_files().await;
    let all = m::DeletedSelection::default();
    assert_eq!(m.list_deleted_files(vol.root, &all).expect("list").len(), 1);
    assert_eq!(block_files(dir.path()), full, "still kept");
    clock.advance(1);
    st.purge_expired_files().await;
    assert!(m
        .list_deleted_files(vol.root, &all)
        .expect("list")
        .is_empty());
    let t0 = std::time::Instant::now();
    while block_files(dir.path()) > full - (3 << 20) {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "block file not deleted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
