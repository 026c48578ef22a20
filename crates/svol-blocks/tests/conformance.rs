//! The `BlockStore` conformance suite: every backend runs the same checks.

use bytes::Bytes;
use svol_blocks::{BlockError, BlockHash, BlockKey, BlockStore, MAX_BLOCK};

fn key(h: BlockHash) -> BlockKey {
    BlockKey::new(1, h)
}

async fn conformance(store: BlockStore) {
    let data = Bytes::from(vec![7u8; 100_000]);
    let h = BlockHash::of(&data);
    assert!(!store.contains(key(h)).await.unwrap());
    assert!(matches!(
        store.get(key(h)).await,
        Err(BlockError::NotFound(_))
    ));

    assert!(
        store.put(key(h), data.clone()).await.unwrap(),
        "first put writes"
    );
    store.sync(&[key(h)]).await.unwrap();
    assert!(store.contains(key(h)).await.unwrap());
    assert_eq!(store.get(key(h)).await.unwrap(), data);
    // idempotent
    assert!(
        !store.put(key(h), data.clone()).await.unwrap(),
        "second put writes nothing"
    );

    // a lie about the hash is refused and stores nothing
    let other = Bytes::from_static(b"other");
    let err = store.put(key(h), other.clone()).await.unwrap_err();
    assert!(matches!(err, BlockError::HashMismatch(_)));
    let wrong = BlockHash::of(b"something else");
    assert!(store.put(key(wrong), other).await.is_err());
    assert!(!store.contains(key(wrong)).await.unwrap());
    assert_eq!(store.get(key(h)).await.unwrap(), data);

    // oversized
    let big = Bytes::from(vec![0u8; MAX_BLOCK + 1]);
    let bh = BlockHash::of(&big);
    assert!(matches!(
        store.put(key(bh), big).await,
        Err(BlockError::TooLarge(_))
    ));

    // the largest block round-trips
    let max = Bytes::from((0..MAX_BLOCK).map(|i| (i % 251) as u8).collect::<Vec<_>>());
    let mh = BlockHash::of(&max);
    store.put(key(mh), max.clone()).await.unwrap();
    assert_eq!(store.get(key(mh)).await.unwrap(), max);

    // Where blocks are files, the file of a block holds exactly its bytes
    // (what the server hands a client on its host); a missing block has
    // none.
    if let Some((f, len)) = store.open_file(key(mh)).unwrap() {
        assert_eq!(len, MAX_BLOCK as u64);
        assert_eq!(read_plainly(f), max);
        assert!(matches!(
            store.open_file(key(BlockHash::of(b"never stored"))),
            Err(BlockError::NotFound(_))
        ));
    }

    // empty block
    let e = Bytes::new();
    let eh = BlockHash::of(&e);
    store.put(key(eh), e.clone()).await.unwrap();
    assert_eq!(store.get(key(eh)).await.unwrap(), e);

    // delete, twice
    store.delete(key(h)).await.unwrap();
    store.delete(key(h)).await.unwrap();
    assert!(!store.contains(key(h)).await.unwrap());
    assert!(matches!(
        store.get(key(h)).await,
        Err(BlockError::NotFound(_))
    ));

    // many in parallel
    let mut tasks = Vec::new();
    for i in 0..32u32 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            let d = Bytes::from(format!("block number {i}").into_bytes());
            let h = BlockHash::of(&d);
            s.put(key(h), d.clone()).await.unwrap();
            assert_eq!(s.get(key(h)).await.unwrap(), d);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }

    let (total, free) = store.capacity().await.unwrap();
    assert!(total > 0 && free <= total);

    // Owners do not share blocks: the same bytes under owner 2 are not
    // there until owner 2 stores them, and deleting one leaves the other.
    let d = Bytes::from_static(b"shared bytes");
    let h = BlockHash::of(&d);
    let (a, b) = (BlockKey::new(1, h), BlockKey::new(2, h));
    assert!(store.put(a, d.clone()).await.unwrap());
    assert!(!store.contains(b).await.unwrap());
    assert!(matches!(store.get(b).await, Err(BlockError::NotFound(_))));
    assert!(
        store.put(b, d.clone()).await.unwrap(),
        "stored again for owner 2"
    );
    store.delete(a).await.unwrap();
    assert_eq!(store.get(b).await.unwrap(), d);

    // The listing names every block stored, with its owner, and no other.
    let listed = store.list().await.unwrap();
    assert!(
        listed.contains(&b) && listed.contains(&key(mh)),
        "{listed:?}"
    );
    assert!(
        !listed.contains(&a) && !listed.contains(&key(h)),
        "deleted ones listed"
    );
    assert_eq!(listed.len(), 35, "32 + largest + empty + b: {listed:?}");
}

