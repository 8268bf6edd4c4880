//! Partition logs on disk: Strom's storage engine.
//!
//! In the data flow (see `docs/ARCHITECTURE.md`) this crate sits below the
//! replication layer and knows nothing of the network or of Raft. A produce
//! request's batch arrives as bytes, is checked by [`validate`] (Kafka's
//! `LogValidator` without re-encoding), and is appended by [`log::Log`] to
//! the active [`segment::LogSegment`] with its base offset assigned in place;
//! the [`offset_index`] and [`time_index`] (each an [`index::Index`] of its
//! own entries) map offsets and timestamps to positions. Fetches read whole
//! batches back by position. [`log_manager`] owns the directories: recovery
//! of torn tails after a crash, retention, flushing, checkpoints
//! ([`checkpoint`]) and `meta.properties` ([`meta_properties`]), and
//! schedules that periodic work itself ([`log_maintenance`]).
//! [`leader_epoch`] keeps each partition's leader epoch cache, which
//! replication truncates divergent followers by.
//! [`durable_file`] makes file replacements and new directory entries
//! survive a power loss.
//!
//! Every on-disk format is specified in the module that owns it.

#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod checkpoint;
pub mod durable_file;
pub mod error;
pub mod index;
mod index_file;
pub mod leader_epoch;
pub mod log;
pub mod log_maintenance;
pub mod log_manager;
pub mod meta_properties;
pub mod offset_index;
pub mod producer_state;
pub mod segment;
pub mod time_index;
pub mod validate;

#[cfg(test)]
mod test_batches;

pub use error::{Result, StorageError};
pub use log::{Log, LogAppendInfo, LogOffsets, LogReadInfo, ReadBound};
pub use log_maintenance::MaintenanceIntervals;
pub use log_manager::LogManager;

/// A topic name and partition number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
}

impl TopicPartition {
    /// `topic`'s partition `partition`.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}
