//! Deleting blocks safely. A block's bytes are removed only after the
//! metadata store has forgotten it (`reap_block`), and uploads and reaps of
//! one hash are serialised by a striped lock, so a block being uploaded
//! again can never lose its bytes to a reap that started earlier.

use std::sync::Arc;
use std::time::Duration;

use svol_meta::BlockId;
use tokio::sync::Mutex;

use crate::service::State;
use crate::sessions::now_ms;

const STRIPES: usize = 64;

pub(crate) struct BlockLocks(Vec<Mutex<()>>);

impl BlockLocks {
    pub(crate) fn new() -> Self {
        Self((0..STRIPES).map(|_| Mutex::new(())).collect())
    }

    pub(crate) fn of(&self, h: &BlockId) -> &Mutex<()> {
        &self.0[h[0] as usize % STRIPES]
    }
}

impl State {
    /// Deletes blocks whose last reference went away, in the background.
    pub(crate) fn reap(&self, freed: Vec<BlockId>) {
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

    pub(crate) async fn reap_one(&self, h: BlockId) {
        let _g = self.block_locks.of(&h).lock().await;
        let meta = self.meta.clone();
        let forgotten = tokio::task::spawn_blocking(move || meta.reap_block(&h, now_ms())).await;
        match forgotten {
            Ok(Ok(true)) => {
                let bh = svol_blocks::BlockHash(h);
                if let Err(e) = self.blocks.delete(bh).await {
                    tracing::warn!("deleting block {bh}: {e}");
                }
            }
            Ok(Ok(false)) => {}
            Ok(Err(e)) => tracing::warn!("reaping block: {e}"),
            Err(e) => tracing::warn!("reaping block: {e}"),
        }
    }
}

/// Removes uploads that no commit claimed within the grace period.
pub(crate) fn spawn_sweeper(state: Arc<State>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        loop {
            tick.tick().await;
            let meta = state.meta.clone();
            if let Ok(Ok(hs)) =
                tokio::task::spawn_blocking(move || meta.expired_blocks(now_ms(), 1000)).await
            {
                for h in hs {
                    state.reap_one(h).await;
                }
            }
        }
    });
}
