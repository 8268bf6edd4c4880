//! Who a client is and how its bytes are protected.
//!
//! Today: TLS for listeners of security protocol SSL ([`tls`]), built from
//! Kafka's `ssl.*` keys ([`strom_config::ssl::SslConfig`]) with rustls (no
//! hand-written cryptography), key and trust stores in PEM or PKCS#12
//! ([`stores`]), re-read when their files change so a certificate rotation
//! needs no restart; SASL authentication ([`sasl`]) with PLAIN. SCRAM,
//! OAUTHBEARER, ACLs and client quotas come next (issue 17).

#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod error;
pub mod principal;
pub mod sasl;
pub mod stores;
pub mod tls;

pub use error::SecurityError;
pub use sasl::{SaslAuthenticator, SaslFailure};
pub use tls::TlsListener;
