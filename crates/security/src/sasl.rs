//! SASL authentication on a listener: which mechanisms it offers and
//! whether a client's credentials hold.
//!
//! PLAIN (RFC 4616): the client's one message is
//! `[authzid] NUL authcid NUL passwd` in UTF-8. The user (`authcid`) must
//! be one of the listener's `user_<name>` options and the password match
//! (compared in constant time); an authorization id, when sent, must equal
//! the user (Kafka's rule: no impersonation). The principal is
//! `User:<name>`. A failure says why in general terms only ("Invalid
//! username or password", as Kafka), never which part was wrong; the
//! broker's log says more.

use std::collections::BTreeMap;

use strom_config::sasl::{SaslListenerConfig, SaslMechanism};
use subtle::ConstantTimeEq;

/// Longest PLAIN message accepted (Kafka allows 255-byte names; this is
/// generous and stops nothing real).
pub const MAX_PLAIN_MESSAGE_BYTES: usize = 64 * 1024;

/// Why a client's authentication failed: what the client is told, and what
/// the broker logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslFailure {
    /// For the client (SaslAuthenticate's error message).
    pub client_message: String,
    /// For the broker's log.
    pub detail: String,
}

impl SaslFailure {
    fn invalid_credentials(detail: impl Into<String>) -> Self {
        Self {
            client_message: "Authentication failed: Invalid username or password".into(),
            detail: detail.into(),
        }
    }

    fn malformed(detail: impl Into<String>) -> Self {
        let detail = detail.into();
        Self {
            client_message: format!("Authentication failed: {detail}"),
            detail,
        }
    }
}

/// One SASL listener's authenticator.
#[derive(Debug)]
pub struct SaslAuthenticator {
    listener: String,
    mechanisms: Vec<SaslMechanism>,
    plain_users: BTreeMap<String, String>,
    max_reauth_ms: u64,
}

impl SaslAuthenticator {
    /// The authenticator of `config`'s listener.
    pub fn new(config: &SaslListenerConfig) -> Self {
        Self {
            listener: config.listener.clone(),
            mechanisms: config.mechanisms.clone(),
            plain_users: config.plain_users.clone(),
            max_reauth_ms: config.max_reauth_ms,
        }
    }

    /// The session lifetime clients get (`connections.max.reauth.ms`); 0:
    /// sessions do not expire and re-authentication is not offered.
    pub fn max_reauth_ms(&self) -> u64 {
        self.max_reauth_ms
    }

    /// The listener.
    pub fn listener(&self) -> &str {
        &self.listener
    }

    /// The mechanisms' names, as SaslHandshake lists them.
    pub fn mechanism_names(&self) -> Vec<&'static str> {
        self.mechanisms.iter().map(|m| m.name()).collect()
    }

    /// The mechanism of `name`, when this listener offers it.
    pub fn mechanism(&self, name: &str) -> Option<SaslMechanism> {
        self.mechanisms
            .iter()
            .copied()
            .find(|m| m.name().eq_ignore_ascii_case(name))
    }

    /// Checks a client's message for `mechanism`; the principal's name on
    /// success (`User:<name>`).
    pub fn authenticate(
        &self,
        mechanism: SaslMechanism,
        message: &[u8],
    ) -> Result<String, SaslFailure> {
        match mechanism {
            SaslMechanism::Plain => self.authenticate_plain(message),
        }
    }

    fn authenticate_plain(&self, message: &[u8]) -> Result<String, SaslFailure> {
        if message.len() > MAX_PLAIN_MESSAGE_BYTES {
            return Err(SaslFailure::malformed(format!(
                "PLAIN message of {} bytes (at most {MAX_PLAIN_MESSAGE_BYTES})",
                message.len()
            )));
        }
        let text = std::str::from_utf8(message)
            .map_err(|_| SaslFailure::malformed("PLAIN message is not UTF-8"))?;
        let parts: Vec<&str> = text.split('\0').collect();
        let [authzid, user, password] = parts.as_slice() else {
            return Err(SaslFailure::malformed(
                "PLAIN message must be [authzid] NUL user NUL password",
            ));
        };
        if user.is_empty() {
            return Err(SaslFailure::malformed("PLAIN message has no user name"));
        }
        if !authzid.is_empty() && authzid != user {
            return Err(SaslFailure::malformed(
                "PLAIN authorization id differs from the user name",
            ));
        }
        let Some(expected) = self.plain_users.get(*user) else {
            return Err(SaslFailure::invalid_credentials(format!(
                "unknown user {user:?}"
            )));
        };
        if bool::from(expected.as_bytes().ct_eq(password.as_bytes())) {
            Ok(format!("User:{user}"))
        } else {
            Err(SaslFailure::invalid_credentials(format!(
                "wrong password for user {user:?}"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authenticator() -> SaslAuthenticator {
        SaslAuthenticator::new(&SaslListenerConfig {
            listener: "SASL_PLAINTEXT".into(),
            mechanisms: vec![SaslMechanism::Plain],
            plain_users: [("alice".to_string(), "alice-secret".to_string())].into(),
            max_reauth_ms: 0,
        })
    }

    #[test]
    fn plain_accepts_known_users_and_refuses_everything_else_without_saying_which_part_failed() {
        let a = authenticator();
        let plain = SaslMechanism::Plain;
        assert_eq!(
            a.authenticate(plain, b"\0alice\0alice-secret").unwrap(),
            "User:alice"
        );
        assert_eq!(
            a.authenticate(plain, b"alice\0alice\0alice-secret")
                .unwrap(),
            "User:alice"
        );
        let wrong = a.authenticate(plain, b"\0alice\0nope").unwrap_err();
        let unknown = a.authenticate(plain, b"\0bob\0alice-secret").unwrap_err();
        assert_eq!(wrong.client_message, unknown.client_message);
        assert!(wrong.detail.contains("wrong password"));
        assert!(unknown.detail.contains("unknown user"));
        for bad in [
            &b"alice-secret"[..],
            b"\0\0x",
            b"bob\0alice\0alice-secret",
            b"\xff\0a\0b",
        ] {
            assert!(a.authenticate(plain, bad).is_err(), "{bad:?}");
        }
        assert!(a
            .authenticate(plain, &vec![b'a'; MAX_PLAIN_MESSAGE_BYTES + 1])
            .is_err());
        assert_eq!(a.mechanism("plain"), Some(SaslMechanism::Plain));
        assert_eq!(a.mechanism("SCRAM-SHA-512"), None);
    }
}
