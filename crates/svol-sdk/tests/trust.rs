//! What one workspace can do to another, and what any request can do to
//! the server: raw RPCs against a real server with a real SQLite store.

mod common;

use bytes::Bytes;
use common::*;
use svol_proto as p;
use svol_sdk::ClientError;

/// The status text of a failed call, with the hash it names blanked out,
/// so two refusals can be compared for what they reveal.
fn refusal(e: ClientError, hash: &[u8]) -> String {
    let full = hex::encode(hash);
    e.to_string()
        .replace(&full, "<hash>")
        .replace(&full[..16], "<hash>")
}

/// Finding 1: W1 references W2's block hashes in a commit (no upload) and
/// asks for them by hash. Both are refused exactly as for a hash nobody
/// holds; W2's data stays W2's; dedup still works within W2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_cannot_use_or_probe_another_workspaces_blocks() {
    let s = server().await;
    let admin = client(&s).await;
    admin.create_workspace("w2").await.unwrap();
    let t2 = admin
        .create_token("w2-user", Some("w2"), false)
        .await
        .unwrap();
    let w2 = client_with(&s, &t2.token).await;
    w2.create_volume("secret").await.unwrap();
    let secret = w2.volume("secret").await.unwrap();
    let data = pattern(5 << 20, 42);
    secret
        .write_file("/weights.bin", data.clone())
        .await
        .unwrap();
    let f = secret.resolve("/weights.bin").await.unwrap();
    let chunks = secret.open(f.ino).await.unwrap().chunks;
    secret.release(f.ino).await.unwrap();
    assert_eq!(chunks.len(), 2);
    let stolen_hash = chunks[0].hash.clone();
    assert_eq!(stolen_hash.len(), 32);

    // W1 (workspace main) tries to graft W2's chunks into its own file.
    admin.create_volume("mine").await.unwrap();
    let mine = admin.volume("mine").await.unwrap();
    let mut req = svol_sdk::NewNode {
        parent: mine.root(),
        name: Bytes::from_static(b"loot"),
        kind: svol_sdk::FileKind::Regular,
        mode: 0o644,
        exclusive: true,
        ..Default::default()
    };
    let loot = mine.create(req.clone()).await.unwrap();
    let stolen = mine
        .commit(loot.ino, commit(chunks.clone(), 5 << 20))
        .await
        .unwrap_err();
    let invented = [0x5au8; 32];
    let mut fake = chunks[0].clone();
    fake.hash = Bytes::copy_from_slice(&invented);
    let unknown = mine
        .commit(loot.ino, commit(vec![fake], 4 << 20))
        .await
        .unwrap_err();
    assert_eq!(
        refusal(stolen, &stolen_hash),
        refusal(unknown, &invented),
        "a foreign hash is refused exactly like an unknown one"
    );
    assert_eq!(mine.getattr(loot.ino).await.unwrap().size, 0);

    // Reading by hash, and asking which blocks are missing.
    let by_hash = mine.get_block(stolen_hash.clone()).await.unwrap_err();
    let by_invented = mine
        .get_block(Bytes::copy_from_slice(&invented))
        .await
        .unwrap_err();
    assert_eq!(
        refusal(by_hash, &stolen_hash),
        refusal(by_invented, &invented)
    );
    let missing = mine
        .missing_blocks(vec![stolen_hash.clone()])
        .await
        .unwrap();
    assert_eq!(
        missing,
        vec![stolen_hash.clone()],
        "W1 must upload it itself"
    );

    // W1 uploading the same bytes gets its own block, and W2 loses nothing
    // when W1 deletes it.
    req.name = Bytes::from_static(b"same");
    mine.write_file("/same.bin", data.clone()).await.unwrap();
    admin.delete_volume("mine", false).await.unwrap();
    assert_eq!(secret.read_file("/weights.bin").await.unwrap(), data);

    // Dedup within W2 still stores nothing new.
    let before = w2.bytes_uploaded();
    secret
        .batch_upload(false)
        .put_data(data.clone(), "/again.bin")
        .commit()
        .await
        .unwrap();
    assert_eq!(
        w2.bytes_uploaded(),
        before,
        "identical data is not sent again"
    );
    assert_eq!(secret.read_file("/again.bin").await.unwrap(), data);
}

