//! Blocks as objects of an S3-compatible store, through the `object_store`
//! crate: `PREFIX/w<owner>/ab/cdef…` (the same names as the local
//! directory). A block is written with a create-only put: blocks are
//! named by their content, so an object that is already there holds these
//! very bytes and the put is done. A PUT is durable when it returns, so
//! `sync` has nothing left to do. Whether a block may be deleted is the
//! metadata store's decision (mark, delete the object, drop the row), never
//! this store's listing.

use std::sync::Arc;

use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions};

use crate::{BlockBackend, BlockError, BlockKey, Result};

pub struct S3Blocks {
    store: Arc<dyn ObjectStore>,
    prefix: String,
}

/// HTTPS to the store runs on rustls with ring; a process may have chosen
/// its default already (then that one stays).
fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn store_error(e: object_store::Error) -> BlockError {
    BlockError::Io(std::io::Error::other(e))
}

impl S3Blocks {
    /// `url` is `s3://bucket` or `s3://bucket/prefix`. Endpoint, region and
    /// credentials follow the object_store crate's conventions: the
    /// `AWS_ENDPOINT`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY` (and `AWS_ALLOW_HTTP=true` for a plain-HTTP
    /// endpoint) environment variables.
    pub fn from_url(url: &str) -> Result<Self> {
        let rest = url.strip_prefix("s3://").ok_or_else(|| {
            BlockError::Io(std::io::Error::other(format!(
                "block store URL {url:?} is not s3://bucket[/prefix]"
            )))
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(BlockError::Io(std::io::Error::other(format!(
                "block store URL {url:?} names no bucket"
            ))));
        }
        install_crypto();
        let store = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .build()
            .map_err(store_error)?;
        Ok(Self::new(Arc::new(store), prefix))
    }

    /// A store configuration to start from (empty: no environment read).
    /// Use it rather than `AmazonS3Builder::new`: it readies the TLS the
    /// client is built with.
    pub fn builder() -> AmazonS3Builder {
        install_crypto();
        AmazonS3Builder::new()
    }

    /// Blocks under `prefix` of an already configured store.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str) -> Self {
        Self {
            store,
            prefix: prefix.trim_matches('/').to_string(),
        }
    }

    /// Checks that the bucket is there and the credentials work, by
    /// listing the prefix: a server must not start on a store it cannot use.
    pub async fn check(&self) -> Result<()> {
        let prefix = (!self.prefix.is_empty()).then(|| Path::from(self.prefix.as_str()));
        self.store
            .list_with_delimiter(prefix.as_ref())
            .await
            .map(|_| ())
            .map_err(store_error)
    }

    fn path(&self, k: BlockKey) -> Path {
        let hex = k.hash.to_hex();
        let name = format!("w{}/{}/{}", k.owner, &hex[..2], &hex[2..]);
        if self.prefix.is_empty() {
            Path::from(name)
        } else {
            Path::from(format!("{}/{name}", self.prefix))
        }
    }
}

#[async_trait::async_trait]
impl BlockBackend for S3Blocks {
    async fn put(&self, key: BlockKey, data: Bytes) -> Result<()> {
        let opts = PutOptions::from(PutMode::Create);
        match self
            .store
            .put_opts(&self.path(key), data.into(), opts)
            .await
        {
            // Already there: the same name is the same bytes.
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(store_error(e)),
        }
    }

    async fn sync(&self, _keys: &[BlockKey]) -> Result<()> {
        Ok(())
    }

    async fn get(&self, key: BlockKey) -> Result<Bytes> {
        match self.store.get(&self.path(key)).await {
            Ok(r) => r.bytes().await.map_err(store_error),
            Err(object_store::Error::NotFound { .. }) => Err(BlockError::NotFound(key)),
            Err(e) => Err(store_error(e)),
        }
    }

    async fn size(&self, key: BlockKey) -> Result<Option<u64>> {
        match self.store.head(&self.path(key)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_error(e)),
        }
    }

    async fn delete(&self, key: BlockKey) -> Result<()> {
        match self.store.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_error(e)),
        }
    }

    async fn list(&self) -> Result<Vec<BlockKey>> {
        use futures::TryStreamExt;
        let prefix = (!self.prefix.is_empty()).then(|| Path::from(self.prefix.as_str()));
        let objects: Vec<_> = self
            .store
            .list(prefix.as_ref())
            .try_collect()
            .await
            .map_err(store_error)?;
        let skip = if self.prefix.is_empty() {
            0
        } else {
            self.prefix.len() + 1
        };
        Ok(objects
            .iter()
            .filter_map(|o| BlockKey::from_name(o.location.as_ref().get(skip..)?))
            .collect())
    }

    /// An object store has no fixed size: it reports all space as free.
    async fn capacity(&self) -> Result<(u64, u64)> {
        Ok((u64::MAX, u64::MAX))
    }
}
