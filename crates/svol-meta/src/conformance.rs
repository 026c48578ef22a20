//! The `MetaStore` conformance suite (feature `conformance`). Every
//! backend runs every case here: a backend's test file invokes
//! [`meta_conformance!`](crate::meta_conformance) with an expression that
//! makes a fresh, empty store, and gets one `#[test]` per case.
//!
//! Cases panic on failure (they are tests); they call only the public API.
#![allow(clippy::unwrap_used, clippy::too_many_lines)]

use crate::*;

pub fn now() -> Timespec {
    Timespec::now()
}

/// A change by a one-shot client, now.
pub fn cx() -> Cx<'static> {
    Cx::at(now())
}

pub fn file(mode: u32) -> NewNode {
    NewNode {
        kind: FileKind::Regular,
        mode,
        uid: 1,
        gid: 2,
        rdev: 0,
        target: vec![],
    }
}

fn dir(mode: u32) -> NewNode {
    NewNode {
        kind: FileKind::Directory,
        ..file(mode)
    }
}

/// A block uploaded by workspace `ws`.
fn block(store: &MetaStore, ws: WorkspaceId, n: u8) -> BlockId {
    let h = [n; 32];
    store.register_block(&bref(ws, h), 100, 0).unwrap();
    h
}

/// A session owner: workspace `ws` through a token made from its id.
fn owner(ws: WorkspaceId) -> SessionOwner {
    SessionOwner {
        workspace: ws,
        token: [ws as u8; 32],
    }
}

fn bref(workspace: WorkspaceId, hash: BlockId) -> BlockRef {
    BlockRef { workspace, hash }
}

/// The reaper's deletion of a block: mark, (delete the bytes), drop.
fn reap(s: &MetaStore, b: BlockRef, now_ms: i64) -> bool {
    let marked = s.mark_block(&b, now_ms).unwrap();
    if marked {
        s.drop_block(&b, now_ms).unwrap();
    }
    marked
}

fn chunk(index: u64, h: BlockId, len: u32) -> Chunk {
    Chunk {
        index,
        len,
        data: ChunkData::Block(h),
    }
}

pub fn setup(store: &MetaStore, ws_name: &str) -> (WorkspaceId, Ino) {
    let ws = store.create_workspace(ws_name).unwrap();
    let v = store.create_volume(ws.id, "vol", now()).unwrap();
    (ws.id, v.root)
}

pub fn tokens_and_volumes(s: &MetaStore) {
    let ws = s.create_workspace("w1").unwrap();
    let other = s.create_workspace("w2").unwrap();
    assert!(matches!(
        s.create_workspace("w1"),
        Err(MetaError::AlreadyExists(_))
    ));
    let t = s.add_token(ws.id, &[1; 32], "admin", true).unwrap();
    assert!(t.id.starts_with("tk-"));
    let u = s.add_token(ws.id, &[3; 32], "user", false).unwrap();
    assert_eq!(
        s.authenticate(&[1; 32]).unwrap(),
        Grant {
            workspace: ws.id,
            admin: true
        }
    );
    assert!(!s.authenticate(&[3; 32]).unwrap().admin);
    assert!(matches!(
        s.authenticate(&[2; 32]),
        Err(MetaError::PermissionDenied(_))
    ));
    assert!(
        matches!(
            s.revoke_token(Some(other.id), TokenRef::Hash(&[1; 32])),
            Err(MetaError::NotFound(_))
        ),
        "foreign workspace cannot revoke"
    );
    assert!(s.revoke_token(Some(other.id), TokenRef::Id(&u.id)).is_err());
    assert!(
        matches!(
            s.revoke_token(Some(ws.id), TokenRef::Hash(&[1; 32])),
            Err(MetaError::PermissionDenied(_))
        ),
        "a non-admin caller cannot revoke the admin token"
    );
    assert!(s.authenticate(&[1; 32]).unwrap().admin);
    s.revoke_token(None, TokenRef::Hash(&[1; 32])).unwrap();
    assert!(matches!(
        s.authenticate(&[1; 32]),
        Err(MetaError::PermissionDenied(_))
    ));
    assert!(s.revoke_token(None, TokenRef::Id(&u.id)).unwrap().revoked);
    assert!(s.authenticate(&[3; 32]).is_err());
    let listed = s.list_tokens(ws.id).unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|t| t.revoked));
    assert!(s.list_tokens(other.id).unwrap().is_empty());
    let names: Vec<_> = s
        .list_workspaces()
        .unwrap()
        .into_iter()
        .map(|w| w.name)
        .collect();
    assert_eq!(names, ["w1", "w2"]);

    for bad in ["", "a/b", "..", "x y", &"n".repeat(65)] {
        assert!(
            matches!(
                s.create_volume(ws.id, bad, now()),
                Err(MetaError::InvalidArgument(_))
            ),
            "{bad:?}"
        );
    }
    let v = s.create_volume(ws.id, "data", now()).unwrap();
    assert!(v.id.starts_with("vo-"));
    assert!(matches!(
        s.create_volume(ws.id, "data", now()),
        Err(MetaError::AlreadyExists(_))
    ));
    s.create_volume(other.id, "data", now()).unwrap();
    assert_eq!(s.volume(ws.id, &v.id).unwrap(), v);
    assert_eq!(s.volume(ws.id, "data").unwrap(), v);
    assert!(matches!(
        s.volume(other.id, &v.id),
        Err(MetaError::NotFound(_))
    ));
    let r = s.rename_volume(ws.id, "data", "data2").unwrap();
    assert_eq!(r.root, v.root);
    assert_eq!(s.list_volumes(ws.id).unwrap().len(), 1);
    // another workspace's inode is invisible through this volume
    let v2 = s.create_volume(other.id, "x", now()).unwrap();
    assert!(matches!(
        s.getattr(v.root, v2.root),
        Err(MetaError::NotFound(_))
    ));
    let gone = s.delete_volume(ws.id, "data2", Retire::NOW).unwrap();
    assert_eq!(gone.value.root, v.root);
    assert!(s.volume(ws.id, "data2").is_err());
    s.create_volume(ws.id, "data2", now()).unwrap();
}

pub fn apps_and_lifetimes(s: &MetaStore) {
    let ws = s.create_workspace("w").unwrap().id;
    let other = s.create_workspace("x").unwrap().id;
    // a persisted volume is shown as an app of kind Volume
    let named = s.create_volume(ws, "named", now()).unwrap();
    assert!(!named.ephemeral && named.app.starts_with("ap-"));
    let va = s.app(ws, &named.app).unwrap();
    assert_eq!(
        (va.kind, va.state, va.name.as_str()),
        (AppKind::Volume, AppState::Running, "named")
    );
    assert_eq!(va.volumes, vec![named.id.clone()]);

    // ephemeral volumes live in a running app of the same workspace
    let app = s.create_app(ws, "job", 1_000).unwrap();
    assert_eq!((app.kind, app.state), (AppKind::App, AppState::Running));
    assert!(matches!(
        s.create_ephemeral_volume(other, &app.id, now()),
        Err(MetaError::NotFound(_))
    ));
    let e1 = s.create_ephemeral_volume(ws, &app.id, now()).unwrap();
    let e2 = s.create_ephemeral_volume(ws, &app.id, now()).unwrap();
    assert!(e1.ephemeral && e1.app == app.id && e1.name == e1.id);
    assert_eq!(s.app(ws, &app.id).unwrap().volumes.len(), 2);
    let f = s
        .create(e1.root, e1.root, b"f", &file(0o644), true, &cx())
        .unwrap()
        .value;
    let h = block(s, ws, 9);
    s.commit(e1.root, f.ino, &[chunk(0, h, 10)], 10, false, &cx())
        .unwrap();
    assert!(matches!(
        s.rename_volume(ws, &e2.id, "nope"),
        Err(MetaError::InvalidArgument(_))
    ));

    // persist: named, its own app, outlives the first app
    assert!(matches!(
        s.persist_volume(ws, &e2.id, "named", now()),
        Err(MetaError::AlreadyExists(_))
    ));
    assert!(s.persist_volume(other, &e2.id, "kept", now()).is_err());
    let kept = s.persist_volume(ws, &e2.id, "kept", now()).unwrap();
    assert!(!kept.ephemeral && kept.name == "kept" && kept.app != app.id);
    assert_eq!(s.volume(ws, "kept").unwrap().root, e2.root);

    // stopping the app deletes its ephemeral volume and frees the blocks
    assert!(matches!(
        s.stop_app(other, &app.id, Retire::NOW),
        Err(MetaError::NotFound(_))
    ));
    let out = s.stop_app(ws, &app.id, Retire::NOW).unwrap();
    assert_eq!(out.value.state, AppState::Stopped);
    assert!(out.value.volumes.is_empty());
    assert_eq!(out.changes.freed, vec![bref(ws, h)]);
    assert!(s.volume(ws, &e1.id).is_err());
    assert!(s.volume(ws, "kept").is_ok());
    assert!(matches!(
        s.create_ephemeral_volume(ws, &app.id, now()),
        Err(MetaError::Stale(_))
    ));
    assert!(s.stop_app(ws, &app.id, Retire::NOW).is_ok(), "idempotent");

    // stopping a volume's app deletes the volume, like volume delete
    s.stop_app(ws, &kept.app, Retire::NOW).unwrap();
    assert!(s.volume(ws, "kept").is_err());
    s.delete_volume(ws, "named", Retire::NOW).unwrap();
    assert_eq!(s.app(ws, &named.app).unwrap().state, AppState::Stopped);
    s.create_volume(ws, "named", now()).unwrap();

    // idle apps stop after the grace period unless a session holds them
    let idle = s.create_app(ws, "idle", 10_000).unwrap();
    let held = s.create_app(ws, "held", 10_000).unwrap();
    let hv = s.create_ephemeral_volume(ws, &held.id, now()).unwrap();
    s.open_session(
        &owner(ws),
        "se-h",
        hv.root,
        "",
        &SessionClient::default(),
        20_000,
    )
    .unwrap();
    // A session id is made once; a reconnect resumes it (same token only).
    assert!(matches!(
        s.open_session(
            &owner(ws),
            "se-h",
            hv.root,
            "",
            &SessionClient::default(),
            20_000
        ),
        Err(MetaError::AlreadyExists(_))
    ));
    let thief = SessionOwner {
        workspace: ws,
        token: [0xee; 32],
    };
    assert!(matches!(
        s.resume_session(&thief, "se-h", hv.root, 10_000, 90_000),
        Err(MetaError::PermissionDenied(_))
    ));
    assert!(matches!(
        s.resume_session(&owner(ws), "se-h", named.root, 10_000, 90_000),
        Err(MetaError::PermissionDenied(_))
    ));
    let info = s.session("se-h").unwrap();
    assert_eq!(
        (info.owner, info.volume, info.expires_ms, info.generation),
        (owner(ws), hv.root, 20_000, 1)
    );
    assert!(matches!(s.session("se-none"), Err(MetaError::NotFound(_))));
    assert!(matches!(
        s.open_session(
            &owner(other),
            "se-x",
            hv.root,
            &held.id,
            &SessionClient::default(),
            20_000
        ),
        Err(MetaError::NotFound(_))
    ));
    let early = s.stop_idle_apps(10_500, 1_000, 0).unwrap();
    assert!(early.value.is_empty());
    let stopped = s.stop_idle_apps(15_000, 1_000, 0).unwrap();
    let ids: Vec<_> = stopped.value.iter().map(|a| a.id.clone()).collect();
    assert_eq!(
        ids,
        vec![idle.id.clone()],
        "held app and volume apps keep running"
    );
    // the session ends at 21 000: the grace runs from then
    s.expire_sessions(21_000, None).unwrap();
    assert!(s.stop_idle_apps(21_500, 1_000, 0).unwrap().value.is_empty());
    let late = s.stop_idle_apps(22_500, 1_000, 0).unwrap();
    assert_eq!(late.value.len(), 1);
    assert_eq!(late.value[0].id, held.id);
    assert!(s.volume(ws, &hv.id).is_err());
    assert!(matches!(
        s.open_session(
            &owner(ws),
            "se-y",
            hv.root,
            &held.id,
            &SessionClient::default(),
            30_000
        ),
        Err(MetaError::Stale(_))
    ));
    let listed: Vec<_> = s.list_apps(ws).unwrap().into_iter().map(|a| a.id).collect();
    assert!(listed.contains(&held.id) && listed.contains(&idle.id));
    assert!(s.list_apps(other).unwrap().is_empty());
}