/// Finding 2: a server-side copy of a 100,000-deep directory chain is done
/// without recursion (or refused), and the server keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copying_a_100000_deep_chain_does_not_crash_the_server() {
    const DEPTH: usize = 100_000;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    {
        // Built straight in the store: 100,000 mkdir RPCs would take minutes.
        let m = svol_meta::MetaStore::sqlite(&dir.path().join("data/meta.db")).unwrap();
        let ws = m.create_workspace("main").unwrap();
        let v = m
            .create_volume(ws.id, "deep", svol_meta::Timespec::now())
            .unwrap();
        let node = svol_meta::NewNode {
            kind: svol_meta::FileKind::Directory,
            mode: 0o755,
            uid: 0,
            gid: 0,
            rdev: 0,
            target: vec![],
        };
        let mut parent = v.root;
        for _ in 0..DEPTH {
            parent = m
                .create(
                    v.root,
                    parent,
                    b"d",
                    &node,
                    true,
                    &svol_meta::Cx::at(svol_meta::Timespec::now()),
                )
                .unwrap()
                .value
                .ino;
        }
        let leaf = svol_meta::NewNode {
            kind: svol_meta::FileKind::Regular,
            mode: 0o644,
            ..node
        };
        m.create(
            v.root,
            parent,
            b"leaf",
            &leaf,
            true,
            &svol_meta::Cx::at(svol_meta::Timespec::now()),
        )
        .unwrap();
    }
    let s = server_on(dir).await;
    let c = client(&s).await;
    let vol = c.volume("deep").await.unwrap();
    let top = vol.lookup(vol.root(), b"d").await.unwrap();
    let res = vol.copy(top.ino, vol.root(), b"copy").await;
    // Either outcome is clean; this store copies up to 250,000 entries.
    let copied = res.expect("a 100,001-entry copy is within the limit");
    assert_eq!(copied.kind, svol_sdk::FileKind::Directory);
    let info = c.volume_info("deep").await.unwrap();
    assert_eq!(info.files, 2, "the leaf file was copied");
    // Walk the copy down to its leaf (in-process: 100,000 RPCs take long).
    let m = svol_meta::MetaStore::sqlite(&s.dir.path().join("data/meta.db")).unwrap();
    let mut at = copied.ino;
    for _ in 1..DEPTH {
        at = m.lookup(vol.root(), at, b"d").unwrap().ino;
    }
    m.lookup(vol.root(), at, b"leaf").unwrap();
    // The server still answers.
    assert!(c
        .list_volumes()
        .await
        .unwrap()
        .iter()
        .any(|v| v.name == "deep"));
}

/// Opens a session stream on `vol` (resuming `resume` if not empty) and
/// returns the id the server welcomed it with, keeping the stream alive.
async fn open_session(
    vol: &svol_sdk::Volume,
    resume: &str,
) -> Result<(String, svol_sdk::SessionStream), ClientError> {
    let hello = svol_sdk::SessionUp::Hello {
        volume: vol.info().id.clone(),
        resume_session: resume.to_string(),
        app: String::new(),
        host: "trust-test".into(),
        purpose: "raw session".into(),
    };
    let up = futures::stream::iter(vec![hello]).chain(futures::stream::pending());
    let mut down = vol.client().session(up).await?;
    match down.message().await? {
        Some(svol_sdk::SessionDown::Welcome(w)) => Ok((w.session, down)),
        other => panic!("no welcome: {other:?}"),
    }
}

use futures::StreamExt;

