//! The `MetaStore` conformance suite. Every backend runs every check here;
//! a new backend adds one `#[test]` that builds its store and calls `suite`.

use svol_meta::*;

fn now() -> Timespec {
    Timespec::now()
}

fn file(mode: u32) -> NewNode {
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
        s.drop_block(&b).unwrap();
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

fn setup(store: &MetaStore, ws_name: &str) -> (WorkspaceId, Ino) {
    let ws = store.create_workspace(ws_name).unwrap();
    let v = store.create_volume(ws.id, "vol", now()).unwrap();
    (ws.id, v.root)
}

fn tokens_and_volumes(s: &MetaStore) {
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
    let gone = s.delete_volume(ws.id, "data2").unwrap();
    assert_eq!(gone.value.root, v.root);
    assert!(s.volume(ws.id, "data2").is_err());
    s.create_volume(ws.id, "data2", now()).unwrap();
}

fn apps_and_lifetimes(s: &MetaStore) {
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
        .create(e1.root, e1.root, b"f", &file(0o644), true, now())
        .unwrap();
    let h = block(s, ws, 9);
    s.commit(e1.root, f.ino, &[chunk(0, h, 10)], 10, false, now())
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
        s.stop_app(other, &app.id, now()),
        Err(MetaError::NotFound(_))
    ));
    let out = s.stop_app(ws, &app.id, now()).unwrap();
    assert_eq!(out.value.state, AppState::Stopped);
    assert!(out.value.volumes.is_empty());
    assert_eq!(out.freed, vec![bref(ws, h)]);
    assert!(s.volume(ws, &e1.id).is_err());
    assert!(s.volume(ws, "kept").is_ok());
    assert!(matches!(
        s.create_ephemeral_volume(ws, &app.id, now()),
        Err(MetaError::Stale(_))
    ));
    assert!(s.stop_app(ws, &app.id, now()).is_ok(), "idempotent");

    // stopping a volume's app deletes the volume, like volume delete
    s.stop_app(ws, &kept.app, now()).unwrap();
    assert!(s.volume(ws, "kept").is_err());
    s.delete_volume(ws, "named").unwrap();
    assert_eq!(s.app(ws, &named.app).unwrap().state, AppState::Stopped);
    s.create_volume(ws, "named", now()).unwrap();

    // idle apps stop after the grace period unless a session holds them
    let idle = s.create_app(ws, "idle", 10_000).unwrap();
    let held = s.create_app(ws, "held", 10_000).unwrap();
    let hv = s.create_ephemeral_volume(ws, &held.id, now()).unwrap();
    s.open_session(&owner(ws), "se-h", hv.root, "", 20_000)
        .unwrap();
    // A session is its owner's: the same token may renew it, nobody else
    // may take it over, not even with the same workspace.
    s.open_session(&owner(ws), "se-h", hv.root, "", 20_000)
        .unwrap();
    let thief = SessionOwner {
        workspace: ws,
        token: [0xee; 32],
    };
    assert!(matches!(
        s.open_session(&thief, "se-h", hv.root, "", 90_000),
        Err(MetaError::PermissionDenied(_))
    ));
    assert!(matches!(
        s.open_session(&owner(ws), "se-h", named.root, "", 90_000),
        Err(MetaError::PermissionDenied(_))
    ));
    let info = s.session("se-h").unwrap();
    assert_eq!(
        (info.owner, info.volume, info.expires_ms),
        (owner(ws), hv.root, 20_000)
    );
    assert!(matches!(s.session("se-none"), Err(MetaError::NotFound(_))));
    assert!(matches!(
        s.open_session(&owner(other), "se-x", hv.root, &held.id, 20_000),
        Err(MetaError::NotFound(_))
    ));
    let early = s.stop_idle_apps(10_500, 1_000).unwrap();
    assert!(early.value.is_empty());
    let stopped = s.stop_idle_apps(15_000, 1_000).unwrap();
    let ids: Vec<_> = stopped.value.iter().map(|a| a.id.clone()).collect();
    assert_eq!(
        ids,
        vec![idle.id.clone()],
        "held app and volume apps keep running"
    );
    // the session ends at 21 000: the grace runs from then
    s.expire_sessions(21_000, None).unwrap();
    assert!(s.stop_idle_apps(21_500, 1_000).unwrap().value.is_empty());
    let late = s.stop_idle_apps(22_500, 1_000).unwrap();
    assert_eq!(late.value.len(), 1);
    assert_eq!(late.value[0].id, held.id);
    assert!(s.volume(ws, &hv.id).is_err());
    assert!(matches!(
        s.open_session(&owner(ws), "se-y", hv.root, &held.id, 30_000),
        Err(MetaError::Stale(_))
    ));
    let listed: Vec<_> = s.list_apps(ws).unwrap().into_iter().map(|a| a.id).collect();
    assert!(listed.contains(&held.id) && listed.contains(&idle.id));
    assert!(s.list_apps(other).unwrap().is_empty());
}

