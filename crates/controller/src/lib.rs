//! The metadata quorum's controller: the single writer of cluster metadata.
//!
//! In the data flow (see `docs/ARCHITECTURE.md`) admin requests that change
//! metadata (CreateTopics, DeleteTopics, CreatePartitions, broker
//! registration) reach [`Controller`], which validates them against the
//! current `MetadataImage`, places replicas ([`placement`]), turns them into
//! `MetadataRecord`s and commits them through the Raft quorum
//! ([`quorum`]: openraft over the durable [`raft_log`] with [`snapshot`]s,
//! talking to the other controllers through [`raft_network`] and
//! [`rpc_server`]). Every node's [`state_machine`] applies committed
//! records to its image and publishes it to the broker.

#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod config_change;
pub mod controller;
pub mod election;
pub mod error;
pub mod forwarding;
pub mod isr_change;
pub mod observer_links;

pub mod ops;
pub mod placement;
pub mod quorum;
pub mod quorum_description;
pub mod quorum_election;
pub mod quorum_state;
pub mod raft_log;
pub mod raft_network;
pub mod raft_types;
pub mod reassignment;
pub mod rpc;
pub mod rpc_server;
pub mod snapshot;
pub mod state_machine;
#[cfg(test)]
mod test_images;

pub use controller::{
    CommitOffset, Controller, ControllerConfig, CreatePartitions, CreateTopic, CreatedTopic,
    TopicRef, CONTROLLER_REQUEST_TIMEOUT, MAX_PARTITIONS_PER_REQUEST, PRODUCER_ID_BLOCK_SIZE,
    QUORUM_START_TIMEOUT,
};
pub use error::{ApiError, ControllerError};
