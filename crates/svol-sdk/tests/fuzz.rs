//! Finding 2 of the trust issue: no request can end the server. Every RPC
//! is called with random and adversarial messages (proptest) against a
//! real server with a real SQLite store, for a fixed budget of cases; after
//! each case the server must still answer, and no handler may panic.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use proptest::prelude::*;
use svol_proto as p;
use svol_proto::svol_client::SvolClient;
use tonic::transport::Channel;

static PANICS: AtomicUsize = AtomicUsize::new(0);

/// Names that stress the tree's rules.
fn name() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        Just(Bytes::from_static(b"..")),
        Just(Bytes::from_static(b".")),
        Just(Bytes::from_static(b"")),
        Just(Bytes::from_static(b"a/b")),
        Just(Bytes::from_static(b"nul\0x")),
        Just(Bytes::from(vec![b'x'; 300])),
        "[a-c]{1,3}".prop_map(|s| Bytes::from(s.into_bytes())),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Bytes::from),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("fz".to_string()),
        Just(String::new()),
        Just("../etc".to_string()),
        Just("x".repeat(5000)),
        "[a-z0-9/._-]{0,20}",
        any::<String>(),
    ]
}

/// Inode numbers: the volume's first few, its root's neighbours, extremes.
fn ino() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..40,
        Just(u64::MAX),
        Just(i64::MAX as u64),
        any::<u64>()
    ]
}

fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn chunk() -> impl Strategy<Value = p::Chunk> {
    (
        prop_oneof![0u64..8, any::<u64>()],
        any::<u32>(),
        bytes(40),
        bytes(100),
    )
        .prop_map(|(index, len, hash, inline_data)| p::Chunk {
            index,
            len,
            hash,
            inline_data,
        })
}

fn time_set() -> impl Strategy<Value = Option<p::TimeSet>> {
    prop_oneof![
        Just(None),
        Just(Some(p::TimeSet {
            set: Some(p::time_set::Set::Now(true))
        })),
        (any::<i64>(), any::<u32>()).prop_map(|(sec, nsec)| Some(p::TimeSet {
            set: Some(p::time_set::Set::At(p::Timespec { sec, nsec }))
        })),
    ]
}

#[derive(Debug, Clone)]
enum Call {
    CreateVolume(String, String),
    GetVolume(String),
    DeleteVolume(String),
    RenameVolume(String, String),
    PersistVolume(String, String),
    CreateWorkspace(String),
    CreateToken(String, String, bool),
    RevokeToken(String),
    CreateApp(String),
    StopApp(String),
    Session(String, String, String),
    Lookup(u64, Bytes),
    GetAttr(u64),
    SetAttr(p::SetAttrRequest),
    Create(p::CreateRequest),
    CreateOpen(p::CreateRequest),
    Link(u64, u64, Bytes),
    Unlink(u64, Bytes, bool),
    Rename(u64, Bytes, u64, Bytes, u32),
    ReadDir(u64, u64, u32),
    ReadLink(u64),
    Open(u64),
    Release(u64),
    Commit(u64, Vec<p::Chunk>, u64, bool),
    Sync(u64),
    Xattr(u8, u64, Bytes, Bytes, u32),
    StatFs(String),
    Resolve(String),
    Copy(u64, u64, Bytes),
    Lock(p::LockRequest),
    MissingBlocks(Vec<Bytes>),
    PutBlock(Bytes, Bytes),
    GetBlock(Bytes),
    List(u8),
}