/// All of a file opened maybe for direct I/O, read through the page cache.
fn read_plainly(f: std::fs::File) -> Bytes {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    // SAFETY: fcntl on a descriptor `f` owns.
    unsafe {
        let flags = libc::fcntl(f.as_raw_fd(), libc::F_GETFL);
        assert!(libc::fcntl(f.as_raw_fd(), libc::F_SETFL, flags & !libc::O_DIRECT) == 0);
    }
    let mut out = Vec::new();
    (&f).read_to_end(&mut out).unwrap();
    Bytes::from(out)
}

#[tokio::test]
async fn local_dir_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlockStore::local(dir.path()).unwrap();
    conformance(store.clone()).await;
    let d = Bytes::from_static(b"a block is a file here");
    let k = key(BlockHash::of(&d));
    store.put(k, d.clone()).await.unwrap();
    let (f, len) = store.open_file(k).unwrap().expect("local blocks are files");
    assert_eq!((len, read_plainly(f)), (d.len() as u64, d));
}

#[tokio::test]
async fn local_dir_frees_space_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlockStore::local(dir.path()).unwrap();
    let d = Bytes::from(vec![1u8; 1 << 20]);
    let h = BlockHash::of(&d);
    store.put(key(h), d.clone()).await.unwrap();
    drop(store);
    let store = BlockStore::local(dir.path()).unwrap();
    assert_eq!(store.get(key(h)).await.unwrap(), d);
    store.delete(key(h)).await.unwrap();
    let files: usize = walk(dir.path());
    assert_eq!(files, 0, "no block files remain after delete");
}

fn walk(p: &std::path::Path) -> usize {
    std::fs::read_dir(p)
        .unwrap()
        .flatten()
        .map(|e| {
            if e.path().is_dir() {
                walk(&e.path())
            } else {
                1
            }
        })
        .sum()
}

#[tokio::test]
async fn local_dir_detects_corrupt_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlockStore::local(dir.path()).unwrap();
    let d = Bytes::from(vec![3u8; 70_000]);
    let k = BlockKey::new(7, BlockHash::of(&d));
    store.put(k, d.clone()).await.unwrap();
    let hex = k.hash.to_hex();
    let file = dir.path().join("w7").join(&hex[..2]).join(&hex[2..]);
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[1234] ^= 0x40;
    std::fs::write(&file, &bytes).unwrap();
    assert!(matches!(store.get(k).await, Err(BlockError::Corrupt(_))));
    // A block left empty by a power cut is written again by the next put.
    std::fs::write(&file, b"").unwrap();
    assert!(
        store.put(k, d.clone()).await.unwrap(),
        "torn block rewritten"
    );
    assert_eq!(store.get(k).await.unwrap(), d);
}

#[tokio::test]
async fn local_dir_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("blocks");
    let store = BlockStore::local(&root).unwrap();
    let d = Bytes::from_static(b"secret");
    let k = BlockKey::new(1, BlockHash::of(&d));
    store.put(k, d).await.unwrap();
    let hex = k.hash.to_hex();
    let file = root.join("w1").join(&hex[..2]).join(&hex[2..]);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&root), 0o700);
    assert_eq!(mode(file.parent().unwrap()), 0o700);
    assert_eq!(mode(&file), 0o600);
}