fn create_lookup_and_exclusive(s: &MetaStore) {
    let (_, vol) = setup(s, "c");
    let a = s.create(vol, vol, b"f", &file(0o644), true, now()).unwrap();
    assert_eq!(
        (a.kind, a.mode, a.nlink, a.size, a.uid, a.gid),
        (FileKind::Regular, 0o644, 1, 0, 1, 2)
    );
    assert_eq!(s.lookup(vol, vol, b"f").unwrap(), a);
    assert!(matches!(
        s.create(vol, vol, b"f", &file(0o644), true, now()),
        Err(MetaError::AlreadyExists(_))
    ));
    // O_CREAT without O_EXCL returns the existing file
    assert_eq!(
        s.create(vol, vol, b"f", &file(0o600), false, now())
            .unwrap()
            .ino,
        a.ino
    );
    assert!(matches!(
        s.create(vol, vol, b"f", &dir(0o755), false, now()),
        Err(MetaError::AlreadyExists(_))
    ));
    assert!(matches!(
        s.lookup(vol, vol, b"nope"),
        Err(MetaError::NotFound(_))
    ));
    for bad in [&b""[..], b".", b"..", b"a/b", b"a\0b"] {
        assert!(matches!(
            s.create(vol, vol, bad, &file(0o644), true, now()),
            Err(MetaError::InvalidArgument(_))
        ));
    }
    assert!(matches!(
        s.create(vol, vol, &[b'x'; 256], &file(0o644), true, now()),
        Err(MetaError::NameTooLong)
    ));
    assert!(matches!(
        s.create(vol, a.ino, b"x", &file(0o644), true, now()),
        Err(MetaError::NotDirectory)
    ));

    let d = s.create(vol, vol, b"d", &dir(0o2775), true, now()).unwrap();
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
            now(),
        )
        .unwrap();
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
            now(),
        )
        .unwrap();
    assert_eq!(l.size, 1);
    assert_eq!(s.readlink(vol, l.ino).unwrap(), b"f");
    assert_eq!(s.resolve(vol, "/d/sub").unwrap().ino, sub.ino);
    assert_eq!(s.resolve(vol, "").unwrap().ino, vol);
    assert!(matches!(
        s.resolve(vol, "/d/../f"),
        Err(MetaError::InvalidArgument(_))
    ));
}