fn call() -> impl Strategy<Value = Call> {
    let kind = prop_oneof![0i32..9, any::<i32>()];
    prop_oneof![
        (text(), text()).prop_map(|(a, b)| Call::CreateVolume(a, b)),
        text().prop_map(Call::GetVolume),
        text().prop_map(Call::DeleteVolume),
        (text(), text()).prop_map(|(a, b)| Call::RenameVolume(a, b)),
        (text(), text()).prop_map(|(a, b)| Call::PersistVolume(a, b)),
        text().prop_map(Call::CreateWorkspace),
        (text(), text(), any::<bool>()).prop_map(|(a, b, c)| Call::CreateToken(a, b, c)),
        text().prop_map(Call::RevokeToken),
        text().prop_map(Call::CreateApp),
        text().prop_map(Call::StopApp),
        (text(), text(), text()).prop_map(|(a, b, c)| Call::Session(a, b, c)),
        (ino(), name()).prop_map(|(a, b)| Call::Lookup(a, b)),
        ino().prop_map(Call::GetAttr),
        (
            ino(),
            proptest::option::of(any::<u32>()),
            proptest::option::of(any::<u32>()),
            proptest::option::of(prop_oneof![0u64..(16 << 20), any::<u64>()]),
            time_set(),
            time_set()
        )
            .prop_map(|(ino, mode, uid, size, atime, mtime)| Call::SetAttr(
                p::SetAttrRequest {
                    volume: "fz".into(),
                    ino,
                    mode,
                    uid,
                    gid: uid,
                    size,
                    atime,
                    mtime,
                    // Now and then a fencing token nobody was granted.
                    fence: size.filter(|s| s % 8 == 7).unwrap_or(0),
                    kill_suidgid: mode.is_some_and(|m| m % 2 == 0),
                }
            )),
        (
            ino(),
            name(),
            kind.clone(),
            any::<u32>(),
            any::<u32>(),
            bytes(5000),
            any::<bool>()
        )
            .prop_map(|(parent, name, kind, mode, rdev, target, exclusive)| {
                Call::Create(p::CreateRequest {
                    volume: "fz".into(),
                    parent,
                    name,
                    kind,
                    mode,
                    uid: 0,
                    gid: 0,
                    rdev,
                    symlink_target: target,
                    exclusive,
                })
            }),
        (ino(), name(), any::<bool>()).prop_map(|(parent, name, exclusive)| {
            Call::CreateOpen(p::CreateRequest {
                volume: "fz".into(),
                parent,
                name,
                kind: 1,
                mode: 0o644,
                exclusive,
                ..Default::default()
            })
        }),
        (ino(), ino(), name()).prop_map(|(a, b, c)| Call::Link(a, b, c)),
        (ino(), name(), any::<bool>()).prop_map(|(a, b, c)| Call::Unlink(a, b, c)),
        (ino(), name(), ino(), name(), any::<u32>())
            .prop_map(|(a, b, c, d, e)| Call::Rename(a, b, c, d, e)),
        (ino(), any::<u64>(), any::<u32>()).prop_map(|(a, b, c)| Call::ReadDir(a, b, c)),
        ino().prop_map(Call::ReadLink),
        ino().prop_map(Call::Open),
        ino().prop_map(Call::Release),
        (
            ino(),
            proptest::collection::vec(chunk(), 0..6),
            prop_oneof![0u64..(64 << 20), any::<u64>()],
            any::<bool>()
        )
            .prop_map(|(a, b, c, d)| Call::Commit(a, b, c, d)),
        ino().prop_map(Call::Sync),
        (any::<u8>(), ino(), name(), bytes(70_000), any::<u32>())
            .prop_map(|(a, b, c, d, e)| Call::Xattr(a, b, c, d, e)),
        text().prop_map(Call::StatFs),
        text().prop_map(Call::Resolve),
        (ino(), ino(), name()).prop_map(|(a, b, c)| Call::Copy(a, b, c)),
        (
            ino(),
            any::<u64>(),
            any::<i32>(),
            any::<u64>(),
            any::<u64>(),
            any::<bool>(),
            any::<bool>()
        )
            .prop_map(|(ino, owner, kind, start, end, wait, test)| Call::Lock(
                p::LockRequest {
                    volume: "fz".into(),
                    ino,
                    owner,
                    kind,
                    start,
                    end,
                    pid: 1,
                    wait,
                    test,
                }
            )),
        proptest::collection::vec(bytes(40), 0..20).prop_map(Call::MissingBlocks),
        (bytes(40), bytes(5000)).prop_map(|(a, b)| Call::PutBlock(a, b)),
        bytes(40).prop_map(Call::GetBlock),
        any::<u8>().prop_map(Call::List),
    ]
}

struct Rpc {
    c: SvolClient<Channel>,
    auth: tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
    session: Option<String>,
}

impl Rpc {
    fn req<T>(&self, m: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(m);
        r.metadata_mut().insert("authorization", self.auth.clone());
        if let Some(s) = self.session.as_ref().and_then(|s| s.parse().ok()) {
            r.metadata_mut().insert(p::SESSION_HEADER, s);
        }
        r
    }

