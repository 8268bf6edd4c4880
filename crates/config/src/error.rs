//! The one error type of the config crate.

use thiserror::Error;

/// A configuration that cannot be used. Each variant names the key.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ConfigError {
    /// A value that does not parse or is out of range.
    #[error("invalid value '{value}' for configuration {key}: {message}")]
    Invalid {
        /// The key.
        key: String,
        /// The rejected text.
        value: String,
        /// What is accepted instead.
        message: String,
    },
    /// A key that a topic cannot have.
    #[error("unknown topic configuration {0}")]
    UnknownTopicConfig(String),
    /// A required key is missing or keys contradict each other.
    #[error("configuration {key}: {message}")]
    Inconsistent {
        /// The key at fault.
        key: String,
        /// Why.
        message: String,
    },
    /// A configuration file that cannot be read.
    #[error("cannot read configuration file {path}: {message}")]
    File {
        /// Path given.
        path: String,
        /// OS error text.
        message: String,
    },
}

impl ConfigError {
    /// The key this error is about, when there is one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } | ConfigError::Inconsistent { key, .. } => Some(key),
            ConfigError::UnknownTopicConfig(key) => Some(key),
            ConfigError::File { .. } => None,
        }
    }
}
