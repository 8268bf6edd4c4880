//! The metadata quorum's Raft types: what an entry carries, what applying
//! it answers, and how voters are addressed.
//!
//! A node id is Kafka's `node.id`. A Raft term is KRaft's epoch and a log
//! index is the metadata log offset: entry `i` is the batch at offset `i`
//! of `__cluster_metadata-0` (see [`crate::raft_log`]).

use std::fmt;
use std::io::Cursor;

use serde::{Deserialize, Serialize};
use strom_metadata::MetadataRecord;

openraft::declare_raft_types!(
    /// The metadata quorum's Raft type configuration.
    pub MetadataRaft:
        D = MetadataBatch,
        R = AppliedBatch,
        NodeId = u64,
        Node = ControllerNode,
        Entry = openraft::Entry<MetadataRaft>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The records one controller operation commits together: they are applied
/// all or none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataBatch(pub Vec<MetadataRecord>);

/// What applying a batch did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedBatch {
    /// The metadata offset (log index) the batch was applied at.
    pub offset: i64,
    /// Why the batch was not applied (records inconsistent with the image,
    /// a controller bug); every node skips it alike.
    pub refused: Option<String>,
}

/// A voter's (or learner's) controller endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerNode {
    /// Host.
    pub host: String,
    /// Port of the controller listener.
    pub port: u16,
}

impl ControllerNode {
    /// `host:port`.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

impl fmt::Display for ControllerNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// A log id of the metadata quorum.
pub type MetadataLogId = openraft::LogId<u64>;

/// A stored vote of the metadata quorum.
pub type MetadataVote = openraft::Vote<u64>;

/// Storage errors as openraft reports them.
pub type RaftStorageError = openraft::StorageError<u64>;

/// A log id from a term and an index.
pub fn log_id(term: u64, index: u64) -> MetadataLogId {
    openraft::LogId::new(openraft::CommittedLeaderId::new(term, 0), index)
}
