//! Deleting blocks safely, in three steps: the metadata store marks the
//! block (no commit may reference it from then on), its bytes are deleted,
//! then its row is dropped. A deletion that fails half-way (a full or
//! broken disk) leaves the row marked and the sweeper tries again, so space
//! is never lost track of. Uploads and reaps of one block are serialised by
//! a striped lock, so a block being uploaded again can never lose its bytes
//! to a reap that started earlier.

use std::sync::Arc;
use std::time::Duration;

use svol_blocks::{BlockHash, BlockKey};
use svol_meta::BlockRef;
use tokio::sync::Mutex;

use crate::service::State;

const STRIPES: usize = 64;

pub(crate) struct BlockLocks(Vec<Mutex<()>>);

impl BlockLocks {
    pub(crate) fn new() -> Self {
        Self((0..STRIPES).map(|_| Mutex::new(())).collect())
    }

    pub(crate) fn of(&self, b: &BlockRef) -> &Mutex<()> {
        &self.0[(b.hash[0] as usize ^ b.workspace as usize) % STRIPES]
    }
}

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

    pub(crate) async fn reap_one(&self, b: BlockRef) {
        let _g = self.block_locks.of(&b).lock().await;
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
        match tokio::task::spawn_blocking(move || meta.drop_block(&b)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("forgetting block {key}: {e}"),
            Err(e) => tracing::warn!("forgetting block {key}: {e}"),
        }
    }
}

/// Where the block store keeps a block of the metadata store.
pub(crate) fn block_key(b: &BlockRef) -> BlockKey {
    BlockKey::new(b.workspace as u64, BlockHash(b.hash))
}

/// Removes uploads that no commit claimed within the grace period, and
/// finishes deletions that failed.
pub(crate) fn spawn_sweeper(state: Arc<State>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        loop {
            tick.tick().await;
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
