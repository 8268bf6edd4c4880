//! Producer ids for InitProducerId: handed out one by one from blocks the
//! controller allocates (and records in the metadata log), so ids are never
//! reused, also across restarts and brokers.

use std::sync::Arc;

use strom_controller::{ApiError, Controller, PRODUCER_ID_BLOCK_SIZE};
use tokio::sync::Mutex;

/// The current block: `next..end`.
#[derive(Debug, Default)]
struct Block {
    next: i64,
    end: i64,
}

/// Gives out producer ids.
#[derive(Debug)]
pub struct ProducerIdManager {
    broker_id: i32,
    broker_epoch: i64,
    controller: Arc<Controller>,
    block: Mutex<Block>,
}

impl ProducerIdManager {
    /// A manager that asks `controller` for blocks.
    pub fn new(broker_id: i32, broker_epoch: i64, controller: Arc<Controller>) -> Self {
        Self {
            broker_id,
            broker_epoch,
            controller,
            block: Mutex::new(Block::default()),
        }
    }

    /// The next unused producer id.
    pub async fn generate(&self) -> Result<i64, ApiError> {
        let mut block = self.block.lock().await;
        if block.next >= block.end {
            let first = self
                .controller
                .allocate_producer_ids(self.broker_id, self.broker_epoch)
                .await?;
            *block = Block {
                next: first,
                end: first.saturating_add(PRODUCER_ID_BLOCK_SIZE),
            };
            tracing::debug!(first, "allocated a block of producer ids");
        }
        let id = block.next;
        block.next += 1;
        Ok(id)
    }
}
