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
//! Today every in-sync replica set is this broker alone (replication factor
//! 1): the high watermark follows the log end offset. Followers, ISR changes
//! and leader epochs on disk come with replication.

#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod error;
pub mod partition;
pub mod replica_manager;

pub use error::ReplicaError;
pub use partition::{Partition, PartitionState};
pub use replica_manager::{
    isolate, run_log_maintenance, shutdown_signalled, special_timestamps, FetchParams,
    FetchPartition, FetchPartitionResult, IsolationLevel, MaintenanceIntervals, OffsetAndTimestamp,
    ReplicaManager,
};