/// Finding 6: sessions are made by the server and bound to the token that
/// opened them. Another workspace cannot resume one or act through one,
/// and an invented id opens nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_belong_to_the_token_that_opened_them() {
    let s = server().await;
    let admin = client(&s).await;
    admin.create_workspace("w2").await.unwrap();
    let t2 = admin.create_token("w2", Some("w2"), false).await.unwrap();
    let w2 = client_with(&s, &t2.token).await;
    w2.create_volume("v2").await.unwrap();
    let v2 = w2.volume("v2").await.unwrap();
    v2.write_file("/f", &b"w2 data"[..]).await.unwrap();
    let (sid, _stream) = open_session(&v2, "").await.unwrap();
    assert!(
        sid.starts_with("se-") && sid.len() > 30,
        "server-made id {sid}"
    );
    // A client-chosen id is never taken: resuming one that does not exist
    // yields a fresh id.
    let (fresh, _s2) = open_session(&v2, "se-chosen-by-client").await.unwrap();
    assert_ne!(fresh, "se-chosen-by-client");
    // Its own token resumes it.
    let (again, _s3) = open_session(&v2, &sid).await.unwrap();
    assert_eq!(again, sid);

    // W1 tries to resume W2's session on its own volume and on W2's.
    admin.create_volume("v1").await.unwrap();
    let v1 = admin.volume("v1").await.unwrap();
    let err = open_session(&v1, &sid).await.unwrap_err();
    assert!(
        matches!(err, ClientError::PermissionDenied(_)),
        "resume of a foreign session: {err:?}"
    );
    // W1 acts through W2's session id on its own volume.
    v1.write_file("/mine", &b"x"[..]).await.unwrap();
    let mine = v1.resolve("/mine").await.unwrap();
    admin.set_session(&sid);
    let err = v1.open(mine.ino).await.unwrap_err();
    assert!(err.to_string().contains("session"), "{err}");
    // ... and so is every other call on a volume: reads, changes, locks.
    let root = v1.root();
    let refused = |what: &str, r: Result<(), ClientError>| match r {
        Err(e) => assert!(e.to_string().contains("session"), "{what}: {e}"),
        Ok(()) => panic!("{what} went through a foreign session"),
    };
    refused("lookup", v1.lookup(root, b"mine").await.map(|_| ()));
    refused("getattr", v1.getattr(mine.ino).await.map(|_| ()));
    refused("readdir", v1.readdir(root, 0, 10).await.map(|_| ()));
    refused("resolve", v1.resolve("/mine").await.map(|_| ()));
    refused(
        "commit",
        v1.commit(mine.ino, commit(vec![], 100)).await.map(|_| ()),
    );
    refused(
        "setattr",
        v1.setattr(
            mine.ino,
            svol_sdk::SetAttr {
                size: Some(0),
                ..Default::default()
            },
        )
        .await
        .map(|_| ()),
    );
    refused(
        "set_xattr",
        v1.set_xattr(mine.ino, b"user.x", b"1", 0).await,
    );
    refused("unlink", v1.unlink(root, b"mine", false).await.map(|_| ()));
    refused(
        "rename",
        v1.rename(root, b"mine", root, b"theirs", 0)
            .await
            .map(|_| ()),
    );
    refused(
        "lock",
        v1.lock(svol_sdk::LockRequest {
            ino: mine.ino,
            owner: 0,
            kind: svol_sdk::LockKind::Write,
            start: 0,
            end: u64::MAX,
            pid: 0,
            wait: false,
            test: false,
        })
        .await
        .map(|_| ()),
    );
    refused("sync", v1.sync(mine.ino).await);
    // An invented session id opens nothing either.
    admin.set_session("se-0000000000000000000000000000000000000000");
    assert!(v1.open(mine.ino).await.is_err());
    admin.set_session("");
    assert!(v1.open(mine.ino).await.is_ok());
    // Nothing went through: the file is as it was.
    assert_eq!(v1.read_file("/mine").await.unwrap(), b"x");
    // W2, through its own session, is unaffected.
    w2.set_session(&sid);
    let f = v2.resolve("/f").await.unwrap();
    v2.open(f.ino).await.unwrap();
    v2.release(f.ino).await.unwrap();
}

/// Finding 4: the token is checked on the headers, before the body is
/// read. A request with a wrong token and a body over the message limit is
/// refused for its token — were the body decoded first, the size limit
/// would answer instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_refused_before_the_body_is_read() {
    let s = server().await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", s.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut raw = p::svol_client::SvolClient::new(channel).max_encoding_message_size(64 << 20);
    let big = p::PutBlockRequest {
        hash: Bytes::from(vec![0u8; 32]),
        data: Bytes::from(vec![7u8; p::MAX_MESSAGE + (4 << 20)]),
    };
    let mut req = tonic::Request::new(big.clone());
    req.metadata_mut()
        .insert("authorization", "Bearer svol_wrong".parse().unwrap());
    let err = raw.put_block(req).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
    // With the right token the same body is refused for its size.
    let mut req = tonic::Request::new(big);
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", s.token).parse().unwrap(),
    );
    let err = raw.put_block(req).await.unwrap_err();
    assert_ne!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
    assert_ne!(err.code(), tonic::Code::Ok);
}

