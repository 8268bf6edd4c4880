//! Coordination on top of the logs: producer ids for idempotent producers,
//! and (next) consumer groups with their committed offsets.
//!
//! In the data flow (see `docs/ARCHITECTURE.md`) InitProducerId requests
//! reach [`producer_ids::ProducerIdManager`], which hands out ids from blocks
//! the controller records in the metadata log. The per-partition sequence
//! checks that make producers idempotent live with the log they protect
//! (`strom_storage::producer_state`).

#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod producer_ids;

pub use producer_ids::ProducerIdManager;