pub fn create_lookup_and_exclusive(s: &MetaStore) {
    let (_, vol) = setup(s, "c");
    let a = s
        .create(vol, vol, b"f", &file(0o644), true, &cx())
        .unwrap()
        .value;
    assert_eq!(
        (a.kind, a.mode, a.nlink, a.size, a.uid, a.gid),
        (FileKind::Regular, 0o644, 1, 0, 1, 2)
    );
    assert_eq!(s.lookup(vol, vol, b"f").unwrap(), a);
    assert!(matches!(
        s.create(vol, vol, b"f", &file(0o644), true, &cx()),
        Err(MetaError::AlreadyExists(_))
    ));
    // O_CREAT without O_EXCL returns the existing file
    assert_eq!(
        s.create(vol, vol, b"f", &file(0o600), false, &cx())
            .unwrap()
            .value
            .ino,
        a.ino
    );
    assert!(matches!(
        s.create(vol, vol, b"f", &dir(0o755), false, &cx()),
        Err(MetaError::AlreadyExists(_))
    ));
    assert!(matches!(
        s.lookup(vol, vol, b"nope"),
        Err(MetaError::NotFound(_))
    ));
    for bad in [&b""[..], b".", b"..", b"a/b", b"a\0b"] {
        assert!(matches!(
            s.create(vol, vol, bad, &file(0o644), true, &cx()),
            Err(MetaError::InvalidArgument(_))
        ));
    }
    assert!(matches!(
        s.create(vol, vol, &[b'x'; 256], &file(0o644), true, &cx()),
        Err(MetaError::NameTooLong)
    ));
    assert!(matches!(
        s.create(vol, a.ino, b"x", &file(0o644), true, &cx()),
        Err(MetaError::NotDirectory)
    ));

    let d = s
        .create(vol, vol, b"d", &dir(0o2775), true, &cx())
        .unwrap()
        .value;
    assert_eq!(d.nlink, 2);
    assert_eq!(s.getattr(vol, vol).unwrap().nlink, 3);
    // setgid directories pass their group and the bit on
    let sub = s
        .create(
            vol,
            d.ino,
            b"sub",
            &NewNode {
                gid: 99,
                ..dir(0o755)
            },
            true,
            &cx(),
        )
        .unwrap()
        .value;
    assert_eq!((sub.gid, sub.mode & 0o2000), (d.gid, 0o2000));
    let l = s
        .create(
            vol,
            vol,
            b"l",
            &NewNode {
                kind: FileKind::Symlink,
                target: b"f".to_vec(),
                ..file(0o777)
            },
            true,
            &cx(),
        )
        .unwrap()
        .value;
    assert_eq!(l.size, 1);
    assert_eq!(s.readlink(vol, l.ino).unwrap(), b"f");
    assert_eq!(s.resolve(vol, "/d/sub").unwrap().ino, sub.ino);
    assert_eq!(s.resolve(vol, "").unwrap().ino, vol);
    assert!(matches!(
        s.resolve(vol, "/d/../f"),
        Err(MetaError::InvalidArgument(_))
    ));
}

pub fn unlink_rmdir_and_links(s: &MetaStore) {
    let (_, vol) = setup(s, "u");
    let f = s
        .create(vol, vol, b"f", &file(0o644), true, &cx())
        .unwrap()
        .value;
    let d = s
        .create(vol, vol, b"d", &dir(0o755), true, &cx())
        .unwrap()
        .value;
    let l = s.link(vol, f.ino, d.ino, b"f2", &cx()).unwrap().value;
    assert_eq!(l.nlink, 2);
    assert!(matches!(
        s.link(vol, d.ino, vol, b"dl", &cx()),
        Err(MetaError::PermissionDenied(_))
    ));
    assert!(matches!(
        s.link(vol, f.ino, vol, b"d", &cx()),
        Err(MetaError::AlreadyExists(_))
    ));
    assert!(matches!(
        s.unlink(vol, vol, b"d", false, &cx()),
        Err(MetaError::IsDirectory)
    ));
    assert!(matches!(
        s.unlink(vol, vol, b"f", true, &cx()),
        Err(MetaError::NotDirectory)
    ));
    assert!(matches!(
        s.unlink(vol, vol, b"d", true, &cx()),
        Err(MetaError::NotEmpty)
    ));
    s.unlink(vol, vol, b"f", false, &cx()).unwrap();
    assert_eq!(s.getattr(vol, f.ino).unwrap().nlink, 1);
    s.unlink(vol, d.ino, b"f2", false, &cx()).unwrap();
    assert!(
        s.getattr(vol, f.ino).is_err(),
        "inode gone with its last name"
    );
    s.unlink(vol, vol, b"d", true, &cx()).unwrap();
    assert_eq!(s.getattr(vol, vol).unwrap().nlink, 2);
    assert!(matches!(
        s.unlink(vol, vol, b"d", true, &cx()),
        Err(MetaError::NotFound(_))
    ));
}

pub fn unlinked_but_open(s: &MetaStore) {
    let (ws, vol) = setup(s, "o");
    s.open_session(
        &owner(ws),
        "se-1",
        vol,
        "",
        &SessionClient::default(),
        i64::MAX,
    )
    .unwrap();
    let f = s
        .create(vol, vol, b"f", &file(0o644), true, &cx())
        .unwrap()
        .value;
    let h = block(s, ws, 7);
    s.commit(vol, f.ino, &[chunk(0, h, 100)], 100, false, &cx())
        .unwrap();
    s.open(vol, f.ino, &Cx::by(now(), "se-1")).unwrap();
    let out = s.unlink(vol, vol, b"f", false, &cx()).unwrap();
    assert!(out.changes.freed.is_empty());
    let (a, ch) = s.open(vol, f.ino, &cx()).unwrap();
    assert_eq!((a.nlink, a.size, ch.len()), (0, 100, 1));
    let out = s.release(vol, "se-1", f.ino).unwrap();
    assert_eq!(out.changes.freed, vec![bref(ws, h)]);
    assert!(s.getattr(vol, f.ino).is_err());
    // a session that dies releases what it held open
    let g = s
        .create(vol, vol, b"g", &file(0o644), true, &cx())
        .unwrap()
        .value;
    s.open_session(&owner(ws), "se-2", vol, "", &SessionClient::default(), 10)
        .unwrap();
    s.open(vol, g.ino, &at_ms(5, "se-2")).unwrap();
    s.unlink(vol, vol, b"g", false, &cx()).unwrap();
    assert!(s.getattr(vol, g.ino).is_ok());
    let ended = s.expire_sessions(11, None).unwrap();
    assert_eq!(ended.value, vec!["se-2".to_string()]);
    assert!(s.getattr(vol, g.ino).is_err());
}

/// Creates made ahead by a mount: reserved numbers, one transaction,
/// each create's own refusal its own.
pub fn queued_creates(s: &MetaStore) {
    let (ws, vol) = setup(s, "q");
    s.open_session(
        &owner(ws),
        "se-q",
        vol,
        "",
        &SessionClient::default(),
        i64::MAX,
    )
    .unwrap();
    s.open_session(
        &owner(ws),
        "se-r",
        vol,
        "",
        &SessionClient::default(),
        i64::MAX,
    )
    .unwrap();
    let mine = s.reserve_inos("se-q", 4).unwrap();
    let theirs = s.reserve_inos("se-r", 2).unwrap();
    assert_eq!(mine.len(), 4);
    assert_eq!(theirs.len(), 2);
    // A plain create never takes a reserved number.
    let plain = s
        .create(vol, vol, b"plain", &file(0o644), true, &cx())
        .unwrap()
        .value;
    for i in mine.iter().chain(&theirs) {
        assert_ne!(plain.ino, *i);
    }
    let mut all: Vec<Ino> = mine.iter().chain(&theirs).copied().collect();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 6, "reservations overlap: {mine:?} {theirs:?}");
    let at = Timespec {
        sec: 1_700_000_000,
        nsec: 5,
    };
    let op_at = |parent: Ino, name: &[u8], node: NewNode, ino: Ino, open: bool, now| {
        Queued::Create(QueuedCreate {
            parent,
            name: name.to_vec(),
            node,
            ino,
            now,
            open,
        })
    };
    let op = |parent, name: &[u8], node, ino, open| op_at(parent, name, node, ino, open, at);
    let refused = |r: &Result<Attr>| matches!(r, Err(MetaError::InvalidArgument(_)));
    let by = Cx::by(now(), "se-q");
    let ops = vec![
        op(vol, b"d", dir(0o755), mine[0], false),
        op(mine[0], b"f", file(0o600), mine[1], true),
        // Refused, each on its own: a taken name, another session's
        // number, a number used twice.
        op(vol, b"plain", file(0o644), mine[2], false),
        op(vol, b"stolen", file(0o644), theirs[0], false),
        op(vol, b"twice", file(0o644), mine[1], false),
        op(vol, b"last", file(0o644), mine[3], false),
    ];
    let out = s.apply(vol, &ops, &by).unwrap();
    let r = &out.value;
    assert_eq!(r.len(), 6);
    let d = r[0].as_ref().unwrap();
    assert_eq!(
        (d.ino, d.kind, d.nlink, d.mtime),
        (mine[0], FileKind::Directory, 2, at)
    );
    let f = r[1].as_ref().unwrap();
    assert_eq!((f.ino, f.mode & 0o7777, f.ctime), (mine[1], 0o600, at));
    assert!(
        matches!(r[2], Err(MetaError::AlreadyExists(_))),
        "{:?}",
        r[2]
    );
    assert!(refused(&r[3]), "{:?}", r[3]);
    assert!(refused(&r[4]), "{:?}", r[4]);
    assert_eq!(r[5].as_ref().unwrap().ino, mine[3]);
    // As if made by `create`: found by name, the parent's times and links
    // moved to the creates' time, in the change set for other mounts.
    assert_eq!(s.lookup(vol, mine[0], b"f").unwrap().ino, mine[1]);
    assert_eq!(s.lookup(vol, vol, b"last").unwrap().ino, mine[3]);
    assert!(s.lookup(vol, vol, b"stolen").is_err());
    let root = s.getattr(vol, vol).unwrap();
    assert_eq!((root.nlink, root.mtime), (3, at));
    assert!(out.changes.entries.contains(&(vol, b"d".to_vec())));
    assert!(out.changes.created.contains(&mine[1]));
    // What the mount then did to a node it made: its contents, and
    // attributes set, each at its own time; a truncate is never queued,
    // and each refusal is its operation's own.
    let later = Timespec {
        sec: 1_700_000_100,
        nsec: 0,
    };
    let more = s.reserve_inos("se-q", 1).unwrap();
    let set = |mode, mtime| SetAttr {
        mode: Some(mode),
        mtime: Some(TimeSet::At(mtime)),
        ..Default::default()
    };
    let ops = vec![
        Queued::Commit {
            ino: mine[3],
            chunks: vec![Chunk {
                index: 0,
                len: 5,
                data: ChunkData::Inline(b"hello".to_vec()),
            }],
            write_end: 5,
            now: later,
            kill_suidgid: false,
        },
        Queued::SetAttr {
            ino: mine[3],
            set: set(0o640, at),
            now: later,
        },
        Queued::SetAttr {
            ino: mine[3],
            set: SetAttr {
                size: Some(0),
                ..Default::default()
            },
            now: later,
        },
        Queued::Commit {
            ino: mine[0],
            chunks: Vec::new(),
            write_end: 1,
            now: later,
            kill_suidgid: false,
        },
        // A directory's mode set, then a create in it: the change set
        // has both.
        Queued::SetAttr {
            ino: mine[0],
            set: SetAttr {
                mode: Some(0o700),
                ..Default::default()
            },
            now: at,
        },
        op_at(mine[0], b"g", file(0o644), more[0], false, later),
    ];
    let out = s.apply(vol, &ops, &by).unwrap();
    let r = &out.value;
    let written = r[0].as_ref().unwrap();
    assert_eq!(
        (written.size, written.version, written.mtime),
        (5, 1, later)
    );
    let a = r[1].as_ref().unwrap();
    assert_eq!(
        (a.size, a.mode & 0o7777, a.mtime, a.ctime, a.version),
        (5, 0o640, at, later, 1)
    );
    assert!(refused(&r[2]), "{:?}", r[2]);
    assert!(refused(&r[3]), "{:?}", r[3]);
    assert_eq!(s.getattr(vol, mine[3]).unwrap().size, 5);
    assert_eq!(
        s.chunks(vol, mine[3]).unwrap()[0].data,
        ChunkData::Inline(b"hello".to_vec())
    );
    // Changed twice in the batch: the change set has it as the batch
    // left it.
    let last: Vec<_> = out
        .changes
        .attrs
        .iter()
        .filter(|c| c.ino == mine[3])
        .collect();
    assert_eq!(last.len(), 1);
    assert_eq!((last[0].size, last[0].mode & 0o7777), (5, 0o640));
    let d = out.changes.attrs.iter().find(|c| c.ino == mine[0]).unwrap();
    assert_eq!((d.mode & 0o7777, d.mtime, d.ctime), (0o700, later, later));
    // The other session still holds the number this one tried to take.
    let theirs_op = vec![op(vol, b"theirs", file(0o644), theirs[0], false)];
    let out = s.apply(vol, &theirs_op, &Cx::by(now(), "se-r")).unwrap();
    assert_eq!(out.value[0].as_ref().unwrap().ino, theirs[0]);
    // "open": the create registered an open of the session, so the file
    // outlives its last name until released.
    s.unlink(vol, mine[0], b"f", false, &cx()).unwrap();
    assert_eq!(s.getattr(vol, mine[1]).unwrap().nlink, 0);
    s.release(vol, "se-q", mine[1]).unwrap();
    assert!(s.getattr(vol, mine[1]).is_err());
    // A session's reservations end with it; a batch without a lease fails
    // whole.
    s.expire_sessions(i64::MAX, Some("se-r")).unwrap();
    let late = vec![op(vol, b"late", file(0o644), theirs[1], false)];
    assert!(matches!(
        s.apply(vol, &late, &Cx::by(now(), "se-r")),
        Err(MetaError::Fenced(_))
    ));
    assert!(s.lookup(vol, vol, b"late").is_err());
}