/// An open may peek at other small files' contents; it must reach only
/// the opened volume's regular files, at most 64 of them, and pin none of
/// them against deletion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peeks_reach_only_small_files_of_the_opened_volume() {
    let s = server().await;
    let admin = client(&s).await;
    admin.create_workspace("w2").await.unwrap();
    let t2 = admin
        .create_token("w2-peek", Some("w2"), false)
        .await
        .unwrap();
    let w2 = client_with(&s, &t2.token).await;
    w2.create_volume("secret").await.unwrap();
    let secret = w2.volume("secret").await.unwrap();
    let theirs = secret.write_file("/key", &b"w2's key"[..]).await.unwrap();
    admin.create_volume("other").await.unwrap();
    let other = admin.volume("other").await.unwrap();
    let sibling = other.write_file("/s", &b"other volume"[..]).await.unwrap();

    admin.create_volume("mine").await.unwrap();
    let mine = admin.volume("mine").await.unwrap();
    let opened = mine.write_file("/a", &b"a"[..]).await.unwrap();
    let small = mine.write_file("/b", &b"bee"[..]).await.unwrap();
    let dir = mine.mkdirs("/d").await.unwrap();
    let resp = mine
        .open_peeking(
            opened.ino,
            vec![
                theirs.ino,
                sibling.ino,
                dir,
                small.ino,
                u64::MAX,
                opened.ino,
            ],
        )
        .await
        .unwrap();
    mine.release(opened.ino).await.unwrap();
    let got: Vec<u64> = resp.peeked.iter().map(|p| p.attr.ino).collect();
    assert_eq!(got, vec![small.ino], "only the opened volume's small file");
    let inline: Vec<u8> = resp.peeked[0]
        .chunks
        .iter()
        .flat_map(|c| c.inline_data.iter().copied())
        .collect();
    assert_eq!(inline, b"bee");

    let too_many = mine
        .open_peeking(opened.ino, (1..=svol_sdk::MAX_PEEK as u64 + 1).collect())
        .await
        .unwrap_err();
    assert!(
        matches!(&too_many, ClientError::InvalidArgument(m) if m.contains("at most 64")),
        "{too_many}"
    );

    // A peeked file is not open: unlinking its name frees it.
    mine.unlink(mine.root(), b"b", false).await.unwrap();
    assert!(matches!(
        mine.getattr(small.ino).await,
        Err(ClientError::NotFound(_))
    ));
}

/// Live clients are listed per workspace; every workspace's only for an
/// admin token; ids only as tags; what a client says of itself is bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_clients_are_listed_only_to_their_workspace() {
    let s = server().await;
    let admin = client(&s).await;
    admin.create_workspace("w2").await.unwrap();
    let t2 = admin.create_token("w2", Some("w2"), false).await.unwrap();
    let w2 = client_with(&s, &t2.token).await;
    w2.create_volume("v2").await.unwrap();
    let v2 = w2.volume("v2").await.unwrap();
    let (sid, _stream) = open_session(&v2, "").await.unwrap();

    let mine = w2.list_sessions(false).await.unwrap();
    assert_eq!(mine.len(), 1);
    let c = &mine[0];
    assert_eq!(
        (
            &c.host[..],
            &c.purpose[..],
            &c.volume_name[..],
            &c.workspace[..]
        ),
        ("trust-test", "raw session", "v2", "w2")
    );
    assert_eq!(c.volume, v2.info().id);
    assert!(c.peer.starts_with("127.0.0.1:"), "peer {}", c.peer);
    assert!(
        !sid.contains(&c.session) && c.session.len() == 8,
        "a tag, not the id"
    );
    assert!(c.lease_until_unix >= c.since_unix && c.since_unix > 1_700_000_000);

    // Workspace main sees none of them; only its admin sees all.
    assert!(admin.list_sessions(false).await.unwrap().is_empty());
    let all = admin.list_sessions(true).await.unwrap();
    assert!(all.iter().any(|x| x.volume == v2.info().id));
    let err = w2.list_sessions(true).await.unwrap_err();
    assert!(matches!(err, ClientError::PermissionDenied(_)), "{err:?}");
    assert!(w2.whoami().await.unwrap().workspace == "w2" && !w2.whoami().await.unwrap().admin);
    assert!(admin.whoami().await.unwrap().admin);

    // A description with control characters, or too long, is refused.
    for (host, purpose) in [("a\nb", ""), ("", &*"x".repeat(257))] {
        let hello = svol_sdk::SessionUp::Hello {
            volume: v2.info().id.clone(),
            resume_session: String::new(),
            app: String::new(),
            host: host.into(),
            purpose: purpose.into(),
        };
        let up = futures::stream::iter(vec![hello]).chain(futures::stream::pending());
        let err = match v2.client().session(up).await {
            Err(e) => e,
            Ok(mut down) => down.message().await.unwrap_err(),
        };
        assert!(
            matches!(err, ClientError::InvalidArgument(ref m) if m.contains("256 bytes")),
            "{err:?}"
        );
    }
    let counted = admin.list_workspaces().await.unwrap();
    let w = counted.iter().find(|w| w.name == "w2").unwrap();
    assert_eq!((w.volumes, w.sessions), (1, 1));
}

