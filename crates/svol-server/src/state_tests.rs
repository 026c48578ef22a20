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
