//! Partition replicas and what clients do with them: the layer between the
//! request handlers and the logs.
//!
//! In the data flow (see `docs/ARCHITECTURE.md`) a produce request's
//! batches go from the Produce handler to [`ReplicaManager::append_records`],
//! which finds the [`Partition`] this broker leads, appends through the
//! storage crate and, for `acks=all`, waits for the high watermark. Fetches
//! read through [`ReplicaManager::fetch`], which implements the long poll
//! (`max_wait_ms`/`min_bytes`) by watching high watermarks. Hosted
//! partitions follow the metadata image through
//! [`ReplicaManager::reconcile`].
//!
//! As leader, a [`Partition`] tracks its followers' fetches
//! ([`follower_progress`]) and moves the high watermark to what every
//! in-sync replica has; with this broker alone in the ISR it follows the
//! log end offset. As follower, it is fed by a [`replica_fetcher`] that
//! fetches from its leader; leaders propose ISR changes to the controller.

#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod error;
pub mod follower_progress;
pub mod partition;
pub mod replica_fetcher;
pub mod replica_manager;
pub mod replication_quota;

pub use error::ReplicaError;
pub use partition::{Partition, PartitionState};
pub use replica_manager::{
    panic_boundary, special_timestamps, FetchParams, FetchPartition, FetchPartitionResult,
    IsolationLevel, OffsetAndTimestamp, ReplicaManager,
};