/// The block channel hands out open files of blocks: only to a valid
/// token, only blocks of its own workspace (another workspace's hash is
/// refused exactly like one nobody holds), never after the token is
/// revoked; and what a client reads through it is checked, so a block
/// corrupted on disk is an error, never wrong bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_block_channel_hands_each_token_only_its_workspaces_blocks() {
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    use svol_proto::blockchan as chan;

    let s = server().await;
    let admin = client(&s).await;
    admin.create_workspace("w2").await.unwrap();
    let t2 = admin
        .create_token("w2-chan", Some("w2"), false)
        .await
        .unwrap();
    let w2 = client_with(&s, &t2.token).await;
    w2.create_volume("secret").await.unwrap();
    let secret = w2.volume("secret").await.unwrap();
    let data = pattern(5 << 20, 9);
    secret
        .write_file("/weights.bin", data.clone())
        .await
        .unwrap();
    let f = secret.resolve("/weights.bin").await.unwrap();
    let chunks = secret.open(f.ino).await.unwrap().chunks;
    secret.release(f.ino).await.unwrap();
    let (first, tail) = (chunks[0].hash.clone(), chunks[1].hash.clone());

    // Where the channel is, asked with a token.
    let rpc = tonic::transport::Channel::from_shared(format!("http://{}", s.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut raw = p::svol_client::SvolClient::new(rpc);
    let asking = |token: &str| {
        let mut r = tonic::Request::new(p::Empty {});
        r.metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        r
    };
    let err = raw.block_channel(asking("svol_wrong")).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    let ep = raw
        .block_channel(asking(&t2.token))
        .await
        .unwrap()
        .into_inner();
    assert!(!ep.socket.is_empty(), "a server with local blocks has one");
    let instance: [u8; chan::INSTANCE_LEN] = ep.instance[..].try_into().unwrap();
    let greeted = |token: &str| {
        let c = UnixStream::connect(&ep.socket).unwrap();
        assert_eq!(chan::read_greeting(&c).unwrap(), instance);
        chan::write_token(&c, token).unwrap();
        let r = chan::recv_reply(&c).unwrap();
        (c, r.code)
    };
    let ask = |c: &UnixStream, hash: &[u8]| {
        chan::send_request(c, hash.try_into().unwrap(), None).unwrap();
        chan::recv_reply(c).unwrap()
    };

    // A wrong token is refused, and the server hangs up.
    let (c, code) = greeted("svol_wrong");
    assert_eq!(code, chan::REFUSED);
    assert!(chan::recv_reply(&c).is_err());

    // W2's token gets W2's block as a file holding exactly its bytes.
    let (mine, code) = greeted(&t2.token);
    assert_eq!(code, chan::OK);
    let r = ask(&mine, &first);
    assert_eq!(r.code, chan::OK, "{}", r.message());
    assert_eq!(r.body, (4u64 << 20).to_be_bytes());
    let file = std::fs::File::from(r.fd.expect("the block's file"));
    assert!(read_plainly(&file) == data[..4 << 20]);
    let invented = [0x5au8; 32];
    let unknown = ask(&mine, &invented);
    assert_eq!(unknown.code, chan::NOT_FOUND);
    assert!(unknown.fd.is_none());

    // Workspace main's admin token asks for W2's block: refused like a
    // hash nobody holds, and no file.
    let (theirs, code) = greeted(&s.token);
    assert_eq!(code, chan::OK);
    let r = ask(&theirs, &first);
    assert_eq!(r.code, chan::NOT_FOUND);
    assert!(r.fd.is_none());
    let blank = |m: String, h: &[u8]| m.replace(&hex::encode(h)[..16], "<hash>");
    assert_eq!(
        blank(r.message(), &first),
        blank(unknown.message(), &invented)
    );

    // A block handed in must come in a memfd and match its hash; what is
    // refused is not stored.
    let put = |c: &UnixStream, hash: &[u8; 32], file: &std::fs::File, len: u64| {
        use std::os::fd::AsFd;
        chan::send_request(c, hash, Some((len, file.as_fd()))).unwrap();
        chan::recv_reply(c).unwrap()
    };
    let bytes = b"handed in through the channel";
    let lie = [0x17u8; 32];
    let r = put(&mine, &lie, &memfd_with(bytes), bytes.len() as u64);
    assert_eq!(r.code, chan::FAILED);
    assert!(r.message().contains("does not match"), "{}", r.message());
    assert_eq!(ask(&mine, &lie).code, chan::NOT_FOUND, "nothing stored");
    let right: [u8; 32] = *blake3::hash(bytes).as_bytes();
    let plain = tempfile::tempfile().unwrap();
    (&plain).write_all(bytes).unwrap();
    let r = put(&mine, &right, &plain, bytes.len() as u64);
    assert_eq!(r.code, chan::FAILED, "only a memfd is read");
    let r = put(&mine, &right, &memfd_with(bytes), bytes.len() as u64);
    assert_eq!(r.code, chan::OK, "{}", r.message());

    // The SDK writes and reads through the channel, and checks what it
    // reads.
    let served = || channel_counter(&s.addr, "svol_block_channel_files_total");
    let stored = || channel_counter(&s.addr, "svol_block_channel_stored_total");
    let before = (served(), stored());
    let fresh = pattern(5 << 20, 10);
    secret
        .write_file("/fresh.bin", fresh.clone())
        .await
        .unwrap();
    assert!(
        stored() >= before.1 + 2,
        "both blocks went through the channel"
    );
    assert!(secret.read_file("/fresh.bin").await.unwrap() == fresh);
    assert!(secret.read_file("/weights.bin").await.unwrap() == data);
    assert!(
        served() >= before.0 + 4,
        "all blocks came through the channel"
    );
    let hex = hex::encode(&tail);
    let stored = find_file(&s.dir.path().join("data/blocks"), &hex[2..]).expect("block file");
    let mut bytes = std::fs::read(&stored).unwrap();
    bytes[777] ^= 1;
    std::fs::write(&stored, &bytes).unwrap();
    let err = secret.read_file("/weights.bin").await.unwrap_err();
    assert!(err.to_string().contains("corrupt"), "{err}");

    // A revoked token stops getting blocks on a connection already open.
    admin.revoke_token(&t2.token).await.unwrap();
    let r = ask(&mine, &first);
    assert_eq!(r.code, chan::REFUSED, "{}", r.message());
    assert!(r.fd.is_none());
}

/// All of a file that may be open for direct I/O, through the page cache.
fn read_plainly(f: &std::fs::File) -> Vec<u8> {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    // SAFETY: fcntl on a descriptor `f` owns.
    unsafe {
        let flags = libc::fcntl(f.as_raw_fd(), libc::F_GETFL);
        assert_eq!(
            libc::fcntl(f.as_raw_fd(), libc::F_SETFL, flags & !libc::O_DIRECT),
            0
        );
    }
    let mut out = Vec::new();
    (&*f).read_to_end(&mut out).unwrap();
    out
}

fn find_file(dir: &std::path::Path, name: &str) -> Option<std::path::PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        if e.path().is_dir() {
            if let Some(p) = find_file(&e.path(), name) {
                return Some(p);
            }
        } else if e.file_name() == name {
            return Some(e.path());
        }
    }
    None
}

fn memfd_with(bytes: &[u8]) -> std::fs::File {
    use std::io::Write;
    use std::os::fd::FromRawFd;
    // SAFETY: a static NUL-terminated name; the fresh descriptor goes to
    // the File.
    let f = unsafe {
        let fd = libc::memfd_create(c"test".as_ptr(), libc::MFD_CLOEXEC);
        assert!(fd >= 0);
        std::fs::File::from_raw_fd(fd)
    };
    (&f).write_all(bytes).unwrap();
    f
}

/// A counter of the server's `/metrics` (over plain HTTP/1.1).
fn channel_counter(addr: &str, name: &str) -> u64 {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.write_all(b"GET /metrics HTTP/1.1\r\nHost: svol\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    c.read_to_string(&mut text).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .expect("the counter is exported")
}

/// A plain commit of `chunks` (no fsync, lock or time).
fn commit(chunks: Vec<svol_sdk::Chunk>, write_end: u64) -> svol_sdk::Commit {
    svol_sdk::Commit {
        chunks,
        write_end,
        ..Default::default()
    }
}
