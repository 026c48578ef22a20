//! The `BlockStore` conformance suite: every backend runs the same checks.

use bytes::Bytes;
use svol_blocks::{BlockError, BlockHash, BlockStore, MAX_BLOCK};

async fn conformance(store: BlockStore) {
    let data = Bytes::from(vec![7u8; 100_000]);
    let h = BlockHash::of(&data);
    assert!(!store.contains(h).await.unwrap());
    assert!(matches!(store.get(h).await, Err(BlockError::NotFound(_))));

    assert!(
        store.put(h, data.clone()).await.unwrap(),
        "first put writes"
    );
    store.sync(&[h]).await.unwrap();
    assert!(store.contains(h).await.unwrap());
    assert_eq!(store.get(h).await.unwrap(), data);
    // idempotent
    assert!(
        !store.put(h, data.clone()).await.unwrap(),
        "second put writes nothing"
    );

    // a lie about the hash is refused and stores nothing
    let other = Bytes::from_static(b"other");
    let err = store.put(h, other.clone()).await.unwrap_err();
    assert!(matches!(err, BlockError::HashMismatch(_)));
    let wrong = BlockHash::of(b"something else");
    assert!(store.put(wrong, other).await.is_err());
    assert!(!store.contains(wrong).await.unwrap());
    assert_eq!(store.get(h).await.unwrap(), data);

    // oversized
    let big = Bytes::from(vec![0u8; MAX_BLOCK + 1]);
    let bh = BlockHash::of(&big);
    assert!(matches!(
        store.put(bh, big).await,
        Err(BlockError::TooLarge(_))
    ));

    // the largest block round-trips
    let max = Bytes::from((0..MAX_BLOCK).map(|i| (i % 251) as u8).collect::<Vec<_>>());
    let mh = BlockHash::of(&max);
    store.put(mh, max.clone()).await.unwrap();
    assert_eq!(store.get(mh).await.unwrap(), max);

    // empty block
    let e = Bytes::new();
    let eh = BlockHash::of(&e);
    store.put(eh, e.clone()).await.unwrap();
    assert_eq!(store.get(eh).await.unwrap(), e);

    // delete, twice
    store.delete(h).await.unwrap();
    store.delete(h).await.unwrap();
    assert!(!store.contains(h).await.unwrap());
    assert!(matches!(store.get(h).await, Err(BlockError::NotFound(_))));

    // many in parallel
    let mut tasks = Vec::new();
    for i in 0..32u32 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            let d = Bytes::from(format!("block number {i}").into_bytes());
            let h = BlockHash::of(&d);
            s.put(h, d.clone()).await.unwrap();
            assert_eq!(s.get(h).await.unwrap(), d);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }

    let (total, free) = store.capacity().await.unwrap();
    assert!(total > 0 && free <= total);
}

#[tokio::test]
async fn local_dir_conformance() {
    let dir = tempfile::tempdir().unwrap();
    conformance(BlockStore::local(dir.path()).unwrap()).await;
}

#[tokio::test]
async fn local_dir_frees_space_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlockStore::local(dir.path()).unwrap();
    let d = Bytes::from(vec![1u8; 1 << 20]);
    let h = BlockHash::of(&d);
    store.put(h, d.clone()).await.unwrap();
    drop(store);
    let store = BlockStore::local(dir.path()).unwrap();
    assert_eq!(store.get(h).await.unwrap(), d);
    store.delete(h).await.unwrap();
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