/// A change that writes a small file wholly inline carries its contents
/// (for mounts that list it), as the change left them; one that writes
/// many carries a bounded share.
pub fn changes_carry_small_contents(s: &MetaStore) {
    use crate::tree::{CONTENTS_MAX_BYTES, CONTENTS_MAX_FILES, INLINE_LIMIT};
    let (_ws, vol) = setup(s, "cc");
    let inline = |bytes: &[u8]| Chunk {
        index: 0,
        len: bytes.len() as u32,
        data: ChunkData::Inline(bytes.to_vec()),
    };
    let f = s
        .create(vol, vol, b"f", &file(0o644), true, &cx())
        .unwrap()
        .value;
    let out = s
        .commit(vol, f.ino, &[inline(b"abc")], 3, false, &cx())
        .unwrap();
    assert_eq!(out.changes.contents.len(), 1);
    let (ino, chunks) = &out.changes.contents[0];
    assert_eq!(*ino, f.ino);
    assert_eq!(chunks.len(), 1);
    assert_eq!(chunks[0].data, ChunkData::Inline(b"abc".to_vec()));
    // Grown past the inline limit: no contents.
    let out = s
        .commit(vol, f.ino, &[], (INLINE_LIMIT + 1) as u64, false, &cx())
        .unwrap();
    assert!(out.changes.contents.is_empty());
    // A batch writing many: as many as fit, each whole and current.
    s.open_session(
        &owner(_ws),
        "se-c",
        vol,
        "",
        &SessionClient::default(),
        i64::MAX,
    )
    .unwrap();
    let at = Timespec {
        sec: 1_700_000_300,
        nsec: 0,
    };
    let n = CONTENTS_MAX_FILES + 44;
    let inos = s.reserve_inos("se-c", n).unwrap();
    let body = |i: usize| format!("file {i} ").repeat(900).into_bytes();
    let mut ops = Vec::new();
    for (i, ino) in inos.iter().enumerate() {
        ops.push(Queued::Create(QueuedCreate {
            parent: vol,
            name: format!("m{i}").into_bytes(),
            node: file(0o644),
            ino: *ino,
            now: at,
            open: false,
        }));
        let b = body(i);
        ops.push(Queued::Commit {
            ino: *ino,
            write_end: b.len() as u64,
            chunks: vec![inline(&b)],
            now: at,
            kill_suidgid: false,
        });
    }
    let out = s.apply(vol, &ops, &Cx::by(now(), "se-c")).unwrap();
    assert!(out.value.iter().all(|r| r.is_ok()));
    let c = &out.changes.contents;
    let bytes: u64 = c
        .iter()
        .flat_map(|(_, ch)| ch.iter().map(|k| k.len as u64))
        .sum();
    assert!(!c.is_empty() && c.len() <= CONTENTS_MAX_FILES && bytes <= CONTENTS_MAX_BYTES);
    for (ino, chunks) in c {
        let i = inos.iter().position(|x| x == ino).unwrap();
        assert_eq!(chunks[0].data, ChunkData::Inline(body(i)), "m{i}");
    }
}

pub fn queued_unlinks_and_renames(s: &MetaStore) {
    let (ws, vol) = setup(s, "qu");
    s.open_session(
        &owner(ws),
        "se-u",
        vol,
        "",
        &SessionClient::default(),
        i64::MAX,
    )
    .unwrap();
    let by = Cx::by(now(), "se-u");
    let at = Timespec {
        sec: 1_700_000_200,
        nsec: 7,
    };
    let d = s
        .create(vol, vol, b"d", &dir(0o755), true, &cx())
        .unwrap()
        .value;
    let e = s
        .create(vol, vol, b"e", &dir(0o755), true, &cx())
        .unwrap()
        .value;
    let mk = |name: &[u8]| {
        s.create(vol, d.ino, name, &file(0o644), true, &cx())
            .unwrap()
            .value
    };
    let (a, b, c, kept, x) = (mk(b"a"), mk(b"b"), mk(b"c"), mk(b"kept"), mk(b"x"));
    assert_eq!(s.dir_of(vol, a.ino).unwrap(), Some(d.ino));
    assert_eq!(s.dir_of(vol, d.ino).unwrap(), Some(vol));
    // One made in the same batch, then removed: gone with its create.
    let fresh = s.reserve_inos("se-u", 1).unwrap();
    s.open(vol, kept.ino, &by).unwrap();
    let unlink = |name: &[u8], ino| Queued::Unlink {
        parent: d.ino,
        name: name.to_vec(),
        ino,
        now: at,
    };
    let rename = |name: &[u8], to: Ino, new_name: &[u8], ino, replaced| Queued::Rename {
        parent: d.ino,
        name: name.to_vec(),
        new_parent: to,
        new_name: new_name.to_vec(),
        ino,
        replaced,
        now: at,
    };
    let ops = vec![
        Queued::Create(QueuedCreate {
            parent: d.ino,
            name: b"tmp".to_vec(),
            node: file(0o644),
            ino: fresh[0],
            now: at,
            open: false,
        }),
        // Moved to another held directory, replacing what is there.
        rename(b"tmp", e.ino, b"f", fresh[0], None),
        rename(b"a", e.ino, b"f", a.ino, Some(fresh[0])),
        unlink(b"b", b.ino),
        // Open elsewhere: outlives its name.
        unlink(b"kept", kept.ino),
        // Refused, each on its own: the name names another inode now, a
        // target that is not what the listing said, a directory.
        unlink(b"c", b.ino),
        rename(b"c", d.ino, b"x", c.ino, None),
        rename(b"c", d.ino, b"y", c.ino, Some(x.ino)),
        Queued::Rename {
            parent: vol,
            name: b"e".to_vec(),
            new_parent: vol,
            new_name: b"e2".to_vec(),
            ino: e.ino,
            replaced: None,
            now: at,
        },
        rename(b"c", d.ino, b"c2", c.ino, None),
    ];
    let out = s.apply(vol, &ops, &by).unwrap();
    let r = &out.value;
    assert_eq!(r.len(), ops.len());
    for (i, res) in r.iter().enumerate().take(5) {
        assert!(res.is_ok(), "op {i}: {res:?}");
    }
    assert_eq!(r[2].as_ref().unwrap().ctime, at);
    assert_eq!(r[3].as_ref().unwrap().nlink, 0);
    assert!(matches!(r[5], Err(MetaError::NotFound(_))), "{:?}", r[5]);
    assert!(
        matches!(r[6], Err(MetaError::AlreadyExists(_))),
        "{:?}",
        r[6]
    );
    assert!(matches!(r[7], Err(MetaError::NotFound(_))), "{:?}", r[7]);
    assert!(
        matches!(r[8], Err(MetaError::InvalidArgument(_))),
        "{:?}",
        r[8]
    );
    assert_eq!(r[9].as_ref().unwrap().ino, c.ino);
    // As the plain calls leave them.
    assert_eq!(s.lookup(vol, e.ino, b"f").unwrap().ino, a.ino);
    for gone in [&b"a"[..], b"b", b"kept", b"tmp", b"c"] {
        assert!(s.lookup(vol, d.ino, gone).is_err(), "{gone:?}");
    }
    assert_eq!(s.lookup(vol, d.ino, b"c2").unwrap().ino, c.ino);
    assert!(s.getattr(vol, b.ino).is_err());
    assert!(s.getattr(vol, fresh[0]).is_err());
    assert_eq!(s.getattr(vol, kept.ino).unwrap().nlink, 0);
    assert_eq!(s.getattr(vol, d.ino).unwrap().mtime, at);
    assert_eq!(s.getattr(vol, e.ino).unwrap().mtime, at);
    // The change set: both names of each move, the destroyed inodes gone
    // (not the attributes an earlier op of the batch left them with).
    for entry in [
        (d.ino, &b"a"[..]),
        (e.ino, b"f"),
        (d.ino, b"b"),
        (d.ino, b"c2"),
    ] {
        assert!(
            out.changes.entries.contains(&(entry.0, entry.1.to_vec())),
            "{entry:?}"
        );
    }
    assert!(out.changes.gone.contains(&fresh[0]));
    assert!(out.changes.gone.contains(&b.ino));
    assert!(out
        .changes
        .attrs
        .iter()
        .all(|x| x.ino != fresh[0] && x.ino != b.ino));
    let moved = out.changes.attrs.iter().find(|x| x.ino == a.ino).unwrap();
    assert_eq!((moved.nlink, moved.ctime), (1, at));
    s.release(vol, "se-u", kept.ino).unwrap();
    assert!(s.getattr(vol, kept.ino).is_err());
}

