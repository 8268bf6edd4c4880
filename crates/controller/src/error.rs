//! The controller's errors: each carries the Kafka error code and message a
//! client receives (Kafka's `ApiError`), decided here, in one place.

use serde::{Deserialize, Serialize};
use strom_protocol::ErrorCode;
use thiserror::Error;

/// A request the controller refuses, with the code and message for the
/// client. (On the controller RPC it travels as its numeric code.)
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
#[serde(into = "WireApiError", try_from = "WireApiError")]
#[error("{code}: {}", message.as_deref().unwrap_or(""))]
pub struct ApiError {
    /// Kafka error code.
    pub code: ErrorCode,
    /// Message for the client.
    pub message: Option<String>,
}

/// [`ApiError`] on the controller RPC.
#[derive(Serialize, Deserialize)]
struct WireApiError {
    code: i16,
    message: Option<String>,
}

impl From<ApiError> for WireApiError {
    fn from(e: ApiError) -> Self {
        Self {
            code: e.code.code(),
            message: e.message,
        }
    }
}

impl TryFrom<WireApiError> for ApiError {
    type Error = String;

    fn try_from(w: WireApiError) -> Result<Self, String> {
        Ok(Self {
            code: ErrorCode::try_from_code(w.code)
                .ok_or_else(|| format!("error code {}", w.code))?,
            message: w.message,
        })
    }
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

    /// A metadata log record that does not decode or apply.
    #[error("metadata log is corrupt: {0}")]
    Corrupt(String),
    /// This node does not lead the quorum (the leader, if known).
    #[error("this node is not the active controller (the leader is {0:?})")]
    NotLeader(Option<u64>),
    /// The quorum cannot commit now (no leader, stopped).
    #[error("the metadata quorum is unavailable: {0}")]
    Unavailable(String),
    /// `controller.quorum.voters` names other voters than the metadata log
    /// this node holds: the voters of an existing quorum cannot change.
    #[error(
        "controller.quorum.voters names voters {configured:?}, but this node's metadata log \
         belongs to a quorum of voters {stored:?}; the voters of an existing quorum cannot \
         change (put controller.quorum.voters back, or start from empty log directories)"
    )]
    VotersChanged {
        /// Voter ids in the configuration.
        configured: Vec<u64>,
        /// Voter ids in the metadata log.
        stored: Vec<u64>,
    },
}

impl ControllerError {
    /// What a client sees when the controller cannot do its work: requests
    /// that may succeed on a retry get NOT_CONTROLLER, as Kafka's do when
    /// the active controller moves.
    pub fn to_api_error(&self) -> ApiError {
        let code = match self {
            Self::NotLeader(_) | Self::Unavailable(_) => ErrorCode::NotController,
            Self::Storage(_) | Self::Corrupt(_) | Self::VotersChanged { .. } => {
                ErrorCode::KafkaStorageError
            }
        };
        ApiError::new(code, self.to_string())
    }
}