fn unlink_rmdir_and_links(s: &MetaStore) {
    let (_, vol) = setup(s, "u");
    let f = s.create(vol, vol, b"f", &file(0o644), true, now()).unwrap();
    let d = s.create(vol, vol, b"d", &dir(0o755), true, now()).unwrap();
    let l = s.link(vol, f.ino, d.ino, b"f2", now()).unwrap();
    assert_eq!(l.nlink, 2);
    assert!(matches!(
        s.link(vol, d.ino, vol, b"dl", now()),
        Err(MetaError::PermissionDenied(_))
    ));
    assert!(matches!(
        s.link(vol, f.ino, vol, b"d", now()),
        Err(MetaError::AlreadyExists(_))
    ));
    assert!(matches!(
        s.unlink(vol, vol, b"d", false, now()),
        Err(MetaError::IsDirectory)
    ));
    assert!(matches!(
        s.unlink(vol, vol, b"f", true, now()),
        Err(MetaError::NotDirectory)
    ));
    assert!(matches!(
        s.unlink(vol, vol, b"d", true, now()),
        Err(MetaError::NotEmpty)
    ));
    s.unlink(vol, vol, b"f", false, now()).unwrap();
    assert_eq!(s.getattr(vol, f.ino).unwrap().nlink, 1);
    s.unlink(vol, d.ino, b"f2", false, now()).unwrap();
    assert!(
        s.getattr(vol, f.ino).is_err(),
        "inode gone with its last name"
    );
    s.unlink(vol, vol, b"d", true, now()).unwrap();
    assert_eq!(s.getattr(vol, vol).unwrap().nlink, 2);
    assert!(matches!(
        s.unlink(vol, vol, b"d", true, now()),
        Err(MetaError::NotFound(_))
    ));
}

fn unlinked_but_open(s: &MetaStore) {
    let (ws, vol) = setup(s, "o");
    s.open_session(&owner(ws), "se-1", vol, "", i64::MAX)
        .unwrap();
    let f = s.create(vol, vol, b"f", &file(0o644), true, now()).unwrap();
    let h = block(s, ws, 7);
    s.commit(vol, f.ino, &[chunk(0, h, 100)], 100, false, now())
        .unwrap();
    s.open(vol, "se-1", f.ino).unwrap();
    let out = s.unlink(vol, vol, b"f", false, now()).unwrap();
    assert!(out.freed.is_empty());
    let (a, ch) = s.open(vol, "", f.ino).unwrap();
    assert_eq!((a.nlink, a.size, ch.len()), (0, 100, 1));
    let out = s.release(vol, "se-1", f.ino).unwrap();
    assert_eq!(out.freed, vec![bref(ws, h)]);
    assert!(s.getattr(vol, f.ino).is_err());
    // a session that dies releases what it held open
    let g = s.create(vol, vol, b"g", &file(0o644), true, now()).unwrap();
    s.open_session(&owner(ws), "se-2", vol, "", 10).unwrap();
    s.open(vol, "se-2", g.ino).unwrap();
    s.unlink(vol, vol, b"g", false, now()).unwrap();
    assert!(s.getattr(vol, g.ino).is_ok());
    let ended = s.expire_sessions(11, None).unwrap();
    assert_eq!(ended.value, vec!["se-2".to_string()]);
    assert!(s.getattr(vol, g.ino).is_err());
}