    /// Sends one call; whether it is accepted does not matter, only that
    /// the server survives it. Returns whether it was.
    async fn send(&mut self, call: Call) -> bool {
        let mut c = self.c.clone();
        let fut = async {
            match call {
                Call::CreateVolume(name, app) => c
                    .create_volume(self.req(p::CreateVolumeRequest {
                        name,
                        ephemeral_app: app,
                    }))
                    .await
                    .map(|_| ()),
                Call::GetVolume(name) => c
                    .get_volume(self.req(p::GetVolumeRequest { name }))
                    .await
                    .map(|_| ()),
                Call::DeleteVolume(name) => c
                    .delete_volume(self.req(p::DeleteVolumeRequest { name, force: false }))
                    .await
                    .map(|_| ()),
                Call::RenameVolume(name, new_name) => c
                    .rename_volume(self.req(p::RenameVolumeRequest { name, new_name }))
                    .await
                    .map(|_| ()),
                Call::PersistVolume(volume, name) => c
                    .persist_volume(self.req(p::PersistVolumeRequest { volume, name }))
                    .await
                    .map(|_| ()),
                Call::CreateWorkspace(name) => c
                    .create_workspace(self.req(p::CreateWorkspaceRequest { name }))
                    .await
                    .map(|_| ()),
                Call::CreateToken(name, workspace, admin) => c
                    .create_token(self.req(p::CreateTokenRequest {
                        name,
                        workspace,
                        admin,
                    }))
                    .await
                    .map(|_| ()),
                Call::RevokeToken(token) => c
                    .revoke_token(self.req(p::RevokeTokenRequest { token }))
                    .await
                    .map(|_| ()),
                Call::CreateApp(name) => c
                    .create_app(self.req(p::CreateAppRequest { name }))
                    .await
                    .map(|_| ()),
                Call::StopApp(app) => c.stop_app(self.req(p::AppRef { app })).await.map(|_| ()),
                Call::Session(volume, resume, app) => {
                    let hello = p::SessionUp {
                        msg: Some(p::session_up::Msg::Hello(p::Hello {
                            volume,
                            resume_session: resume,
                            app,
                            ..Default::default()
                        })),
                    };
                    let beat = p::SessionUp {
                        msg: Some(p::session_up::Msg::Heartbeat(p::Heartbeat { n: 1 })),
                    };
                    let bye = p::SessionUp {
                        msg: Some(p::session_up::Msg::Bye(p::Bye {})),
                    };
                    let up =
                        futures::stream::iter(vec![hello, beat, p::SessionUp { msg: None }, bye]);
                    match c.session(self.req(up)).await {
                        Ok(r) => {
                            let mut down = r.into_inner();
                            while let Ok(Some(m)) = down.message().await {
                                if let Some(p::session_down::Msg::Welcome(w)) = m.msg {
                                    self.session = Some(w.session);
                                }
                            }
                            Ok(())
                        }
                        Err(e) => Err(e),
                    }
                }
                Call::Lookup(parent, name) => c
                    .lookup(self.req(p::LookupRequest {
                        volume: "fz".into(),
                        parent,
                        name,
                    }))
                    .await
                    .map(|_| ()),
                Call::GetAttr(ino) => c
                    .get_attr(self.req(p::InodeRequest {
                        volume: "fz".into(),
                        ino,
                    }))
                    .await
                    .map(|_| ()),
                Call::SetAttr(r) => c.set_attr(self.req(r)).await.map(|_| ()),
                Call::Create(r) => c.create(self.req(r)).await.map(|_| ()),
                Call::CreateOpen(r) => c.create_open(self.req(r)).await.map(|_| ()),
                Call::Link(ino, new_parent, new_name) => c
                    .link(self.req(p::LinkRequest {
                        volume: "fz".into(),
                        ino,
                        new_parent,
                        new_name,
                    }))
                    .await
                    .map(|_| ()),
                Call::Unlink(parent, name, directory) => c
                    .unlink(self.req(p::UnlinkRequest {
                        volume: "fz".into(),
                        parent,
                        name,
                        directory,
                    }))
                    .await
                    .map(|_| ()),
                Call::Rename(parent, name, new_parent, new_name, flags) => c
                    .rename(self.req(p::RenameRequest {
                        volume: "fz".into(),
                        parent,
                        name,
                        new_parent,
                        new_name,
                        flags,
                    }))
                    .await
                    .map(|_| ()),
                Call::ReadDir(ino, after, limit) => c
                    .read_dir(self.req(p::ReadDirRequest {
                        volume: "fz".into(),
                        ino,
                        after,
                        limit,
                        watch: after % 2 == 0,
                    }))
                    .await
                    .map(|_| ()),
                Call::ReadLink(ino) => c
                    .read_link(self.req(p::InodeRequest {
                        volume: "fz".into(),
                        ino,
                    }))
                    .await
                    .map(|_| ()),
                Call::Open(ino) => c
                    .open(self.req(p::OpenRequest {
                        volume: "fz".into(),
                        ino,
                        peek: vec![ino, ino.wrapping_add(1), u64::MAX],
                    }))
                    .await
                    .map(|_| ()),
                Call::Release(ino) => c
                    .release(self.req(p::InodeRequest {
                        volume: "fz".into(),
                        ino,
                    }))
                    .await
                    .map(|_| ()),
                Call::Commit(ino, chunks, write_end, durable) => c
                    .commit(self.req(p::CommitRequest {
                        volume: "fz".into(),
                        ino,
                        chunks,
                        write_end,
                        durable,
                        fence: if write_end % 8 == 7 { write_end } else { 0 },
                        kill_suidgid: write_end % 3 == 0,
                        time: None,
                    }))
                    .await
                    .map(|_| ()),
                Call::Sync(ino) => c
                    .sync(self.req(p::InodeRequest {
                        volume: "fz".into(),
                        ino,
                    }))
                    .await
                    .map(|_| ()),
                Call::Xattr(op, ino, name, value, flags) => {
                    let r = p::XattrRequest {
                        volume: "fz".into(),
                        ino,
                        name,
                        value,
                        flags,
                    };
                    match op % 4 {
                        0 => c.get_xattr(self.req(r)).await.map(|_| ()),
                        1 => c.set_xattr(self.req(r)).await.map(|_| ()),
                        2 => c.remove_xattr(self.req(r)).await.map(|_| ()),
                        _ => c
                            .list_xattr(self.req(p::InodeRequest {
                                volume: "fz".into(),
                                ino,
                            }))
                            .await
                            .map(|_| ()),
                    }
                }
                Call::StatFs(volume) => c
                    .stat_fs(self.req(p::VolumeRef { volume }))
                    .await
                    .map(|_| ()),
                Call::Resolve(path) => c
                    .resolve(self.req(p::ResolveRequest {
                        volume: "fz".into(),
                        path,
                    }))
                    .await
                    .map(|_| ()),
                Call::Copy(src, dst_parent, dst_name) => c
                    .copy(self.req(p::CopyRequest {
                        volume: "fz".into(),
                        src,
                        dst_parent,
                        dst_name,
                    }))
                    .await
                    .map(|_| ()),
                Call::Lock(r) => c.lock(self.req(r)).await.map(|_| ()),
                Call::MissingBlocks(hashes) => c
                    .missing_blocks(self.req(p::MissingBlocksRequest { hashes }))
                    .await
                    .map(|_| ()),
                Call::PutBlock(hash, data) => c
                    .put_block(self.req(p::PutBlockRequest { hash, data }))
                    .await
                    .map(|_| ()),
                Call::GetBlock(hash) => c
                    .get_block(self.req(p::GetBlockRequest { hash }))
                    .await
                    .map(|_| ()),
                Call::List(k) => match k % 5 {
                    0 => c
                        .list_volumes(self.req(p::ListVolumesRequest {}))
                        .await
                        .map(|_| ()),
                    1 => c.list_workspaces(self.req(p::Empty {})).await.map(|_| ()),
                    2 => c.list_tokens(self.req(p::Empty {})).await.map(|_| ()),
                    3 => c.list_apps(self.req(p::Empty {})).await.map(|_| ()),
                    _ => {
                        // A stranger's session id, or none, on later calls.
                        self.session = (k % 2 == 0).then(|| format!("se-{k}"));
                        Ok(())
                    }
                },
            }
            .is_ok()
        };
        // A lock wait may legitimately wait forever: give up on it.
        matches!(
            tokio::time::timeout(Duration::from_secs(2), fut).await,
            Ok(true)
        )
    }
}

