//! The controller's errors: each carries the Kafka error code and message a
//! client receives (Kafka's `ApiError`), decided here, in one place.

use strom_protocol::ErrorCode;
use thiserror::Error;

/// A request the controller refuses, with the code and message for the
/// client.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{code}: {}", message.as_deref().unwrap_or(""))]
pub struct ApiError {
    /// Kafka error code.
    pub code: ErrorCode,
    /// Message for the client.
    pub message: Option<String>,
}

impl ApiError {
    /// An error with a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: Some(message.into()),
        }
    }
}

/// Failures of the controller itself (its log), as opposed to refused
/// requests.
#[derive(Debug, Error)]
pub enum ControllerError {
    /// The metadata log could not be read or written.
    #[error("metadata log: {0}")]
    Storage(#[from] strom_storage::StorageError),
    /// An earlier metadata log write failed; nothing more is written until
    /// the broker restarts.
    #[error("the metadata log failed earlier; restart the broker")]
    Fenced,
    /// A metadata log record that does not decode or apply.
    #[error("metadata log is corrupt: {0}")]
    Corrupt(String),
}

impl ControllerError {
    /// What a client sees when the controller cannot do its work.
    pub fn to_api_error(&self) -> ApiError {
        ApiError::new(ErrorCode::KafkaStorageError, self.to_string())
    }
}