fn rename_rules(s: &MetaStore) {
    let (_, vol) = setup(s, "r");
    let a = s.create(vol, vol, b"a", &file(0o644), true, now()).unwrap();
    let b = s.create(vol, vol, b"b", &file(0o644), true, now()).unwrap();
    let d = s.create(vol, vol, b"d", &dir(0o755), true, now()).unwrap();
    let e = s.create(vol, vol, b"e", &dir(0o755), true, now()).unwrap();
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
        s.rename(vol, vol, b"a", vol, b"b", noreplace, now()),
        Err(MetaError::AlreadyExists(_))
    ));
    let r = s.rename(vol, vol, b"a", vol, b"b", none, now()).unwrap();
    assert_eq!(r.value, Some(b.ino));
    assert!(s.getattr(vol, b.ino).is_err());
    assert_eq!(s.lookup(vol, vol, b"b").unwrap().ino, a.ino);
    assert!(matches!(
        s.rename(vol, vol, b"b", vol, b"d", none, now()),
        Err(MetaError::IsDirectory)
    ));
    assert!(matches!(
        s.rename(vol, vol, b"d", vol, b"b", none, now()),
        Err(MetaError::NotDirectory)
    ));
    // directory into another: link counts follow
    s.rename(vol, vol, b"d", e.ino, b"d", none, now()).unwrap();
    assert_eq!(s.getattr(vol, e.ino).unwrap().nlink, 3);
    assert_eq!(s.getattr(vol, vol).unwrap().nlink, 3);
    assert!(matches!(
        s.rename(vol, vol, b"e", d.ino, b"x", none, now()),
        Err(MetaError::InvalidArgument(_))
    ));
    // replace an empty directory, refuse a full one
    let f = s.create(vol, vol, b"f", &dir(0o755), true, now()).unwrap();
    assert!(matches!(
        s.rename(vol, vol, b"f", vol, b"e", none, now()),
        Err(MetaError::NotEmpty)
    ));
    s.rename(vol, e.ino, b"d", vol, b"f", none, now()).unwrap();
    assert!(s.getattr(vol, f.ino).is_err());
    // exchange a file and a directory
    s.rename(vol, vol, b"b", vol, b"f", exchange, now())
        .unwrap();
    assert_eq!(s.lookup(vol, vol, b"f").unwrap().ino, a.ino);
    assert_eq!(s.lookup(vol, vol, b"b").unwrap().ino, d.ino);
    assert!(matches!(
        s.rename(vol, vol, b"b", vol, b"zz", exchange, now()),
        Err(MetaError::NotFound(_))
    ));
    // rename onto another name of the same inode does nothing
    s.link(vol, a.ino, vol, b"a2", now()).unwrap();
    s.rename(vol, vol, b"f", vol, b"a2", none, now()).unwrap();
    assert_eq!(s.getattr(vol, a.ino).unwrap().nlink, 2);
}