#[test]
fn every_rpc_survives_random_and_adversarial_messages() {
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        prev(info);
    }));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let s = rt.block_on(server());
    let c = rt.block_on(client(&s));
    c.set_session("");
    let channel = rt
        .block_on(
            Channel::from_shared(format!("http://{}", s.addr))
                .unwrap()
                .connect(),
        )
        .unwrap();
    let raw = SvolClient::new(channel)
        .max_decoding_message_size(p::MAX_MESSAGE)
        .max_encoding_message_size(p::MAX_MESSAGE);
    let auth: tonic::metadata::MetadataValue<_> = format!("Bearer {}", s.token).parse().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(AtomicUsize::new(0));
    let cases: u32 = std::env::var("SVOL_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1500);
    let cfg = ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(cfg, |(batch in proptest::collection::vec(call(), 1..30))| {
        let (calls, accepted) = (calls.clone(), accepted.clone());
        rt.block_on(async {
            // A volume the calls can work on (it may be deleted by them).
            let _ = c.create_volume("fz").await;
            let mut rpc = Rpc { c: raw.clone(), auth: auth.clone(), session: None };
            for call in batch {
                if rpc.send(call).await {
                    accepted.fetch_add(1, Ordering::Relaxed);
                }
                calls.fetch_add(1, Ordering::Relaxed);
            }
            // Still serving, and nothing panicked.
            c.list_volumes().await.expect("the server still answers");
        });
        prop_assert_eq!(PANICS.load(Ordering::SeqCst), 0, "a handler panicked");
    });
    let (n, ok) = (
        calls.load(Ordering::Relaxed),
        accepted.load(Ordering::Relaxed),
    );
    eprintln!("{n} calls in {cases} cases, {ok} accepted");
    // The messages must reach real work, not only argument checks.
    assert!(ok * 10 > n, "only {ok} of {n} calls were accepted");
}