pub fn create_open_and_batched_release(s: &MetaStore) {
    let (ws, vol) = setup(s, "co");
    s.open_session(
        &owner(ws),
        "se-1",
        vol,
        "",
        &SessionClient::default(),
        i64::MAX,
    )
    .unwrap();
    let by = Cx::by(now(), "se-1");
    let (f, chunks) = s
        .create_open(vol, vol, b"f", &file(0o644), true, &by)
        .unwrap()
        .value;
    assert_eq!((f.kind, f.nlink, chunks.len()), (FileKind::Regular, 1, 0));
    assert_eq!(s.lookup(vol, vol, b"f").unwrap().ino, f.ino);
    assert!(matches!(
        s.create_open(vol, vol, b"f", &file(0o644), true, &by),
        Err(MetaError::AlreadyExists(_))
    ));
    // Not exclusive: the existing file, with its contents, opened again.
    let h = block(s, ws, 9);
    s.commit(vol, f.ino, &[chunk(0, h, 100)], 100, false, &by)
        .unwrap();
    let (again, chunks) = s
        .create_open(vol, vol, b"f", &file(0o600), false, &by)
        .unwrap()
        .value;
    assert_eq!((again.ino, again.size, chunks.len()), (f.ino, 100, 1));
    // The open is registered by the same transaction: unlinked, it lives.
    let (g, _) = s
        .create_open(vol, vol, b"g", &file(0o644), true, &by)
        .unwrap()
        .value;
    s.unlink(vol, vol, b"f", false, &cx()).unwrap();
    s.unlink(vol, vol, b"g", false, &cx()).unwrap();
    assert_eq!(s.getattr(vol, f.ino).unwrap().nlink, 0);
    // One batch releases all three opens (f twice) and frees f's block;
    // an inode already gone in the batch is skipped.
    let out = s
        .release_many(vol, "se-1", &[f.ino, g.ino, f.ino, 999_999])
        .unwrap();
    assert_eq!(out.changes.freed, vec![bref(ws, h)]);
    assert!(s.getattr(vol, f.ino).is_err());
    assert!(s.getattr(vol, g.ino).is_err());
}

pub fn rename_rules(s: &MetaStore) {
    let (_, vol) = setup(s, "r");
    let a = s
        .create(vol, vol, b"a", &file(0o644), true, &cx())
        .unwrap()
        .value;
    let b = s
        .create(vol, vol, b"b", &file(0o644), true, &cx())
        .unwrap()
        .value;
    let d = s
        .create(vol, vol, b"d", &dir(0o755), true, &cx())
        .unwrap()
        .value;
    let e = s
        .create(vol, vol, b"e", &dir(0o755), true, &cx())
        .unwrap()
        .value;
    let none = RenameFlags::default();
    let noreplace = RenameFlags {
        noreplace: true,
        exchange: false,
    };
    let exchange = RenameFlags {
        noreplace: false,
        exchange: true,
    };
    assert!(matches!(
        s.rename(vol, vol, b"a", vol, b"b", noreplace, &cx()),
        Err(MetaError::AlreadyExists(_))
    ));
    let r = s.rename(vol, vol, b"a", vol, b"b", none, &cx()).unwrap();
    assert_eq!(r.value, Some(b.ino));
    assert!(s.getattr(vol, b.ino).is_err());
    assert_eq!(s.lookup(vol, vol, b"b").unwrap().ino, a.ino);
    assert!(matches!(
        s.rename(vol, vol, b"b", vol, b"d", none, &cx()),
        Err(MetaError::IsDirectory)
    ));
    assert!(matches!(
        s.rename(vol, vol, b"d", vol, b"b", none, &cx()),
        Err(MetaError::NotDirectory)
    ));
    // directory into another: link counts follow
    s.rename(vol, vol, b"d", e.ino, b"d", none, &cx()).unwrap();
    assert_eq!(s.getattr(vol, e.ino).unwrap().nlink, 3);
    assert_eq!(s.getattr(vol, vol).unwrap().nlink, 3);
    assert!(matches!(
        s.rename(vol, vol, b"e", d.ino, b"x", none, &cx()),
        Err(MetaError::InvalidArgument(_))
    ));
    // replace an empty directory, refuse a full one
    let f = s
        .create(vol, vol, b"f", &dir(0o755), true, &cx())
        .unwrap()
        .value;
    assert!(matches!(
        s.rename(vol, vol, b"f", vol, b"e", none, &cx()),
        Err(MetaError::NotEmpty)
    ));
    s.rename(vol, e.ino, b"d", vol, b"f", none, &cx()).unwrap();
    assert!(s.getattr(vol, f.ino).is_err());
    // exchange a file and a directory
    s.rename(vol, vol, b"b", vol, b"f", exchange, &cx())
        .unwrap();
    assert_eq!(s.lookup(vol, vol, b"f").unwrap().ino, a.ino);
    assert_eq!(s.lookup(vol, vol, b"b").unwrap().ino, d.ino);
    assert!(matches!(
        s.rename(vol, vol, b"b", vol, b"zz", exchange, &cx()),
        Err(MetaError::NotFound(_))
    ));
    // rename onto another name of the same inode does nothing
    s.link(vol, a.ino, vol, b"a2", &cx()).unwrap();
    s.rename(vol, vol, b"f", vol, b"a2", none, &cx()).unwrap();
    assert_eq!(s.getattr(vol, a.ino).unwrap().nlink, 2);
}

pub fn readdir_paging(s: &MetaStore) {
    let (_, vol) = setup(s, "rd");
    for i in 0..250 {
        s.create(
            vol,
            vol,
            format!("f{i}").as_bytes(),
            &file(0o644),
            true,
            &cx(),
        )
        .unwrap();
    }
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let page = s.readdir(vol, vol, after, 64).unwrap();
        let Some(last) = page.last() else { break };
        after = last.cookie;
        seen.extend(page.into_iter().map(|e| e.name));
    }
    assert_eq!(seen.len(), 250);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 250);
}

pub fn contents_truncate_and_block_refs(s: &MetaStore) {
    let (ws, vol) = setup(s, "b");
    let f = s
        .create(vol, vol, b"f", &file(0o644), true, &cx())
        .unwrap()
        .value;
    let missing = [9u8; 32];
    assert!(matches!(
        s.commit(vol, f.ino, &[chunk(0, missing, 10)], 10, false, &cx()),
        Err(MetaError::MissingBlock(_))
    ));
    assert_eq!(
        s.missing_blocks(ws, &[[1; 32], [2; 32]]).unwrap(),
        vec![[1; 32], [2; 32]]
    );
    // Sizes past the largest file are refused, never stored wrapped.
    for end in [u64::MAX, MAX_FILE_SIZE + 1] {
        assert!(matches!(
            s.commit(vol, f.ino, &[], end, false, &cx()),
            Err(MetaError::FileTooLarge(_))
        ));
        let big = SetAttr {
            size: Some(end),
            ..Default::default()
        };
        assert!(matches!(
            s.setattr(vol, f.ino, &big, &cx()),
            Err(MetaError::FileTooLarge(_))
        ));
    }
    assert_eq!(s.getattr(vol, f.ino).unwrap().size, 0);
    let h1 = block(s, ws, 1);
    let h2 = block(s, ws, 2);
    assert!(s.missing_blocks(ws, &[h1, h2]).unwrap().is_empty());
    let full = CHUNK_SIZE as u32;
    let a = s
        .commit(
            vol,
            f.ino,
            &[chunk(0, h1, full), chunk(1, h2, 10)],
            CHUNK_SIZE + 10,
            true,
            &cx(),
        )
        .unwrap();
    assert_eq!(a.value.size, CHUNK_SIZE + 10);
    assert!(a.value.version > f.version);
    // an empty (fsync-only) commit changes nothing
    let same = s.commit(vol, f.ino, &[], 0, true, &cx()).unwrap();
    assert_eq!(
        (same.value.version, same.value.mtime),
        (a.value.version, a.value.mtime)
    );
    assert!(s.missing_blocks(ws, &[h1, h2]).unwrap().is_empty());
    assert!(s.block_visible(ws, &h1).unwrap());
    let other = s.create_workspace("b-other").unwrap();
    assert!(
        !s.block_visible(other.id, &h1).unwrap(),
        "blocks of one workspace are invisible to another"
    );
    // ...and cannot be referenced from it: the other workspace's commit of
    // the same hash fails exactly as for a hash nobody holds.
    let ov = s.create_volume(other.id, "ov", now()).unwrap();
    let of = s
        .create(ov.root, ov.root, b"f", &file(0o644), true, &cx())
        .unwrap()
        .value;
    let stolen = s.commit(ov.root, of.ino, &[chunk(0, h1, 10)], 10, false, &cx());
    assert!(matches!(stolen, Err(MetaError::MissingBlock(_))));
    assert_eq!(s.missing_blocks(other.id, &[h1]).unwrap(), vec![h1]);
    // Once it uploads the bytes itself it holds its own block.
    s.register_block(&bref(other.id, h1), 100, 0).unwrap();
    s.commit(ov.root, of.ino, &[chunk(0, h1, 10)], 10, false, &cx())
        .unwrap();
    let mut owners = s.block_owners(&h1).unwrap();
    owners.sort();
    assert_eq!(owners, vec![ws, other.id]);
    let gone = s.delete_volume(other.id, "ov", Retire::NOW).unwrap();
    assert_eq!(gone.changes.freed, vec![bref(other.id, h1)]);
    assert!(reap(s, bref(other.id, h1), 1));
    assert!(
        s.block_visible(ws, &h1).unwrap(),
        "the owner keeps its block"
    );
    // a server-side copy shares blocks
    let c = s.copy(vol, f.ino, vol, b"copy", &cx()).unwrap().value;
    assert_eq!(s.chunks(vol, c.ino).unwrap(), s.chunks(vol, f.ino).unwrap());
    // shrink into the first chunk: chunk 1 goes, chunk 0 is shortened
    let t = s
        .setattr(
            vol,
            f.ino,
            &SetAttr {
                size: Some(5),
                ..Default::default()
            },
            &cx(),
        )
        .unwrap();
    assert_eq!(t.value.size, 5);
    assert!(
        t.changes.freed.is_empty(),
        "the copy still holds both blocks"
    );
    assert_eq!(s.chunks(vol, f.ino).unwrap(), vec![chunk(0, h1, 5)]);
    let gone = s.unlink(vol, vol, b"copy", false, &cx()).unwrap();
    assert_eq!(gone.changes.freed, vec![bref(ws, h2)]);
    assert!(reap(s, bref(ws, h2), 1));
    assert!(
        !reap(s, bref(ws, h1), 1),
        "a referenced block is never reaped"
    );
    // inline chunks, and a sparse write far out
    let out = s
        .commit(
            vol,
            f.ino,
            &[Chunk {
                index: 0,
                len: 3,
                data: ChunkData::Inline(b"abc".to_vec()),
            }],
            3,
            false,
            &cx(),
        )
        .unwrap();
    assert_eq!(
        out.changes.freed,
        vec![bref(ws, h1)],
        "overwriting a chunk drops its old block"
    );
    let out = s
        .setattr(
            vol,
            f.ino,
            &SetAttr {
                size: Some(0),
                ..Default::default()
            },
            &cx(),
        )
        .unwrap();
    assert!(out.changes.freed.is_empty());
    let h3 = block(s, ws, 3);
    let a = s
        .commit(vol, f.ino, &[chunk(100, h3, 1)], 0, false, &cx())
        .unwrap();
    assert_eq!(a.value.size, 100 * CHUNK_SIZE + 1);
    let v = s.delete_volume(ws, "vol", Retire::NOW).unwrap();
    assert_eq!(v.changes.freed, vec![bref(ws, h3)]);
    // pending uploads expire
    let h4 = bref(ws, [4u8; 32]);
    s.register_block(&h4, 1, 1000).unwrap();
    assert!(!s.mark_block(&h4, 999).unwrap());
    assert!(s.expired_blocks(1001, 10).unwrap().contains(&h4));
    assert!(s.mark_block(&h4, 1001).unwrap());
    // A marked block is being deleted: no commit may reference it.
    let v2 = s.create_volume(ws, "vol2", now()).unwrap();
    let f2 = s
        .create(v2.root, v2.root, b"f", &file(0o644), true, &cx())
        .unwrap()
        .value;
    assert!(matches!(
        s.commit(v2.root, f2.ino, &[chunk(0, h4.hash, 1)], 1, false, &cx()),
        Err(MetaError::MissingBlock(_))
    ));
    assert!(!s.block_visible(ws, &h4.hash).unwrap());
    // One mark, one reaper: a second one does not get it (two deleting
    // one object could delete a later upload's bytes).
    assert!(!s.mark_block(&h4, 1002).unwrap());
    assert!(!s.expired_blocks(1001 + 1000, 10).unwrap().contains(&h4));
    // An upload waits while it is being deleted.
    assert!(matches!(s.claim_block(&h4, 5000), Err(MetaError::Stale(_))));
    assert!(matches!(
        s.register_block(&h4, 1, 5000),
        Err(MetaError::Stale(_))
    ));
    // A deletion that did not finish (its reaper died) is offered again
    // and taken over; the first reaper's late drop changes nothing.
    let later = 1001 + STALE_MARK_MS + 1;
    assert!(s.expired_blocks(later, 10).unwrap().contains(&h4));
    assert!(s.mark_block(&h4, later).unwrap());
    s.drop_block(&h4, 1001).unwrap();
    assert!(matches!(s.claim_block(&h4, 5000), Err(MetaError::Stale(_))));
    s.drop_block(&h4, later).unwrap();
    // Gone: the upload goes ahead and the block is usable again.
    s.claim_block(&h4, later + 5000).unwrap();
    s.register_block(&h4, 1, later + 5000).unwrap();
    assert!(s.block_visible(ws, &h4.hash).unwrap());
    s.commit(v2.root, f2.ino, &[chunk(0, h4.hash, 1)], 1, false, &cx())
        .unwrap();
    // Claiming a held block extends its grace: no reaper may start
    // deleting the bytes an upload is writing again.
    let h5 = bref(ws, [5u8; 32]);
    s.register_block(&h5, 1, 1000).unwrap();
    s.claim_block(&h5, 9000).unwrap();
    assert!(!s.mark_block(&h5, 5000).unwrap());
    assert!(s.block_visible(ws, &h5.hash).unwrap());
    assert!(s.mark_block(&h5, 9001).unwrap());
    // Every block can be listed, in order, page by page (to copy them all).
    let all = s.list_blocks(None, 1000).unwrap();
    assert!(all.contains(&h4) && all.contains(&h5));
    assert!(all
        .windows(2)
        .all(|w| (w[0].workspace, w[0].hash) < (w[1].workspace, w[1].hash)));
    let (mut paged, mut after) = (Vec::new(), None);
    loop {
        let page = s.list_blocks(after.as_ref(), 2).unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().cloned();
        paged.extend(page);
    }
    assert_eq!(paged, all);
}

