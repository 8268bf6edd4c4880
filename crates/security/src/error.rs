//! The one error type of the security crate.

use thiserror::Error;

/// Why a listener's TLS cannot be set up. Each names the key or file.
#[derive(Debug, Error)]
pub enum SecurityError {
    /// A store file that cannot be read.
    #[error("cannot read {key} {path}: {message}")]
    Read {
        /// The configuration key naming the file.
        key: String,
        /// The file.
        path: String,
        /// The OS error.
        message: String,
    },
    /// Store contents that cannot be used.
    #[error("{key}: {message}")]
    Store {
        /// The configuration key of the store.
        key: String,
        /// What is wrong, and how to fix it where there is a known way.
        message: String,
    },
    /// Settings rustls refuses (no usable cipher suite, a key that does not
    /// match the certificate, ...).
    #[error("TLS settings of listener {listener}: {message}")]
    Tls {
        /// The listener.
        listener: String,
        /// rustls' reason.
        message: String,
    },
}
