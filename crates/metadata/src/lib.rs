//! Cluster metadata as data: the records of the metadata log and the
//! immutable image they build. Pure functions, no I/O, no Raft.
//!
//! The active controller (the leader of the openraft quorum) appends
//! [`MetadataRecord`]s to the metadata log; every broker
//! applies committed records to its current [`MetadataImage`] with
//! [`MetadataImage::apply`], which returns the next image and a
//! [`MetadataDelta`] saying what changed (topics created or deleted,
//! partitions moved, configs altered) so the broker can create or delete
//! logs. Request handlers read the current image without locks.

#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod image;
pub mod partition_health;
pub mod record;
pub mod topic_name;

pub use image::{
    ImageSnapshot, MetadataDelta, MetadataError, MetadataImage, PartitionRegistration, TopicImage,
};
pub use partition_health::PartitionHealth;
pub use record::{BrokerEndpoint, BrokerRegistration, ConfigResourceType, MetadataRecord};