pub fn attributes_and_xattrs(s: &MetaStore) {
    let (_, vol) = setup(s, "x");
    let f = s
        .create(vol, vol, b"f", &file(0o644), true, &cx())
        .unwrap()
        .value;
    let t = Timespec {
        sec: 1_000_000,
        nsec: 5,
    };
    let a = s
        .setattr(
            vol,
            f.ino,
            &SetAttr {
                mode: Some(0o4711),
                uid: Some(7),
                gid: Some(8),
                mtime: Some(TimeSet::At(t)),
                ..Default::default()
            },
            &cx(),
        )
        .unwrap()
        .value;
    assert_eq!((a.mode, a.uid, a.gid, a.mtime), (0o4711, 7, 8, t));
    assert!(a.ctime > t);
    assert!(matches!(
        s.get_xattr(vol, f.ino, b"user.a"),
        Err(MetaError::NoData)
    ));
    s.set_xattr(vol, f.ino, b"user.a", b"1", XattrMode::Create, &cx())
        .unwrap();
    assert!(matches!(
        s.set_xattr(vol, f.ino, b"user.a", b"2", XattrMode::Create, &cx()),
        Err(MetaError::AlreadyExists(_))
    ));
    assert!(matches!(
        s.set_xattr(vol, f.ino, b"user.b", b"2", XattrMode::Replace, &cx()),
        Err(MetaError::NoData)
    ));
    s.set_xattr(vol, f.ino, b"user.a", b"3", XattrMode::Replace, &cx())
        .unwrap();
    s.set_xattr(vol, f.ino, b"user.b", b"", XattrMode::Any, &cx())
        .unwrap();
    assert_eq!(s.get_xattr(vol, f.ino, b"user.a").unwrap(), b"3");
    assert_eq!(
        s.list_xattr(vol, f.ino).unwrap(),
        vec![b"user.a".to_vec(), b"user.b".to_vec()]
    );
    s.remove_xattr(vol, f.ino, b"user.a", &cx()).unwrap();
    assert!(matches!(
        s.remove_xattr(vol, f.ino, b"user.a", &cx()),
        Err(MetaError::NoData)
    ));
    assert!(matches!(
        s.set_xattr(
            vol,
            f.ino,
            b"user.big",
            &vec![0; XATTR_VALUE_MAX + 1],
            XattrMode::Any,
            &cx()
        ),
        Err(MetaError::TooBig(_))
    ));
}

