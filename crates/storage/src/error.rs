//! The storage crate's error type and its Kafka error codes (the one place
//! storage errors are mapped).

use std::path::PathBuf;

use strom_protocol::batch::BatchError;
use strom_protocol::ErrorCode;
use thiserror::Error;

/// Everything that can go wrong reading or writing a partition log.
#[derive(Debug, Error)]
pub enum StorageError {
    /// An I/O error on a file or directory.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A produce request's records are malformed or fail their CRC.
    #[error("corrupt record batch: {0}")]
    CorruptBatch(BatchError),
    /// A produce request's records are well-formed but not acceptable.
    #[error("invalid records: {0}")]
    InvalidRecord(String),
    /// A batch larger than `max.message.bytes`.
    #[error("record batch of {size_bytes} bytes exceeds max.message.bytes={max_message_bytes}")]
    MessageTooLarge {
        /// Size of the batch.
        size_bytes: usize,
        /// The topic's limit.
        max_message_bytes: i32,
    },
    /// A produce request of legacy (v0/v1) messages.
    #[error("record batch magic {0} is not supported; only magic v2 is stored")]
    UnsupportedMagic(i8),
    /// A compression codec id Kafka does not define.
    #[error("{0}")]
    UnknownCompression(String),
    /// A compression codec the request version cannot carry.
    #[error("compression codec not supported by produce version {0}")]
    UnsupportedCompression(i16),
    /// A CreateTime timestamp outside the topic's accepted window.
    #[error("timestamp {timestamp} is out of the accepted range [{min}, {max}]")]
    InvalidTimestamp {
        /// The offending timestamp.
        timestamp: i64,
        /// Earliest accepted.
        min: i64,
        /// Latest accepted.
        max: i64,
    },
    /// An offset outside `[log start offset, log end offset]`.
    #[error("offset {offset} is out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        /// Requested offset.
        offset: i64,
        /// First offset in the log.
        log_start_offset: i64,
        /// Offset after the last record.
        log_end_offset: i64,
    },
    /// An index or checkpoint file that cannot be trusted.
    #[error("corrupt file {path}: {reason}")]
    CorruptFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An idempotent producer's batch with an older epoch than its last.
    #[error("producer {producer_id} epoch {epoch} is older than the current {current}")]
    InvalidProducerEpoch {
        /// Producer id.
        producer_id: i64,
        /// Epoch in the batch.
        epoch: i16,
        /// The partition's epoch for it.
        current: i16,
    },
    /// An idempotent producer's batch that does not follow its last one.
    #[error("producer {producer_id}: sequence {received} where {expected} was expected")]
    OutOfOrderSequence {
        /// Producer id.
        producer_id: i64,
        /// Next sequence the partition expects.
        expected: i32,
        /// First sequence of the batch.
        received: i32,
    },
    /// A follower got batches that do not continue its log (they start
    /// below or beyond its end, or go backwards): it must truncate or
    /// fetch again from its end.
    #[error("batches from the leader start at offset {got}, but the log ends at {expected}")]
    UnexpectedAppendOffset {
        /// The log end offset.
        expected: i64,
        /// The offset the batches start at.
        got: i64,
    },
    /// A transactional batch with no transaction to belong to.
    #[error("transactional batches need a transaction, and transactions are not supported yet")]
    InvalidTxnState,
    /// A write or fsync failed earlier; the log accepts nothing until the
    /// broker restarts and recovers it.
    #[error("log {partition} is offline after an I/O error: {reason}")]
    LogOffline {
        /// The partition.
        partition: String,
        /// The error that took it offline.
        reason: String,
    },
    /// The log was deleted or closed while in use.
    #[error("log {0} is closed")]
    Closed(String),
}

impl From<BatchError> for StorageError {
    fn from(e: BatchError) -> Self {
        match e {
            BatchError::InvalidRecord(m) => StorageError::InvalidRecord(m),
            other => StorageError::CorruptBatch(other),
        }
    }
}

impl StorageError {
    /// Wraps an I/O error with what was being done to which path.
    pub fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| StorageError::Io { op, path, source }
    }

    /// The Kafka error code a client sees for this error.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            StorageError::Io { .. } => ErrorCode::KafkaStorageError,
            StorageError::CorruptBatch(BatchError::UnsupportedMagic(_)) => ErrorCode::InvalidRecord,
            StorageError::CorruptBatch(BatchError::InvalidRecord(_)) => ErrorCode::InvalidRecord,
            StorageError::CorruptBatch(_) => ErrorCode::CorruptMessage,
            StorageError::InvalidRecord(_) => ErrorCode::InvalidRecord,
            StorageError::MessageTooLarge { .. } => ErrorCode::MessageTooLarge,
            StorageError::UnsupportedMagic(_) => ErrorCode::InvalidRecord,
            StorageError::UnknownCompression(_) => ErrorCode::UnknownServerError,
            StorageError::UnsupportedCompression(_) => ErrorCode::UnsupportedCompressionType,
            StorageError::InvalidTimestamp { .. } => ErrorCode::InvalidTimestamp,
            StorageError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
            StorageError::CorruptFile { .. } => ErrorCode::KafkaStorageError,
            StorageError::InvalidProducerEpoch { .. } => ErrorCode::InvalidProducerEpoch,
            StorageError::OutOfOrderSequence { .. } => ErrorCode::OutOfOrderSequenceNumber,
            StorageError::InvalidTxnState => ErrorCode::InvalidTxnState,
            StorageError::UnexpectedAppendOffset { .. } => ErrorCode::UnknownServerError,
            StorageError::LogOffline { .. } => ErrorCode::KafkaStorageError,
            StorageError::Closed(_) => ErrorCode::NotLeaderOrFollower,
        }
    }
}

/// Shorthand for storage results.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;
