//! The SQLite backend: the shared conformance suite, plus what only a
//! file-backed store has (two handles on one file, upgrades of old files).

use svol_meta::conformance::{cx, file, setup};
use svol_meta::*;

fn fresh() -> (MetaStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = MetaStore::sqlite(&dir.path().join("meta.db")).unwrap();
    (store, dir)
}

svol_meta::meta_conformance!(fresh());

#[test]
fn sqlite_two_handles_on_one_file_see_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("meta.db");
    let a = MetaStore::sqlite(&p).unwrap();
    let b = MetaStore::sqlite(&p).unwrap();
    let (_, vol) = setup(&a, "shared");
    let f = a
        .create(vol, vol, b"f", &file(0o644), true, &cx())
        .unwrap()
        .value;
    assert_eq!(b.lookup(vol, vol, b"f").unwrap().ino, f.ino);
    assert!(matches!(
        b.create(vol, vol, b"f", &file(0o644), true, &cx()),
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
    assert_eq!(
        s.chunks(1, f.ino).unwrap(),
        vec![Chunk {
            index: 0,
            len: 10,
            data: ChunkData::Block([5; 32])
        }]
    );
    let gone = s.unlink(1, 1, b"f", false, &cx()).unwrap();
    assert_eq!(
        gone.changes.freed,
        vec![BlockRef {
            workspace: g.workspace,
            hash: [5; 32]
        }]
    );
    // Sessions now say who their client is.
    let owner = SessionOwner {
        workspace: g.workspace,
        token: [1; 32],
    };
    let client = SessionClient {
        host: "old-host".into(),
        ..Default::default()
    };
    s.open_session(&owner, "se-new", 1, "", &client, i64::MAX)
        .unwrap();
    assert_eq!(s.live_sessions(None, 0).unwrap()[0].client.host, "old-host");
    drop(s);
    // and opening it again does not migrate twice
    MetaStore::sqlite(&p).unwrap();
}
