//! Coordination on top of the logs: consumer groups with their committed
//! offsets, and producer ids for idempotent producers.
//!
//! In the data flow (see `docs/ARCHITECTURE.md`) the group APIs reach
//! [`GroupCoordinator`], which routes each group to the shard task of its
//! `__consumer_offsets` partition ([`offsets_topic`] says which, and the
//! record formats). A shard owns its groups' state machines ([`group`]),
//! timers and committed offsets, writes every change to the partition
//! through the replica manager before it takes effect, and rebuilds
//! everything from the partition when this broker becomes its leader.
//! InitProducerId reaches [`producer_ids::ProducerIdManager`], which hands
//! out ids from blocks the controller records in the metadata log; the
//! per-partition sequence checks that make producers idempotent live with
//! the log they protect (`strom_storage::producer_state`).

#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod coordinator;
pub mod error;
pub mod group;
pub mod offsets_topic;
pub mod outcome;
pub mod producer_ids;
mod shard;
mod timers;

pub use coordinator::GroupCoordinator;
pub use producer_ids::ProducerIdManager;
pub use shard::OffsetsWriter;
pub use strom_config::GroupKeys as GroupConfig;