pub fn concurrent_exclusive_create(s: &MetaStore) {
    let (_, vol) = setup(s, "race");
    for round in 0..20 {
        let name = format!("lock{round}");
        let winners: usize = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..8)
                .map(|_| {
                    let name = name.clone();
                    sc.spawn(move || {
                        s.create(vol, vol, name.as_bytes(), &file(0o644), true, &cx())
                            .is_ok() as usize
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(winners, 1, "round {round}");
    }
}

/// A change by mount session `session` at `ms` milliseconds.
fn at_ms<'a>(ms: i64, session: &'a str) -> Cx<'a> {
    Cx::by(
        Timespec {
            sec: ms / 1000,
            nsec: ((ms % 1000) * 1_000_000) as u32,
        },
        session,
    )
}

fn wlock(session: &str, owner: u64, start: u64, end: u64) -> LockRange {
    LockRange {
        session: session.into(),
        owner,
        kind: LockKind::Write,
        start,
        end,
        pid: owner as u32,
    }
}

fn rlock(session: &str, owner: u64, start: u64, end: u64) -> LockRange {
    LockRange {
        kind: LockKind::Read,
        ..wlock(session, owner, start, end)
    }
}

fn granted(o: LockOutcome) -> u64 {
    match o {
        LockOutcome::Granted { fence, .. } => fence,
        other => panic!("not granted: {other:?}"),
    }
}

pub fn sessions_leases_and_generations(s: &MetaStore) {
    let (ws, vol) = setup(s, "w");
    let l = s
        .open_session(
            &owner(ws),
            "se-a",
            vol,
            "",
            &SessionClient::default(),
            2_000,
        )
        .unwrap();
    assert_eq!(l.generation, 1);
    // Renewed while alive; a resume makes a new generation and the old
    // stream's renewals are refused from then on.
    s.renew_session("se-a", 1, 1_500, 3_500).unwrap();
    let r = s
        .resume_session(&owner(ws), "se-a", vol, 2_000, 4_000)
        .unwrap();
    assert_eq!((r.generation, r.expires_ms), (2, 4_000));
    assert!(matches!(
        s.renew_session("se-a", 1, 2_100, 5_000),
        Err(MetaError::Fenced(_))
    ));
    s.renew_session("se-a", 2, 2_100, 5_000).unwrap();
    // Writes need a live lease, checked in the write's own transaction.
    let f = s
        .create(vol, vol, b"f", &file(0o644), true, &at_ms(4_000, "se-a"))
        .unwrap()
        .value;
    // Past its lease, even before any reaper ran, the session is fenced:
    // no write, no open, no renewal, no resume.
    let late = at_ms(5_001, "se-a");
    assert!(matches!(
        s.create(vol, vol, b"g", &file(0o644), true, &late),
        Err(MetaError::Fenced(_))
    ));
    assert!(matches!(
        s.commit(vol, f.ino, &[], 10, false, &late),
        Err(MetaError::Fenced(_))
    ));
    assert!(matches!(
        s.open(vol, f.ino, &late),
        Err(MetaError::Fenced(_))
    ));
    assert!(matches!(
        s.renew_session("se-a", 2, 5_001, 9_000),
        Err(MetaError::Fenced(_))
    ));
    assert!(matches!(
        s.resume_session(&owner(ws), "se-a", vol, 5_001, 9_000),
        Err(MetaError::NotFound(_))
    ));
    assert!(s.lookup(vol, vol, b"g").is_err(), "nothing was written");
    // An unknown session writes nothing either.
    assert!(matches!(
        s.create(vol, vol, b"g", &file(0o644), true, &at_ms(1, "se-none")),
        Err(MetaError::Fenced(_))
    ));
    let ended = s.expire_sessions(5_001, None).unwrap();
    assert_eq!(ended.value, vec!["se-a".to_string()]);
    assert!(matches!(s.session("se-a"), Err(MetaError::NotFound(_))));
    // A one-shot client (no session) is not subject to leases.
    s.create(vol, vol, b"g", &file(0o644), true, &cx()).unwrap();
}

pub fn locks_queue_and_fencing(s: &MetaStore) {
    let (ws, vol) = setup(s, "w");
    for id in ["se-a", "se-b", "se-c"] {
        s.open_session(&owner(ws), id, vol, "", &SessionClient::default(), 10_000)
            .unwrap();
    }
    let f = s
        .create(vol, vol, b"f", &file(0o644), true, &cx())
        .unwrap()
        .value;
    let a = at_ms(1_000, "se-a");
    let b = at_ms(1_000, "se-b");
    // Readers share, a writer is refused and told who is in the way.
    granted(
        s.lock(vol, f.ino, &rlock("se-a", 1, 0, 99), None, false, &a)
            .unwrap(),
    );
    granted(
        s.lock(vol, f.ino, &rlock("se-b", 1, 50, 150), None, false, &b)
            .unwrap(),
    );
    match s
        .lock(vol, f.ino, &wlock("se-b", 2, 60, 60), None, false, &b)
        .unwrap()
    {
        LockOutcome::Conflict(r) => assert_eq!((r.session.as_str(), r.start), ("se-a", 0)),
        other => panic!("{other:?}"),
    }
    assert!(s
        .test_lock(vol, f.ino, &wlock("se-c", 1, 0, 0))
        .unwrap()
        .is_some());
    assert!(s
        .test_lock(vol, f.ino, &wlock("se-c", 1, 151, 200))
        .unwrap()
        .is_none());
    s.unlock(vol, f.ino, "se-a", 1, 0, u64::MAX).unwrap();
    s.unlock(vol, f.ino, "se-b", 1, 0, u64::MAX).unwrap();

    // Write grants carry rising fencing tokens; a split range keeps its
    // token; unlocking reports the newest token still held.
    let t1 = granted(
        s.lock(vol, f.ino, &wlock("se-a", 1, 0, u64::MAX), None, false, &a)
            .unwrap(),
    );
    assert!(t1 > 0);
    let out = s.unlock(vol, f.ino, "se-a", 1, 10, 19).unwrap();
    assert_eq!(out.value, t1);
    assert_eq!(out.changes.unlocked, vec![f.ino]);
    assert!(
        out.changes.feed > 0,
        "waiters elsewhere are woken through the feed"
    );
    let fenced = at_ms(1_000, "se-a").fenced(t1);
    s.commit(vol, f.ino, &[], 5, false, &fenced).unwrap();
    // Queue: a blocking request yields to an earlier waiter.
    let qb = s
        .queue_lock(vol, f.ino, &wlock("se-b", 1, 0, 9), &b)
        .unwrap();
    let qc = s
        .queue_lock(vol, f.ino, &wlock("se-c", 1, 0, 9), &at_ms(1_000, "se-c"))
        .unwrap();
    assert!(qc > qb);
    assert!(matches!(
        s.lock(
            vol,
            f.ino,
            &wlock("se-c", 1, 0, 9),
            Some(qc),
            true,
            &at_ms(1_000, "se-c")
        )
        .unwrap(),
        LockOutcome::Conflict(_)
    ));
    // The holder's session ends: its locks go, the first waiter wins
    // with a newer token, and the old token is fenced.
    let ended = s.expire_sessions(20_000, Some("se-a")).unwrap();
    assert_eq!(ended.changes.unlocked, vec![f.ino]);
    assert!(
        matches!(
            s.lock(
                vol,
                f.ino,
                &wlock("se-c", 1, 0, 9),
                Some(qc),
                true,
                &at_ms(1_000, "se-c")
            )
            .unwrap(),
            LockOutcome::Conflict(_)
        ),
        "se-b queued first"
    );
    let t2 = granted(
        s.lock(vol, f.ino, &wlock("se-b", 1, 0, 9), Some(qb), true, &b)
            .unwrap(),
    );
    assert!(t2 > t1);
    s.unqueue_lock(vol, qc).unwrap();
    assert!(matches!(
        s.commit(vol, f.ino, &[], 50, false, &fenced),
        Err(MetaError::Fenced(_))
    ));
    assert!(matches!(
        s.setattr(
            vol,
            f.ino,
            &SetAttr {
                size: Some(0),
                ..Default::default()
            },
            &at_ms(1_000, "se-b").fenced(t1)
        ),
        Err(MetaError::Fenced(_))
    ));
    let b_fenced = at_ms(1_000, "se-b").fenced(t2);
    s.commit(vol, f.ino, &[], 50, false, &b_fenced).unwrap();
    assert_eq!(s.getattr(vol, f.ino).unwrap().size, 50);
    // A session's lock cannot be released by another session.
    s.unlock(vol, f.ino, "se-c", 1, 0, u64::MAX).unwrap();
    assert!(s
        .test_lock(vol, f.ino, &wlock("se-c", 1, 0, 0))
        .unwrap()
        .is_some());
    // Locks are on inodes of the caller's volume only.
    let (_, other_vol) = setup(s, "x");
    assert!(matches!(
        s.lock(other_vol, f.ino, &wlock("se-b", 1, 0, 0), None, false, &b),
        Err(MetaError::NotFound(_))
    ));
    // The queue of one file is bounded: past it, ENOLCK.
    let g = s
        .create(vol, vol, b"g", &file(0o644), true, &cx())
        .unwrap()
        .value;
    granted(
        s.lock(vol, g.ino, &wlock("se-b", 1, 0, 0), None, false, &b)
            .unwrap(),
    );
    for i in 0..4096 {
        s.queue_lock(
            vol,
            g.ino,
            &wlock("se-c", 100 + i, 0, 0),
            &at_ms(1_000, "se-c"),
        )
        .unwrap();
    }
    assert!(matches!(
        s.queue_lock(vol, g.ino, &wlock("se-c", 1, 0, 0), &at_ms(1_000, "se-c")),
        Err(MetaError::NoLocks(_))
    ));
    s.clear_lock_queue().unwrap();
    s.queue_lock(vol, g.ino, &wlock("se-c", 1, 0, 0), &at_ms(1_000, "se-c"))
        .unwrap();
}

pub fn changes_and_the_feed(s: &MetaStore) {
    let (ws, vol) = setup(s, "w");
    s.open_session(
        &owner(ws),
        "se-a",
        vol,
        "",
        &SessionClient::default(),
        i64::MAX,
    )
    .unwrap();
    let start = s.feed_head().unwrap();
    let by_a = Cx::by(now(), "se-a");
    let d = s.create(vol, vol, b"d", &dir(0o755), true, &by_a).unwrap();
    // The change set carries the new attributes, read in the transaction.
    assert_eq!(d.changes.volume, vol);
    let root = d.changes.attr(vol).expect("parent in the change set");
    assert_eq!(root.nlink, 3);
    assert!(d.changes.attr(d.value.ino).is_some());
    assert_eq!(d.changes.entries, vec![(vol, b"d".to_vec())]);
    assert!(d.changes.feed > start);
    let f = s
        .create(vol, d.value.ino, b"f", &file(0o644), true, &cx())
        .unwrap()
        .value;
    let mv = s
        .rename(
            vol,
            d.value.ino,
            b"f",
            vol,
            b"g",
            RenameFlags::default(),
            &cx(),
        )
        .unwrap();
    assert!(
        mv.changes.attr(f.ino).is_some(),
        "the moved inode's ctime changed"
    );
    let un = s.unlink(vol, vol, b"g", false, &cx()).unwrap();
    assert_eq!(un.changes.gone, vec![f.ino]);
    // The feed has each change once, in order, with its origin; the
    // inode a change created is not news to anyone.
    let page = s.feed_since(start, 100).unwrap();
    assert!(!page.gap);
    assert_eq!(page.entries.len(), 4);
    assert_eq!(page.head, un.changes.feed);
    let first = &page.entries[0];
    assert_eq!((first.origin.as_str(), first.volume), ("se-a", vol));
    assert_eq!(first.inodes, vec![vol]);
    assert!(page.entries.windows(2).all(|w| w[0].seq + 1 == w[1].seq));
    assert!(page.entries[2].entries.contains(&(vol, b"g".to_vec())));
    // A clean fsync is no news.
    let h = s
        .create(vol, vol, b"h", &file(0o644), true, &cx())
        .unwrap()
        .value;
    let before = s.feed_head().unwrap();
    let c = s.commit(vol, h.ino, &[], 0, true, &cx()).unwrap();
    assert_eq!((c.changes.feed, s.feed_head().unwrap()), (0, before));
    // Deleting a volume is in the feed, so every server ends its sessions.
    let v2 = s.create_volume(ws, "v2", now()).unwrap();
    s.create(v2.root, v2.root, b"x", &file(0o644), true, &cx())
        .unwrap();
    s.delete_volume(ws, "v2", Retire::NOW).unwrap();
    let tail = s.feed_since(before, 100).unwrap();
    // Its own entries went with it (nobody can use them), which is no gap.
    assert!(!tail.gap);
    assert!(tail
        .entries
        .iter()
        .all(|e| e.volume != v2.root || e.volume_deleted));
    assert!(tail
        .entries
        .iter()
        .any(|e| e.volume == v2.root && e.volume_deleted));
    // Trimming leaves a gap that a reader behind it is told about.
    s.trim_feed(1).unwrap();
    let behind = s.feed_since(start, 100).unwrap();
    assert!(behind.gap);
    assert_eq!(behind.entries.len(), 1);
    assert!(!s.feed_since(behind.head, 100).unwrap().gap);
}

/// The store's totals (the server's metrics) count what was written, once
/// per block however many files share it.
pub fn store_stats(s: &MetaStore) {
    let before = s.stats().unwrap();
    let (ws, vol) = setup(s, "stats");
    let h = block(s, ws, 7);
    for name in [&b"a"[..], b"b"] {
        let f = s
            .create(vol, vol, name, &file(0o644), true, &cx())
            .unwrap()
            .value;
        s.commit(vol, f.ino, &[chunk(0, h, 100)], 100, false, &cx())
            .unwrap();
    }
    let after = s.stats().unwrap();
    assert_eq!(after.volumes, before.volumes + 1);
    assert_eq!(after.logical_bytes, before.logical_bytes + 200);
    assert_eq!(after.blocks, before.blocks + 1);
    assert_eq!(after.block_bytes, before.block_bytes + 100);
    assert!(after.feed_head > before.feed_head);
    assert_eq!(after.locks_held, before.locks_held);
}

/// Usage after dedup (per volume and per workspace) and live sessions with
/// what their clients said of themselves.
pub fn usage_and_live_sessions(s: &MetaStore) {
    let (ws, vol) = setup(s, "usage");
    let other = s.create_volume(ws, "other", now()).unwrap();
    let h = block(s, ws, 9);
    // Three files of one block in `vol`, one in `other`, one inline file.
    for (v, name) in [
        (vol, &b"a"[..]),
        (vol, b"b"),
        (vol, b"c"),
        (other.root, b"d"),
    ] {
        let f = s
            .create(v, v, name, &file(0o644), true, &cx())
            .unwrap()
            .value;
        s.commit(v, f.ino, &[chunk(0, h, 100)], 100, false, &cx())
            .unwrap();
    }
    let small = s
        .create(vol, vol, b"small", &file(0o644), true, &cx())
        .unwrap()
        .value;
    let inline = Chunk {
        index: 0,
        len: 5,
        data: ChunkData::Inline(b"hello".to_vec()),
    };
    s.commit(vol, small.ino, &[inline], 5, false, &cx())
        .unwrap();
    let u = s.volume_usage(vol).unwrap();
    assert_eq!((u.files, u.bytes, u.stored_bytes), (4, 305, 105));
    let u = s.volume_usage(other.root).unwrap();
    assert_eq!((u.files, u.bytes, u.stored_bytes), (1, 100, 100));
    let w = s.workspace_usage(ws).unwrap();
    assert_eq!(
        (w.volumes, w.files, w.logical_bytes, w.stored_bytes),
        (2, 5, 405, 105)
    );
    assert_eq!(w.running_apps, 2, "each persisted volume is a running app");
    let lone = s.create_workspace("lonely").unwrap();
    assert_eq!(
        s.workspace_usage(lone.id).unwrap(),
        WorkspaceUsage::default()
    );

    let client = SessionClient {
        host: "worker-7".into(),
        purpose: "mount /mnt/data".into(),
        peer: "10.0.0.7:5000".into(),
        started_ms: 1_000,
    };
    s.open_session(&owner(ws), "se-live", vol, "", &client, 50_000)
        .unwrap();
    s.open_session(
        &owner(ws),
        "se-old",
        vol,
        "",
        &SessionClient::default(),
        5_000,
    )
    .unwrap();
    let live = s.live_sessions(Some(ws), 10_000).unwrap();
    assert_eq!(live.len(), 1, "a session past its lease is not live");
    let l = &live[0];
    let v = s.volume(ws, "vol").unwrap();
    assert_eq!(
        (&l.id[..], l.workspace, &l.volume, &l.volume_name, &l.app),
        ("se-live", ws, &v.id, &v.name, &v.app)
    );
    assert_eq!((&l.client, l.expires_ms), (&client, 50_000));
    assert!(s.live_sessions(Some(lone.id), 10_000).unwrap().is_empty());
    let all = s.live_sessions(None, 0).unwrap();
    assert!(all.iter().any(|x| x.id == "se-old") && all.iter().any(|x| x.id == "se-live"));
    assert_eq!(s.workspace_usage(ws).unwrap().sessions, 2);
}

/// Snapshots copy a tree in one transaction (names, hard links, xattrs,
/// data by reference), are read-only, outlive changes to their volume,
/// restore in place and clone to writable volumes; deleting the volume
/// takes its snapshots and frees the blocks only then.
pub fn snapshots_restore_and_clone(s: &MetaStore) {
    let (ws, vol) = setup(s, "snaps");
    let h = block(s, ws, 3);
    let d = s
        .create(vol, vol, b"d", &dir(0o755), true, &cx())
        .unwrap()
        .value;
    let f = s
        .create(vol, d.ino, b"f", &file(0o600), true, &cx())
        .unwrap()
        .value;
    s.commit(vol, f.ino, &[chunk(0, h, 100)], 100, false, &cx())
        .unwrap();
    s.link(vol, f.ino, vol, b"hard", &cx()).unwrap();
    s.set_xattr(vol, f.ino, b"user.k", b"v", XattrMode::Create, &cx())
        .unwrap();
    let before = s.stats().unwrap();

    let snap = s.snapshot_volume(ws, "vol", "one", now()).unwrap();
    assert_eq!(
        (&snap.name[..], &snap.snapshot_of),
        ("vol@one", &s.volume(ws, "vol").unwrap().id)
    );
    assert!(matches!(
        s.snapshot_volume(ws, "vol", "one", now()),
        Err(MetaError::AlreadyExists(_))
    ));
    assert!(matches!(
        s.snapshot_volume(ws, "vol@one", "two", now()),
        Err(MetaError::InvalidArgument(_))
    ));
    // Metadata only: one more reference to the block, no new block.
    let after = s.stats().unwrap();
    assert_eq!(
        (after.blocks, after.block_bytes),
        (before.blocks, before.block_bytes)
    );
    let sr = snap.root;
    let sd = s.lookup(sr, sr, b"d").unwrap();
    let sf = s.lookup(sr, sd.ino, b"f").unwrap();
    let hard = s.lookup(sr, sr, b"hard").unwrap();
    assert_ne!(sf.ino, f.ino);
    assert_eq!(
        (sf.ino, sf.nlink, sf.size, sf.mode & 0o777),
        (hard.ino, 2, 100, 0o600)
    );
    assert_eq!(s.chunks(sr, sf.ino).unwrap(), vec![chunk(0, h, 100)]);
    assert_eq!(s.get_xattr(sr, sf.ino, b"user.k").unwrap(), b"v");
    assert_eq!(
        s.getattr(sr, sf.ino).unwrap().mtime,
        s.getattr(vol, f.ino).unwrap().mtime
    );
    // Read-only, whatever the change.
    assert!(matches!(
        s.create(sr, sr, b"new", &file(0o644), true, &cx()),
        Err(MetaError::ReadOnly(_))
    ));
    assert!(matches!(
        s.unlink(sr, sd.ino, b"f", false, &cx()),
        Err(MetaError::ReadOnly(_))
    ));
    assert!(matches!(
        s.commit(sr, sf.ino, &[], 0, false, &cx()),
        Err(MetaError::ReadOnly(_))
    ));
    // The volume changes on; the snapshot does not, and keeps the block.
    s.unlink(vol, d.ino, b"f", false, &cx()).unwrap();
    let gone = s.unlink(vol, vol, b"hard", false, &cx()).unwrap();
    assert!(
        gone.changes.freed.is_empty(),
        "the snapshot still references the block"
    );
    s.create(vol, vol, b"later", &file(0o644), true, &cx())
        .unwrap();
    assert!(s.lookup(sr, sd.ino, b"f").is_ok());
    assert_eq!(
        s.list_snapshots(ws, "vol")
            .unwrap()
            .iter()
            .map(|v| v.name.clone())
            .collect::<Vec<_>>(),
        vec!["vol@one".to_string()]
    );
    assert!(s
        .list_volumes(ws)
        .unwrap()
        .iter()
        .all(|v| v.snapshot_of.is_empty()));

    // Restore: the snapshot's tree in place; refused while a lease runs.
    s.open_session(
        &owner(ws),
        "se-snap",
        vol,
        "",
        &SessionClient::default(),
        50_000,
    )
    .unwrap();
    assert!(matches!(
        s.restore_volume(ws, "vol", "one", 10_000),
        Err(MetaError::Busy(_))
    ));
    s.restore_volume(ws, "vol", "one", 60_000).unwrap();
    assert!(s.lookup(vol, vol, b"later").is_err());
    let rd = s.lookup(vol, vol, b"d").unwrap();
    let rf = s.lookup(vol, rd.ino, b"f").unwrap();
    assert_eq!((rf.size, rf.nlink), (100, 2));
    s.create(vol, vol, b"writable", &file(0o644), true, &cx())
        .unwrap();

    // Clone: a writable volume of its own.
    let c = s.clone_volume(ws, "vol@one", "copy", now()).unwrap();
    assert!(c.snapshot_of.is_empty());
    s.create(c.root, c.root, b"mine", &file(0o644), true, &cx())
        .unwrap();
    assert!(s.lookup(sr, sr, b"mine").is_err());

    // Renaming the volume renames its snapshots; deleting it deletes them.
    s.rename_volume(ws, "vol", "renamed").unwrap();
    assert!(s.volume(ws, "renamed@one").is_ok());
    let out = s.delete_volume(ws, "renamed", Retire::NOW).unwrap();
    assert!(
        out.changes.freed.is_empty(),
        "the clone still holds the block"
    );
    assert!(s.volume(ws, "renamed@one").is_err());
    let out = s.delete_volume(ws, "copy", Retire::NOW).unwrap();
    assert_eq!(out.changes.freed, vec![bref(ws, h)]);
}

/// The trash: a deleted volume (and its snapshots) leaves every listing
/// and lookup but keeps its tree and block references until purged or
/// restored; an app's volumes go there when it stops.
pub fn trash_keeps_restores_and_purges(s: &MetaStore) {
    let (ws, vol) = setup(s, "trash");
    let h = block(s, ws, 4);
    let f = s
        .create(vol, vol, b"f", &file(0o644), true, &cx())
        .unwrap()
        .value;
    s.commit(vol, f.ino, &[chunk(0, h, 100)], 100, false, &cx())
        .unwrap();
    s.snapshot_volume(ws, "vol", "s", now()).unwrap();
    let id = s.volume(ws, "vol").unwrap().id;
    let keep = Retire {
        now_ms: 1_000,
        keep_ms: 5_000,
    };
    let out = s.delete_volume(ws, "vol", keep).unwrap();
    assert!(out.changes.freed.is_empty());
    assert!(s.volume(ws, "vol").is_err() && s.volume(ws, "vol@s").is_err());
    assert!(s.list_volumes(ws).unwrap().is_empty());
    let t = s.list_trash(ws).unwrap();
    assert_eq!(t.len(), 2, "the volume and its snapshot");
    let v = t.iter().find(|x| x.id == id).unwrap();
    assert_eq!(
        (v.deleted_ms, v.purge_ms, &v.name[..]),
        (1_000, 6_000, "vol")
    );
    assert_eq!(s.volume_usage(v.root).unwrap().bytes, 100);
    let other = s.create_workspace("elsewhere").unwrap();
    assert!(s.list_trash(other.id).unwrap().is_empty());
    assert!(matches!(
        s.restore_trashed(other.id, &id, None, now()),
        Err(MetaError::NotFound(_))
    ));
    // A new volume may take the name; restoring then needs another.
    s.create_volume(ws, "vol", now()).unwrap();
    assert!(matches!(
        s.restore_trashed(ws, &id, None, now()),
        Err(MetaError::AlreadyExists(_))
    ));
    let back = s.restore_trashed(ws, &id, Some("back"), now()).unwrap();
    assert_eq!((back.id.clone(), &back.name[..]), (id.clone(), "back"));
    assert!(s.lookup(back.root, back.root, b"f").is_ok());
    assert!(s.volume(ws, "back@s").is_ok(), "its snapshot came back");
    s.create(back.root, back.root, b"g", &file(0o644), true, &cx())
        .unwrap();

    // An app's ephemeral volumes go to the trash when it stops.
    let app = s.create_app(ws, "job", 0).unwrap();
    let eph = s.create_ephemeral_volume(ws, &app.id, now()).unwrap();
    s.stop_app(ws, &app.id, keep).unwrap();
    assert!(s
        .list_trash(ws)
        .unwrap()
        .iter()
        .any(|x| x.id == eph.id && x.ephemeral));

    // Purge: only expired ones, or one by id; then the blocks are freed.
    s.delete_volume(ws, "back", keep).unwrap();
    assert!(s
        .purge_trash(Purge::Expired(5_999))
        .unwrap()
        .value
        .is_empty());
    let gone = s.purge_trash(Purge::One(ws, &id)).unwrap();
    assert_eq!(gone.value.len(), 2);
    assert_eq!(gone.changes.freed, vec![bref(ws, h)]);
    let rest = s.purge_trash(Purge::Expired(6_000)).unwrap();
    assert_eq!(rest.value, vec![eph.id.clone()]);
    assert!(s.list_trash(ws).unwrap().is_empty());
    assert!(matches!(
        s.purge_trash(Purge::One(ws, &id)),
        Err(MetaError::NotFound(_))
    ));
}

/// A volume's file trash: with a retention set, the last name of a file
/// going (unlink, or a rename over it) keeps the file under its path until
/// it is restored, purged or its retention ends; without one, nothing is
/// kept.
pub fn file_trash_keeps_removed_files(s: &MetaStore) {
    let (ws, vol) = setup(s, "ftrash");
    let (h1, h2, h3) = (block(s, ws, 11), block(s, ws, 12), block(s, ws, 13));
    let v = s.set_file_trash(ws, "vol", 10_000).unwrap();
    assert_eq!(v.file_trash_ms, 10_000);
    let d = s
        .create(vol, vol, b"d", &dir(0o755), true, &cx())
        .unwrap()
        .value;
    let mut made = Vec::new();
    for (parent, name, h) in [(d.ino, &b"f"[..], h1), (vol, b"g", h2), (vol, b"g2", h3)] {
        let f = s
            .create(vol, parent, name, &file(0o640), true, &cx())
            .unwrap()
            .value;
        s.commit(vol, f.ino, &[chunk(0, h, 100)], 100, false, &cx())
            .unwrap();
        made.push(f.ino);
    }
    let out = s
        .unlink(vol, d.ino, b"f", false, &at_ms(1_000, ""))
        .unwrap();
    assert!(out.changes.freed.is_empty(), "kept, with its block");
    assert_eq!(s.getattr(vol, made[0]).unwrap().nlink, 0);
    s.unlink(vol, vol, b"d", true, &cx()).unwrap();
    let out = s
        .rename(
            vol,
            vol,
            b"g2",
            vol,
            b"g",
            RenameFlags::default(),
            &at_ms(2_000, ""),
        )
        .unwrap();
    assert!(out.changes.freed.is_empty(), "the replaced g is kept");

    let all = s
        .list_deleted_files(vol, &DeletedSelection::default())
        .unwrap();
    let paths: Vec<&[u8]> = all.iter().map(|f| &f.path[..]).collect();
    assert_eq!(paths, vec![&b"g"[..], b"d/f"], "newest first");
    assert_eq!(
        (all[0].size, all[0].deleted_ms, all[0].purge_ms),
        (100, 2_000, 12_000)
    );
    assert_eq!(all[1].ino, made[0]);
    let under_d = DeletedSelection {
        path: b"d",
        ..Default::default()
    };
    assert_eq!(s.list_deleted_files(vol, &under_d).unwrap().len(), 1);
    let since = DeletedSelection {
        since_ms: 1_500,
        ..Default::default()
    };
    assert_eq!(s.list_deleted_files(vol, &since).unwrap().len(), 1);
    let (other_ws, other) = setup(s, "ftrash-other");
    let _ = other_ws;
    assert!(s
        .list_deleted_files(other, &DeletedSelection::default())
        .unwrap()
        .is_empty());

    // "g" is taken (by the renamed g2): restoring it needs another path.
    let g = DeletedSelection {
        path: b"g",
        ..Default::default()
    };
    assert!(matches!(
        s.restore_deleted_files(vol, &g, None, &cx()),
        Err(MetaError::AlreadyExists(_))
    ));
    let back = s
        .restore_deleted_files(vol, &g, Some(b"old/g"), &cx())
        .unwrap();
    assert_eq!(back.value, vec![(b"g".to_vec(), b"old/g".to_vec())]);
    let old = s.lookup(vol, vol, b"old").unwrap();
    let g_back = s.lookup(vol, old.ino, b"g").unwrap();
    assert_eq!((g_back.ino, g_back.nlink, g_back.size), (made[1], 1, 100));
    assert!(back.changes.entries.contains(&(vol, b"old".to_vec())));
    // The directory the file was in is made again.
    s.restore_deleted_files(vol, &under_d, None, &cx()).unwrap();
    let d2 = s.lookup(vol, vol, b"d").unwrap();
    assert_eq!(s.lookup(vol, d2.ino, b"f").unwrap().ino, made[0]);
    assert!(s
        .list_deleted_files(vol, &DeletedSelection::default())
        .unwrap()
        .is_empty());
    assert!(matches!(
        s.restore_deleted_files(vol, &under_d, None, &cx()),
        Err(MetaError::NotFound(_))
    ));

    // Purged by hand: the block goes.
    s.unlink(vol, d2.ino, b"f", false, &at_ms(3_000, ""))
        .unwrap();
    let gone = s.purge_deleted_files(vol, &under_d).unwrap();
    assert_eq!((gone.value, gone.changes.freed), (1, vec![bref(ws, h1)]));
    assert!(s.getattr(vol, made[0]).is_err());
    // Past the retention: dropped by the reaper's call, not before.
    s.unlink(vol, old.ino, b"g", false, &at_ms(4_000, ""))
        .unwrap();
    assert_eq!(s.purge_expired_files(13_999).unwrap().value, 0);
    let gone = s.purge_expired_files(14_000).unwrap();
    assert_eq!((gone.value, gone.changes.freed), (1, vec![bref(ws, h2)]));

    // Without a trash, a removed file goes at once.
    s.set_file_trash(ws, "vol", 0).unwrap();
    let out = s.unlink(vol, vol, b"g", false, &cx()).unwrap();
    assert_eq!(out.changes.freed, vec![bref(ws, h3)]);
}

/// Quotas on inodes and bytes after dedup, per volume and per workspace:
/// counted with every change, refused (before anything is written) past
/// the limit, freed by deletes, and shown by `quota_view`.
pub fn quotas_count_and_refuse(s: &MetaStore) {
    let (ws, vol) = setup(s, "quota");
    // No quota: nothing limits, inodes are counted for `df -i`, and the
    // stored bytes (a scan of the volume) are not.
    s.create(vol, vol, b"pre", &file(0o644), true, &cx())
        .unwrap();
    assert!(!s.quota_limited(vol).unwrap());
    let q = s.quota_view(vol).unwrap();
    assert!(!q.any());
    assert_eq!((q.inodes, q.stored), (1, 0));
    s.unlink(vol, vol, b"pre", false, &cx()).unwrap();
    let v = s.set_volume_quota(ws, "vol", None, Some(3)).unwrap();
    assert!(s.quota_limited(vol).unwrap());
    assert_eq!((v.max_bytes, v.max_files), (0, 3));
    let d = s
        .create(vol, vol, b"d", &dir(0o755), true, &cx())
        .unwrap()
        .value;
    let a = s
        .create(vol, d.ino, b"a", &file(0o644), true, &cx())
        .unwrap()
        .value;
    s.create(vol, vol, b"b", &file(0o644), true, &cx()).unwrap();
    assert!(matches!(
        s.create(vol, vol, b"c", &file(0o644), true, &cx()),
        Err(MetaError::Quota(_))
    ));
    assert_eq!(s.quota_view(vol).unwrap().inodes, 3);
    s.unlink(vol, vol, b"b", false, &cx()).unwrap();
    s.create(vol, vol, b"c", &file(0o644), true, &cx()).unwrap();
    s.set_volume_quota(ws, "vol", Some(250), Some(0)).unwrap();

    // Bytes after dedup: a block counts once however many files use it.
    let (h1, h2, h3) = (block(s, ws, 11), block(s, ws, 12), block(s, ws, 13));
    let mut files = Vec::new();
    for (i, h) in [h1, h1, h2].into_iter().enumerate() {
        let f = s
            .create(
                vol,
                vol,
                format!("f{i}").as_bytes(),
                &file(0o644),
                true,
                &cx(),
            )
            .unwrap()
            .value;
        s.commit(vol, f.ino, &[chunk(0, h, 100)], 100, false, &cx())
            .unwrap();
        files.push(f.ino);
    }
    assert_eq!(s.quota_view(vol).unwrap().stored, 200);
    let g = s
        .create(vol, vol, b"g", &file(0o644), true, &cx())
        .unwrap()
        .value;
    assert!(matches!(
        s.commit(vol, g.ino, &[chunk(0, h3, 100)], 100, false, &cx()),
        Err(MetaError::Quota(_))
    ));
    assert_eq!(
        s.getattr(vol, g.ino).unwrap().size,
        0,
        "a refused commit changes nothing"
    );
    // Inline bytes count too.
    let inline = |n: usize| Chunk {
        index: 0,
        len: n as u32,
        data: ChunkData::Inline(vec![7; n]),
    };
    s.commit(vol, g.ino, &[inline(40)], 40, false, &cx())
        .unwrap();
    assert!(matches!(
        s.commit(vol, a.ino, &[inline(20)], 20, false, &cx()),
        Err(MetaError::Quota(_))
    ));
    // Rewriting in place is not growth: the old block goes as the new comes.
    s.commit(vol, files[2], &[chunk(0, h3, 100)], 100, false, &cx())
        .unwrap();
    assert_eq!(s.quota_view(vol).unwrap().stored, 240);
    s.unlink(vol, vol, b"f0", false, &cx()).unwrap();
    assert_eq!(s.quota_view(vol).unwrap().stored, 240, "f1 still uses h1");
    s.unlink(vol, vol, b"f1", false, &cx()).unwrap();
    assert_eq!(s.quota_view(vol).unwrap().stored, 140);
    let q = s.quota_view(vol).unwrap();
    assert_eq!((q.max_bytes, q.max_files), (250, 0));

    // The workspace's quota counts every block it keeps, at upload.
    let w = s.workspace_usage(ws).unwrap();
    s.set_workspace_quota("quota", Some(w.stored_bytes + 150), Some(100))
        .unwrap();
    let more = bref(ws, [21; 32]);
    s.register_block(&more, 100, 0).unwrap();
    assert!(matches!(
        s.register_block(&bref(ws, [22; 32]), 100, 0),
        Err(MetaError::Quota(_))
    ));
    // An upload of a block it already has is not growth.
    s.register_block(&more, 100, 0).unwrap();
    let q = s.quota_view(vol).unwrap();
    assert_eq!(
        (q.ws_max_bytes, q.ws_max_files),
        (w.stored_bytes + 150, 100)
    );
    assert_eq!(q.ws_inodes, s.workspace_usage(ws).unwrap().inodes);

    // Counters survive a snapshot, the trash and a restore.
    let snap = s.snapshot_volume(ws, "vol", "s", now()).unwrap();
    let sq = s.quota_view(snap.root).unwrap();
    let vq = s.quota_view(vol).unwrap();
    assert_eq!((sq.inodes, sq.stored), (vq.inodes, vq.stored));
    let id = s.volume(ws, "vol").unwrap().id;
    let keep = Retire {
        now_ms: 1,
        keep_ms: 1_000,
    };
    s.set_workspace_quota("quota", Some(0), Some(0)).unwrap();
    s.delete_volume(ws, "vol", keep).unwrap();
    let back = s.restore_trashed(ws, &id, None, now()).unwrap();
    let bq = s.quota_view(back.root).unwrap();
    // No quota applies any more: bytes are not counted, only summed on ask.
    assert_eq!((bq.inodes, bq.stored), (vq.inodes, 0));
    assert_eq!(s.volume_usage(back.root).unwrap().stored_bytes, vq.stored);

    // A quota set on a volume that has data counts what is there.
    let later = s.create_volume(ws, "later", now()).unwrap();
    for n in [&b"x"[..], b"y"] {
        let f = s
            .create(later.root, later.root, n, &file(0o644), true, &cx())
            .unwrap()
            .value;
        s.commit(later.root, f.ino, &[chunk(0, h1, 100)], 100, false, &cx())
            .unwrap();
    }
    s.set_volume_quota(ws, "later", Some(150), Some(2)).unwrap();
    let lq = s.quota_view(later.root).unwrap();
    assert_eq!((lq.inodes, lq.stored), (2, 100));
    assert!(matches!(
        s.create(later.root, later.root, b"z", &file(0o644), true, &cx()),
        Err(MetaError::Quota(_))
    ));
}

/// What a write, a truncate and a chown take from a file, as Linux has it
/// for local file systems (the mount leaves it to the store): new contents
/// and a new owner lose `security.capability`; a writer without CAP_FSETID
/// (`kill_suidgid`) loses S_ISUID, and S_ISGID of a group-executable file.
pub fn privileges_go_with_changes(s: &MetaStore) {
    let (ws, vol) = setup(s, "privs");
    let h = block(s, ws, 21);
    let caps = b"security.capability";
    let made = |name: &[u8], mode: u32| {
        let f = s
            .create(vol, vol, name, &file(mode), true, &cx())
            .unwrap()
            .value;
        s.set_xattr(vol, f.ino, caps, b"\x01\x00\x00\x02", XattrMode::Any, &cx())
            .unwrap();
        s.set_xattr(vol, f.ino, b"user.keep", b"x", XattrMode::Any, &cx())
            .unwrap();
        f.ino
    };
    let mode = |ino| s.getattr(vol, ino).unwrap().mode & 0o7777;
    let has_caps = |ino| s.get_xattr(vol, ino, caps).is_ok();

    // A write by root keeps the set-ID bits, not the capabilities.
    let a = made(b"a", 0o6755);
    s.commit(vol, a, &[chunk(0, h, 100)], 100, false, &cx())
        .unwrap();
    assert_eq!(mode(a), 0o6755);
    assert!(!has_caps(a));
    assert_eq!(s.get_xattr(vol, a, b"user.keep").unwrap(), b"x");

    // A write by anyone else loses both set-ID bits (group-executable).
    let b = made(b"b", 0o6755);
    let by_user = cx().killing_suidgid(true);
    s.commit(vol, b, &[], 10, false, &by_user).unwrap();
    assert_eq!(mode(b), 0o0755);
    assert!(!has_caps(b));
    // Without group execute, S_ISGID marks locking and stays.
    let c = made(b"c", 0o6745);
    s.commit(vol, c, &[], 10, false, &by_user).unwrap();
    assert_eq!(mode(c), 0o2745);

    // chown: capabilities go; set-ID bits go when asked (the mount asks
    // for every chown of a non-directory).
    let d = made(b"d", 0o4755);
    let chown = SetAttr {
        uid: Some(7),
        kill_suidgid: true,
        ..Default::default()
    };
    s.setattr(vol, d, &chown, &cx()).unwrap();
    assert_eq!(mode(d), 0o0755);
    assert!(!has_caps(d));
    // A chmod alone keeps the capabilities and sets what it says.
    let e = made(b"e", 0o755);
    let chmod = SetAttr {
        mode: Some(0o4750),
        ..Default::default()
    };
    s.setattr(vol, e, &chmod, &cx()).unwrap();
    assert_eq!(mode(e), 0o4750);
    assert!(has_caps(e));
    // A truncate takes the capabilities; a directory keeps its bits.
    let trunc = SetAttr {
        size: Some(0),
        kill_suidgid: true,
        ..Default::default()
    };
    s.setattr(vol, e, &trunc, &cx()).unwrap();
    assert_eq!(mode(e), 0o0750);
    assert!(!has_caps(e));
    let dir_ino = s
        .create(vol, vol, b"sgid-dir", &dir(0o2775), true, &cx())
        .unwrap()
        .value
        .ino;
    s.setattr(vol, dir_ino, &chown, &cx()).unwrap();
    assert_eq!(mode(dir_ino), 0o2775);
}
