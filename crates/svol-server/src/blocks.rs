//! Uploading and deleting blocks safely when several servers share one
//! block store, with the metadata store as the only arbiter.
//!
//! Deleting takes three steps: the metadata store marks the block (no
//! commit may reference it from then on, and it is marked for one reaper
//! only), its bytes are deleted, then its row is dropped. A deletion that
//! fails half-way (a full or broken disk) leaves the row marked and the
//! sweeper (on any server) takes it over later, so space is never lost
//! track of.
//!
//! Uploading takes three steps too: claim (a held block's grace is
//! extended, so no reaper starts on it; one being deleted makes the upload
//! wait until it is gone), write the bytes, register. The store's "already
//! there" is never trusted on its own: those bytes could be the ones a
//! reaper on another server is deleting right now.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use svol_blocks::{BlockHash, BlockKey};
use svol_meta::BlockRef;
use tonic::Status;

use crate::service::State;

/// How long an upload waits for a deletion of the same block to finish.
const WAIT_FOR_DELETION: Duration = Duration::from_secs(30);

impl State {
    /// Deletes blocks whose last reference went away, in the background.
    pub(crate) fn reap(&self, freed: Vec<BlockRef>) {
        if freed.is_empty() {
            return;
        }
        let st = self.clone();
        tokio::spawn(async move {
            for h in freed {
                st.reap_one(h).await;
            }
        });
    }

    /// Stores an uploaded block: claim, write, register (see the module
    /// doc). Returns whether the block store wrote new bytes.
    pub(crate) async fn upload(
        &self,
        b: BlockRef,
        data: Bytes,
        grace: Duration,
    ) -> Result<bool, Status> {
        let start = Instant::now();
        loop {
            let until = self.clock.now_ms() + grace.as_millis() as i64;
            let claimed = self.meta(move |m| m.claim_block(&b, until)).await;
            if let Err(e) = claimed {
                if !being_deleted(&e) || start.elapsed() > WAIT_FOR_DELETION {
                    return Err(e);
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
                continue;
            }
            // A new block past the workspace's byte quota is refused before
            // its bytes are written. (The check that counts is the one in
            // `register_block`; should a race make that one refuse, the
            // bytes stay unreferenced on disk, as after a crash between
            // write and register.)
            let size = data.len() as u64;
            self.meta(move |m| m.check_block_quota(&b, size)).await?;
            let written = self
                .blocks
                .put(block_key(&b), data.clone())
                .await
                .map_err(crate::convert::blocks_status)?;
            match self.meta(move |m| m.register_block(&b, size, until)).await {
                Ok(()) => return Ok(written),
                Err(e) if being_deleted(&e) && start.elapsed() <= WAIT_FOR_DELETION => {
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    pub(crate) async fn reap_one(&self, b: BlockRef) {
        let meta = self.meta.clone();
        let now = self.clock.now_ms();
        let marked = tokio::task::spawn_blocking(move || meta.mark_block(&b, now)).await;
        match marked {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => return,
            Ok(Err(e)) => return tracing::warn!("reaping block: {e}"),
            Err(e) => return tracing::warn!("reaping block: {e}"),
        }
        let key = block_key(&b);
        if let Err(e) = self.blocks.delete(key).await {
            // Stays marked; the sweeper tries again.
            return tracing::warn!("deleting block {key}: {e}");
        }
        let meta = self.meta.clone();
        match tokio::task::spawn_blocking(move || meta.drop_block(&b, now)).await {
            Ok(Ok(())) => crate::metrics::block_freed(),
            Ok(Err(e)) => tracing::warn!("forgetting block {key}: {e}"),
            Err(e) => tracing::warn!("forgetting block {key}: {e}"),
        }
    }
}

/// The metadata store's "this block is being deleted" (as a gRPC status).
fn being_deleted(s: &Status) -> bool {
    s.code() == tonic::Code::FailedPrecondition && s.message().contains("being deleted")
}

/// Where the block store keeps a block of the metadata store.
pub(crate) fn block_key(b: &BlockRef) -> BlockKey {
    BlockKey::new(b.workspace as u64, BlockHash(b.hash))
}

/// Removes uploads that no commit claimed within the grace period, and
/// finishes deletions that failed (on one server of a cluster at a time).
pub(crate) fn spawn_sweeper(state: Arc<State>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        loop {
            tick.tick().await;
            if !state.leads() {
                continue;
            }
            let (meta, now) = (state.meta.clone(), state.clock.now_ms());
            if let Ok(Ok(hs)) =
                tokio::task::spawn_blocking(move || meta.expired_blocks(now, 1000)).await
            {
                for h in hs {
                    state.reap_one(h).await;
                }
            }
        }
    });
}
