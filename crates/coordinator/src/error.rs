//! The coordinator's error type.

use thiserror::Error;

/// Failures of the coordinator itself (as opposed to refused requests,
/// which carry their Kafka error code in the response).
#[derive(Debug, Error)]
pub enum CoordinatorError {
    /// A `__consumer_offsets` record that does not decode.
    #[error("corrupt __consumer_offsets record: {0}")]
    Corrupt(String),
}
