//! The state every handler shares: configuration, the controller, the
//! replica manager, the coordinators, the applied metadata image and the
//! handler registry.

use std::sync::Arc;

use strom_config::BrokerConfig;
use strom_controller::Controller;
use strom_coordinator::{GroupCoordinator, ProducerIdManager};
use strom_metadata::MetadataImage;
use strom_replication::ReplicaManager;
use tokio::sync::watch;

use crate::metrics::BrokerMetrics;
use crate::registry::HandlerRegistry;

/// Shared broker state.
#[derive(Debug)]
pub struct BrokerState {
    /// Validated configuration.
    pub config: BrokerConfig,
    /// Cluster id.
    pub cluster_id: String,
    /// The metadata controller.
    pub controller: Arc<Controller>,
    /// Hosted partitions.
    pub replica_manager: Arc<ReplicaManager>,
    /// Producer ids for idempotent producers.
    pub producer_ids: ProducerIdManager,
    /// Consumer groups and committed offsets.
    pub groups: Arc<GroupCoordinator>,
    /// This broker's standing with the controller.
    pub lifecycle: Arc<crate::lifecycle::BrokerLifecycle>,
    /// Served APIs.
    pub registry: HandlerRegistry,
    /// The image the hosted partitions reflect, published after each
    /// reconciliation.
    pub(crate) image: watch::Sender<Arc<MetadataImage>>,
    /// The node's metrics.
    pub metrics: Arc<BrokerMetrics>,
    /// Requests read from client connections and not yet handled
    /// (`queued.max.requests`, `queued.max.request.bytes`).
    pub request_budget: Arc<crate::request_budget::RequestBudget>,
    /// The fetch response room each connection holds until written
    /// (`queued.max.fetch.response.bytes`).
    pub response_holders: Arc<crate::fetch_memory::ResponseHolders>,
}

impl BrokerState {
    /// This broker's node id.
    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }

    /// The metadata image this broker has applied.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.borrow().clone()
    }

    /// Controlled shutdown (a broker): moves this broker's leadership
    /// away and keeps it fenced; the process keeps running until told to
    /// stop. True when the controller confirmed it.
    pub async fn controlled_shutdown(&self) -> bool {
        if !self.config.is_broker() {
            self.lifecycle.begin_shutdown();
            return true;
        }
        let applied = self.image().offset;
        self.lifecycle
            .controlled_shutdown(&self.controller, applied)
            .await
    }

    /// Waits until this broker has applied metadata up to `offset` (after a
    /// controller write), at most `timeout`.
    pub async fn wait_for_metadata(&self, offset: i64, timeout: std::time::Duration) -> bool {
        self.wait_for_image(|img| img.offset >= offset, timeout)
            .await
            .is_some()
    }

    /// Waits until the applied image satisfies `condition`, at most
    /// `timeout`; the image that did.
    pub async fn wait_for_image(
        &self,
        mut condition: impl FnMut(&MetadataImage) -> bool,
        timeout: std::time::Duration,
    ) -> Option<Arc<MetadataImage>> {
        let mut rx = self.image.subscribe();
        let reached = tokio::time::timeout(timeout, rx.wait_for(|img| condition(img))).await;
        match reached {
            Ok(Ok(img)) => Some(Arc::clone(&img)),
            _ => None,
        }
    }
}