fn readdir_paging(s: &MetaStore) {
    let (_, vol) = setup(s, "rd");
    for i in 0..250 {
        s.create(
            vol,
            vol,
            format!("f{i}").as_bytes(),
            &file(0o644),
            true,
            now(),
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

fn contents_truncate_and_block_refs(s: &MetaStore) {
    let (ws, vol) = setup(s, "b");
    let f = s.create(vol, vol, b"f", &file(0o644), true, now()).unwrap();
    let missing = [9u8; 32];
    assert!(matches!(
        s.commit(vol, f.ino, &[chunk(0, missing, 10)], 10, false, now()),
        Err(MetaError::MissingBlock(_))
    ));
    assert_eq!(
        s.missing_blocks(ws, &[[1; 32], [2; 32]]).unwrap(),
        vec![[1; 32], [2; 32]]
    );
    // Sizes past the largest file are refused, never stored wrapped.
    for end in [u64::MAX, MAX_FILE_SIZE + 1] {
        assert!(matches!(
            s.commit(vol, f.ino, &[], end, false, now()),
            Err(MetaError::FileTooLarge(_))
        ));
        let big = SetAttr {
            size: Some(end),
            ..Default::default()
        };
        assert!(matches!(
            s.setattr(vol, f.ino, &big, now()),
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
            now(),
        )
        .unwrap();
    assert_eq!(a.value.size, CHUNK_SIZE + 10);
    assert!(a.value.version > f.version);
    // an empty (fsync-only) commit changes nothing
    let same = s.commit(vol, f.ino, &[], 0, true, now()).unwrap();
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
        .create(ov.root, ov.root, b"f", &file(0o644), true, now())
        .unwrap();
    let stolen = s.commit(ov.root, of.ino, &[chunk(0, h1, 10)], 10, false, now());
    assert!(matches!(stolen, Err(MetaError::MissingBlock(_))));
    assert_eq!(s.missing_blocks(other.id, &[h1]).unwrap(), vec![h1]);
    // Once it uploads the bytes itself it holds its own block.
    s.register_block(&bref(other.id, h1), 100, 0).unwrap();
    s.commit(ov.root, of.ino, &[chunk(0, h1, 10)], 10, false, now())
        .unwrap();
    let mut owners = s.block_owners(&h1).unwrap();
    owners.sort();
    assert_eq!(owners, vec![ws, other.id]);
    let gone = s.delete_volume(other.id, "ov").unwrap();
    assert_eq!(gone.freed, vec![bref(other.id, h1)]);
    assert!(reap(s, bref(other.id, h1), 1));
    assert!(
        s.block_visible(ws, &h1).unwrap(),
        "the owner keeps its block"
    );
    // a server-side copy shares blocks
    let c = s.copy(vol, f.ino, vol, b"copy", now()).unwrap();
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
            now(),
        )
        .unwrap();
    assert_eq!(t.value.size, 5);
    assert!(t.freed.is_empty(), "the copy still holds both blocks");
    assert_eq!(s.chunks(vol, f.ino).unwrap(), vec![chunk(0, h1, 5)]);
    let gone = s.unlink(vol, vol, b"copy", false, now()).unwrap();
    assert_eq!(gone.freed, vec![bref(ws, h2)]);
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
            now(),
        )
        .unwrap();
    assert_eq!(
        out.freed,
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
            now(),
        )
        .unwrap();
    assert!(out.freed.is_empty());
    let h3 = block(s, ws, 3);
    let a = s
        .commit(vol, f.ino, &[chunk(100, h3, 1)], 0, false, now())
        .unwrap();
    assert_eq!(a.value.size, 100 * CHUNK_SIZE + 1);
    let v = s.delete_volume(ws, "vol").unwrap();
    assert_eq!(v.freed, vec![bref(ws, h3)]);
    // pending uploads expire
    let h4 = bref(ws, [4u8; 32]);
    s.register_block(&h4, 1, 1000).unwrap();
    assert!(!s.mark_block(&h4, 999).unwrap());
    assert!(s.expired_blocks(1001, 10).unwrap().contains(&h4));
    assert!(s.mark_block(&h4, 1001).unwrap());
    // A marked block is being deleted: no commit may reference it, and it
    // is offered again until its deletion finished.
    let v2 = s.create_volume(ws, "vol2", now()).unwrap();
    let f2 = s
        .create(v2.root, v2.root, b"f", &file(0o644), true, now())
        .unwrap();
    assert!(matches!(
        s.commit(v2.root, f2.ino, &[chunk(0, h4.hash, 1)], 1, false, now()),
        Err(MetaError::MissingBlock(_))
    ));
    assert!(!s.block_visible(ws, &h4.hash).unwrap());
    assert!(s.expired_blocks(1001, 10).unwrap().contains(&h4));
    // Uploaded again before the bytes were deleted: the mark is cleared.
    s.register_block(&h4, 1, 5000).unwrap();
    s.drop_block(&h4).unwrap();
    assert!(s.block_visible(ws, &h4.hash).unwrap());
    s.commit(v2.root, f2.ino, &[chunk(0, h4.hash, 1)], 1, false, now())
        .unwrap();
}

fn attributes_and_xattrs(s: &MetaStore) {
    let (_, vol) = setup(s, "x");
    let f = s.create(vol, vol, b"f", &file(0o644), true, now()).unwrap();
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
            now(),
        )
        .unwrap()
        .value;
    assert_eq!((a.mode, a.uid, a.gid, a.mtime), (0o4711, 7, 8, t));
    assert!(a.ctime > t);
    assert!(matches!(
        s.get_xattr(vol, f.ino, b"user.a"),
        Err(MetaError::NoData)
    ));
    s.set_xattr(vol, f.ino, b"user.a", b"1", XattrMode::Create, now())
        .unwrap();
    assert!(matches!(
        s.set_xattr(vol, f.ino, b"user.a", b"2", XattrMode::Create, now()),
        Err(MetaError::AlreadyExists(_))
    ));
    assert!(matches!(
        s.set_xattr(vol, f.ino, b"user.b", b"2", XattrMode::Replace, now()),
        Err(MetaError::NoData)
    ));
    s.set_xattr(vol, f.ino, b"user.a", b"3", XattrMode::Replace, now())
        .unwrap();
    s.set_xattr(vol, f.ino, b"user.b", b"", XattrMode::Any, now())
        .unwrap();
    assert_eq!(s.get_xattr(vol, f.ino, b"user.a").unwrap(), b"3");
    assert_eq!(
        s.list_xattr(vol, f.ino).unwrap(),
        vec![b"user.a".to_vec(), b"user.b".to_vec()]
    );
    s.remove_xattr(vol, f.ino, b"user.a", now()).unwrap();
    assert!(matches!(
        s.remove_xattr(vol, f.ino, b"user.a", now()),
        Err(MetaError::NoData)
    ));
    assert!(matches!(
        s.set_xattr(
            vol,
            f.ino,
            b"user.big",
            &vec![0; XATTR_VALUE_MAX + 1],
            XattrMode::Any,
            now()
        ),
        Err(MetaError::TooBig(_))
    ));
}

fn concurrent_exclusive_create(s: &MetaStore) {
    let (_, vol) = setup(s, "race");
    for round in 0..20 {
        let name = format!("lock{round}");
        let winners: usize = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..8)
                .map(|_| {
                    let name = name.clone();
                    sc.spawn(move || {
                        s.create(vol, vol, name.as_bytes(), &file(0o644), true, now())
                            .is_ok() as usize
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(winners, 1, "round {round}");
    }
}

fn suite(make: impl Fn() -> MetaStore) {
    tokens_and_volumes(&make());
    apps_and_lifetimes(&make());
    create_lookup_and_exclusive(&make());
    unlink_rmdir_and_links(&make());
    unlinked_but_open(&make());
    rename_rules(&make());
    readdir_paging(&make());
    contents_truncate_and_block_refs(&make());
    attributes_and_xattrs(&make());
    concurrent_exclusive_create(&make());
}

#[test]
fn sqlite_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let n = std::sync::atomic::AtomicU32::new(0);
    suite(|| {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        MetaStore::sqlite(&dir.path().join(format!("meta{i}.db"))).unwrap()
    });
}

#[test]
fn sqlite_two_handles_on_one_file_see_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("meta.db");
    let a = MetaStore::sqlite(&p).unwrap();
    let b = MetaStore::sqlite(&p).unwrap();
    let (_, vol) = setup(&a, "shared");
    let f = a.create(vol, vol, b"f", &file(0o644), true, now()).unwrap();
    assert_eq!(b.lookup(vol, vol, b"f").unwrap().ino, f.ino);
    assert!(matches!(
        b.create(vol, vol, b"f", &file(0o644), true, now()),
        Err(MetaError::AlreadyExists(_))
    ));
}

/// A database written by the first release (no apps, tokens without ids)
/// opens with its tokens and volumes intact.
#[test]
fn sqlite_upgrades_a_first_release_database() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("meta.db");
    {
        let c = rusqlite::Connection::open(&p).unwrap();
        c.execute_batch(
            "CREATE TABLE workspaces(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created INTEGER NOT NULL);
             CREATE TABLE tokens(hash BLOB PRIMARY KEY, workspace INTEGER NOT NULL, label TEXT NOT NULL,
                 revoked INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
             CREATE TABLE volumes(root INTEGER PRIMARY KEY, public_id TEXT NOT NULL UNIQUE,
                 workspace INTEGER NOT NULL, name TEXT NOT NULL, created INTEGER NOT NULL,
                 UNIQUE(workspace, name));
             CREATE TABLE inodes(ino INTEGER PRIMARY KEY AUTOINCREMENT, volume INTEGER NOT NULL,
                 kind INTEGER NOT NULL, mode INTEGER NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT NULL,
                 nlink INTEGER NOT NULL, size INTEGER NOT NULL, atime_s INTEGER NOT NULL,
                 atime_ns INTEGER NOT NULL, mtime_s INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
                 ctime_s INTEGER NOT NULL, ctime_ns INTEGER NOT NULL, rdev INTEGER NOT NULL,
                 version INTEGER NOT NULL, target BLOB);
             CREATE TABLE sessions(id TEXT PRIMARY KEY, volume INTEGER NOT NULL,
                 expires INTEGER NOT NULL) WITHOUT ROWID;
             CREATE TABLE dentries(id INTEGER PRIMARY KEY AUTOINCREMENT, parent INTEGER NOT NULL,
                 name BLOB NOT NULL, ino INTEGER NOT NULL, UNIQUE(parent, name));
             CREATE TABLE chunks(ino INTEGER NOT NULL, idx INTEGER NOT NULL, len INTEGER NOT NULL,
                 hash BLOB, data BLOB, PRIMARY KEY(ino, idx)) WITHOUT ROWID;
             CREATE TABLE blocks(hash BLOB PRIMARY KEY, size INTEGER NOT NULL, refs INTEGER NOT NULL,
                 pending_until INTEGER NOT NULL) WITHOUT ROWID;
             CREATE INDEX blocks_unreferenced ON blocks(pending_until) WHERE refs <= 0;
             INSERT INTO inodes VALUES (2, 1, 1, 420, 0, 0, 1, 10, 0, 0, 0, 0, 0, 0, 0, 1, NULL);
             INSERT INTO dentries(parent, name, ino) VALUES (1, x'66', 2);
             INSERT INTO chunks VALUES (2, 0, 10, x'0505050505050505050505050505050505050505050505050505050505050505', NULL);
             INSERT INTO blocks VALUES (x'0505050505050505050505050505050505050505050505050505050505050505', 10, 1, 0);
             INSERT INTO blocks VALUES (x'0606060606060606060606060606060606060606060606060606060606060606', 10, 0, 0);
             INSERT INTO workspaces VALUES (1, 'main', 0);
             INSERT INTO tokens(hash, workspace, label) VALUES (x'0101010101010101010101010101010101010101010101010101010101010101', 1, 'admin');
             INSERT INTO inodes VALUES (1, 1, 2, 493, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, NULL);
             INSERT INTO volumes VALUES (1, 'vo-old', 1, 'old', 0);",
        )
        .unwrap();
    }
    let s = MetaStore::sqlite(&p).unwrap();
    let g = s.authenticate(&[1; 32]).unwrap();
    assert!(g.admin);
    let v = s.volume(g.workspace, "old").unwrap();
    assert_eq!((v.root, v.ephemeral), (1, false));
    let app = s.app(g.workspace, &v.app).unwrap();
    assert_eq!((app.kind, app.volumes.len()), (AppKind::Volume, 1));
    assert!(s.list_tokens(g.workspace).unwrap()[0].id.starts_with("tk-"));
    // Blocks were shared by all workspaces; now the referencing one owns
    // each, and an unreferenced upload is forgotten.
    assert_eq!(s.block_owners(&[5; 32]).unwrap(), vec![g.workspace]);
    assert!(s.block_owners(&[6; 32]).unwrap().is_empty());
    let f = s.lookup(1, 1, b"f").unwrap();
    assert_eq!(s.chunks(1, f.ino).unwrap(), vec![chunk(0, [5; 32], 10)]);
    let gone = s.unlink(1, 1, b"f", false, now()).unwrap();
    assert_eq!(gone.freed, vec![bref(g.workspace, [5; 32])]);
    drop(s);
    // and opening it again does not migrate twice
    MetaStore::sqlite(&p).unwrap();
}