#[tokio::test]
async fn local_dir_adopts_first_layout_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let d = Bytes::from_static(b"from the first release");
    let h = BlockHash::of(&d);
    let hex = h.to_hex();
    std::fs::create_dir_all(dir.path().join(&hex[..2])).unwrap();
    std::fs::write(dir.path().join(&hex[..2]).join(&hex[2..]), &d).unwrap();
    let orphan = BlockHash::of(b"nobody");
    let ohex = orphan.to_hex();
    std::fs::create_dir_all(dir.path().join(&ohex[..2])).unwrap();
    std::fs::write(dir.path().join(&ohex[..2]).join(&ohex[2..]), b"nobody").unwrap();
    let moved = svol_blocks::local::adopt_unowned(dir.path(), |x| {
        Ok(if x == h { vec![1, 2] } else { vec![] })
    })
    .unwrap();
    assert_eq!(moved, 2);
    let store = BlockStore::local(dir.path()).unwrap();
    assert_eq!(store.get(BlockKey::new(1, h)).await.unwrap(), d);
    assert_eq!(store.get(BlockKey::new(2, h)).await.unwrap(), d);
    assert_eq!(
        walk(dir.path()),
        2,
        "the old copies and the orphan are gone"
    );
}

use svol_testkit::{S3Server, S3_KEY, S3_REGION, S3_SECRET};

fn s3_server(bucket: &str) -> S3Server {
    S3Server::start(&[bucket])
}

/// The S3 backend on bucket `bucket` of `s`, signing with `secret`.
fn s3_blocks(s: &S3Server, bucket: &str, prefix: &str, secret: &str) -> svol_blocks::s3::S3Blocks {
    let store = svol_blocks::s3::S3Blocks::builder()
        .with_endpoint(s.endpoint())
        .with_allow_http(true)
        .with_region(S3_REGION)
        .with_bucket_name(bucket)
        .with_access_key_id(S3_KEY)
        .with_secret_access_key(secret)
        .build()
        .unwrap();
    svol_blocks::s3::S3Blocks::new(std::sync::Arc::new(store), prefix)
}

fn s3_store(s: &S3Server, bucket: &str, prefix: &str) -> BlockStore {
    BlockStore::from_backend(std::sync::Arc::new(s3_blocks(s, bucket, prefix, S3_SECRET)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_conformance() {
    let s = s3_server("blocks");
    let store = s3_store(&s, "blocks", "svol/test");
    conformance(store.clone()).await;
    let d = Bytes::from_static(b"an object, not a file");
    let k = key(BlockHash::of(&d));
    store.put(k, d).await.unwrap();
    assert!(
        store.open_file(k).unwrap().is_none(),
        "objects are not files"
    );
}

/// Two prefixes of one bucket are two stores; wrong credentials are an
/// error, never an empty store; a bad URL names what is wrong.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_prefixes_are_separate_and_credentials_are_checked() {
    let s = s3_server("blocks");
    let (a, b) = (s3_store(&s, "blocks", "a"), s3_store(&s, "blocks", "b"));
    let d = Bytes::from_static(b"prefix data");
    let k = key(BlockHash::of(&d));
    assert!(a.put(k, d.clone()).await.unwrap());
    assert!(!b.contains(k).await.unwrap());
    assert_eq!(a.get(k).await.unwrap(), d);
    // The objects are really in the S3 server's bucket, under the prefix.
    let on_disk = walk(&s.bucket_dir("blocks").join("a"));
    assert_eq!(on_disk, 1, "one object under the prefix");

    let wrong = BlockStore::from_backend(std::sync::Arc::new(s3_blocks(
        &s,
        "blocks",
        "a",
        "not-the-secret",
    )));
    assert!(wrong.get(k).await.is_err());
    assert!(!matches!(wrong.get(k).await, Err(BlockError::NotFound(_))));
    for bad in ["blocks", "s3://", "file:///tmp/x"] {
        let e = BlockStore::s3(bad).await.unwrap_err().to_string();
        assert!(e.contains(bad), "{e}");
    }
    // A store that cannot be used is refused up front, not at the first
    // write: a missing bucket, wrong credentials.
    let no_bucket = s3_blocks(&s, "no-such-bucket", "", S3_SECRET);
    assert!(no_bucket.check().await.is_err());
    let refused = s3_blocks(&s, "blocks", "a", "not-the-secret");
    assert!(refused.check().await.is_err());
    let ok = s3_blocks(&s, "blocks", "a", S3_SECRET);
    ok.check().await.unwrap();
}
