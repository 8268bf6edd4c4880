//! The replication layer's errors and their Kafka error codes, mapped here
//! in one place.

use strom_protocol::ErrorCode;
use strom_storage::StorageError;
use thiserror::Error;

/// Why a partition operation failed.
#[derive(Debug, Error)]
pub enum ReplicaError {
    /// The topic or partition does not exist.
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    /// The topic id does not exist.
    #[error("unknown topic id")]
    UnknownTopicId,
    /// This broker is not the partition's leader.
    #[error("this broker is not the leader of the partition")]
    NotLeaderOrFollower,
    /// The request's leader epoch is older than the partition's.
    #[error("leader epoch {request} is older than the current {current}")]
    FencedLeaderEpoch {
        /// Epoch in the request.
        request: i32,
        /// The partition's epoch.
        current: i32,
    },
    /// The request's leader epoch is newer than the partition's.
    #[error("leader epoch {request} is newer than the current {current}")]
    UnknownLeaderEpoch {
        /// Epoch in the request.
        request: i32,
        /// The partition's epoch.
        current: i32,
    },
    /// `acks` is not −1, 0 or 1.
    #[error("acks must be -1, 0 or 1")]
    InvalidRequiredAcks,
    /// Fewer in-sync replicas than `min.insync.replicas`.
    #[error("the in-sync replicas ({isr}) are fewer than min.insync.replicas={min_isr}")]
    NotEnoughReplicas {
        /// ISR size.
        isr: usize,
        /// Required.
        min_isr: i32,
    },
    /// An acks=all batch was written and replicated, but the ISR shrank
    /// below `min.insync.replicas` meanwhile.
    #[error("the ISR shrank below min.insync.replicas after the append")]
    NotEnoughReplicasAfterAppend,
    /// The write did not reach the ISR in time.
    #[error("timed out waiting for in-sync replicas")]
    RequestTimedOut,
    /// A bug: the operation panicked (the panic is logged); other
    /// partitions of the request are unaffected.
    #[error("internal error: {0}")]
    Internal(String),
    /// A storage failure or refused records.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl ReplicaError {
    /// The Kafka error code a client sees.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            ReplicaError::UnknownTopicOrPartition => ErrorCode::UnknownTopicOrPartition,
            ReplicaError::UnknownTopicId => ErrorCode::UnknownTopicId,
            ReplicaError::NotLeaderOrFollower => ErrorCode::NotLeaderOrFollower,
            ReplicaError::FencedLeaderEpoch { .. } => ErrorCode::FencedLeaderEpoch,
            ReplicaError::UnknownLeaderEpoch { .. } => ErrorCode::UnknownLeaderEpoch,
            ReplicaError::InvalidRequiredAcks => ErrorCode::InvalidRequiredAcks,
            ReplicaError::NotEnoughReplicas { .. } => ErrorCode::NotEnoughReplicas,
            ReplicaError::NotEnoughReplicasAfterAppend => ErrorCode::NotEnoughReplicasAfterAppend,
            ReplicaError::RequestTimedOut => ErrorCode::RequestTimedOut,
            ReplicaError::Internal(_) => ErrorCode::UnknownServerError,
            ReplicaError::Storage(e) => e.error_code(),
        }
    }
}
