//! The SDK against a real server: apps, ephemeral and persisted volumes,
//! path-level file calls and deduplicating batch uploads.

use std::time::Duration;

use svol_sdk::{App, ClientError, Volume};

mod common;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_volume_files_and_persist() {
    let s = server().await;
    let c = client(&s).await;
    let app = App::create(&c, "sdk-test").await.unwrap();
    let vol = Volume::ephemeral(&app).await.unwrap();
    assert!(vol.info().ephemeral);
    assert_eq!(vol.info().app, app.id());

    let big = pattern(9 << 20, 1);
    vol.write_file("/models/m.bin", big.clone()).await.unwrap();
    vol.write_file("/notes.txt", &b"hello"[..]).await.unwrap();
    assert_eq!(vol.read_file("/models/m.bin").await.unwrap(), big);
    assert_eq!(vol.read_file("notes.txt").await.unwrap(), b"hello");
    // overwrite replaces whole
    vol.write_file("/notes.txt", &b"bye"[..]).await.unwrap();
    assert_eq!(vol.read_file("/notes.txt").await.unwrap(), b"bye");

    let mut names: Vec<_> = vol
        .listdir("/")
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.name.clone(), e.is_dir()))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            ("models".to_string(), true),
            ("notes.txt".to_string(), false)
        ]
    );

    // server-side copy: no block is uploaded again
    let sent = c.bytes_uploaded();
    vol.copy_files(&["/models/m.bin"], "/copy.bin", false)
        .await
        .unwrap();
    assert_eq!(vol.read_file("/copy.bin").await.unwrap(), big);
    assert_eq!(c.bytes_uploaded(), sent);
    assert!(matches!(
        vol.copy_files(&["/models"], "/m2", false).await,
        Err(ClientError::Fs(..))
    ));
    vol.copy_files(&["/models"], "/m2", true).await.unwrap();
    assert_eq!(vol.read_file("/m2/m.bin").await.unwrap(), big);

    // remove
    vol.remove_file("/copy.bin", false).await.unwrap();
    assert!(matches!(
        vol.read_file("/copy.bin").await,
        Err(ClientError::NotFound(_))
    ));
    assert!(vol.remove_file("/m2", false).await.is_err());
    vol.remove_file("/m2", true).await.unwrap();

    // bad paths are refused before anything is sent
    for bad in ["/a/../b", "/x\0y"] {
        assert!(matches!(
            vol.write_file(bad, &b"x"[..]).await,
            Err(ClientError::InvalidArgument(_))
        ));
    }

    // persist: outlives the app
    let mut kept = Volume::ephemeral(&app).await.unwrap();
    kept.write_file("/k", &b"kept"[..]).await.unwrap();
    kept.persist("kept-vol").await.unwrap();
    assert_eq!(kept.info().name, "kept-vol");
    assert!(!kept.info().ephemeral);
    let stopped = app.stop().await.unwrap();
    assert_eq!(stopped.state, "stopped");
    assert!(matches!(
        c.volume(&vol.info().id).await,
        Err(ClientError::NotFound(_))
    ));
    let again = Volume::from_name(&c, "kept-vol", false).await.unwrap();
    assert_eq!(again.read_file("/k").await.unwrap(), b"kept");
    assert!(matches!(
        Volume::from_name(&c, "nope", false).await,
        Err(ClientError::NotFound(_))
    ));
    let fresh = Volume::from_name(&c, "fresh", true).await.unwrap();
    assert!(fresh.listdir("/").await.unwrap().is_empty());
    // a stopped app takes no new volumes
    assert!(Volume::ephemeral(&app).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_upload_sends_only_missing_blocks() {
    let s = server().await;
    let c = client(&s).await;
    let vol = Volume::from_name(&c, "uploads", true).await.unwrap();
    let local = tempfile::tempdir().unwrap();
    let a = pattern(12 << 20, 7);
    std::fs::create_dir(local.path().join("tree")).unwrap();
    std::fs::write(local.path().join("tree/a.bin"), &a).unwrap();
    std::fs::write(local.path().join("tree/small.txt"), b"small").unwrap();

    vol.batch_upload(false)
        .put_file(local.path().join("tree"), "/first")
        .put_data(pattern(5 << 20, 9), "/data/five.bin")
        .commit()
        .await
        .unwrap();
    let after_first = c.bytes_uploaded();
    assert_eq!(after_first, (12 << 20) + (5 << 20), "every block sent once");
    let stored = blocks_bytes(&s);

    // the same bytes again, under other names: nothing is sent or stored
    vol.batch_upload(false)
        .put_file(local.path().join("tree"), "/second")
        .put_data(pattern(5 << 20, 9), "/data/five-again.bin")
        .commit()
        .await
        .unwrap();
    assert_eq!(c.bytes_uploaded(), after_first);
    assert_eq!(blocks_bytes(&s), stored);
    assert_eq!(vol.read_file("/second/a.bin").await.unwrap(), a);
    assert_eq!(vol.read_file("/second/small.txt").await.unwrap(), b"small");

    // without force an existing file is kept and the batch fails
    let err = vol
        .batch_upload(false)
        .put_data(&b"other"[..], "/second/small.txt")
        .commit()
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::AlreadyExists(_)), "{err}");
    assert_eq!(vol.read_file("/second/small.txt").await.unwrap(), b"small");

    // download the tree back
    let out = tempfile::tempdir().unwrap();
    vol.download("/second", &out.path().join("got"), &None)
        .await
        .unwrap();
    assert_eq!(std::fs::read(out.path().join("got/a.bin")).unwrap(), a);

    // deleting the volume frees its blocks
    c.delete_volume("uploads", false).await.unwrap();
    let start = std::time::Instant::now();
    while blocks_bytes(&s) != 0 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "blocks not freed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
