//! The metadata quorum's controller: the single writer of cluster metadata.
//!
//! In the data flow (see `docs/ARCHITECTURE.md`) admin requests that change
//! metadata (CreateTopics, DeleteTopics, CreatePartitions, broker
//! registration) reach [`Controller`], which validates them against the
//! current `MetadataImage`, places replicas ([`placement`]), turns them into
//! `MetadataRecord`s, commits them to the durable [`metadata_log`], applies
//! them and publishes the new image to every subscriber.
//!
//! Today the quorum is this node alone (a one-voter quorum, as a single
//! combined KRaft node is): committed means fsynced locally. The next step
//! replaces the commit path with an openraft quorum; the validation and the
//! records stay as they are.

#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod controller;
pub mod error;
pub mod metadata_log;
pub mod placement;

pub use controller::{
    CommitOffset, Controller, ControllerConfig, CreatePartitions, CreateTopic, CreatedTopic,
    TopicRef, MAX_PARTITIONS_PER_REQUEST, PRODUCER_ID_BLOCK_SIZE,
};
pub use error::{ApiError, ControllerError};
