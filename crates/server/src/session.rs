//! A connection's security standing: on a SASL listener, how far its client
//! has authenticated, and who it is.
//!
//! A SASL_PLAINTEXT or SASL_SSL connection starts awaiting SaslHandshake;
//! until it has authenticated, only ApiVersions, SaslHandshake and
//! SaslAuthenticate run (anything else closes the connection, as Kafka's
//! authenticator does). SaslHandshake names a mechanism the listener
//! offers; then SaslAuthenticate (v1 handshakes) or, after a v0 handshake,
//! the client's raw SASL token as a bare size-prefixed frame (answered with
//! a bare frame: empty for PLAIN) completes it. A failure is answered, then
//! the connection is closed. With `connections.max.reauth.ms` (KIP-368) a
//! client that logged in with SaslAuthenticate v1+ is given that session
//! lifetime; it re-authenticates on the same connection (SaslHandshake and
//! SaslAuthenticate again, same mechanism, same principal), and a session
//! past its lifetime may do nothing else: anything else closes the
//! connection. Connections on PLAINTEXT listeners, and on SSL ones without
//! a client certificate, need no authentication; their principal is
//! `User:ANONYMOUS` (with a certificate: its mapped subject).

use std::sync::Arc;
use std::time::Instant;

use kafka_protocol::messages::ApiKey;
use parking_lot::Mutex;
use strom_config::sasl::SaslMechanism;
use strom_security::SaslAuthenticator;

/// The principal of a connection that did not authenticate.
pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// Where a SASL connection's authentication stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslState {
    /// Nothing yet: SaslHandshake comes first.
    AwaitingHandshake,
    /// The mechanism is chosen; its token comes next, in SaslAuthenticate
    /// or (after a v0 handshake) as a raw frame.
    AwaitingToken {
        /// The mechanism.
        mechanism: SaslMechanism,
        /// Whether the token comes as a raw frame (v0 handshake).
        raw: bool,
        /// When re-authenticating (KIP-368): the principal it must stay.
        reauthenticating: Option<String>,
    },
    /// Authenticated.
    Authenticated {
        /// `User:<name>`.
        principal: String,
        /// The SASL mechanism it logged in with (none: TLS or no login).
        mechanism: Option<SaslMechanism>,
        /// When the session ends unless re-authenticated
        /// (`connections.max.reauth.ms`).
        expires_at: Option<Instant>,
    },
    /// Failed: the connection closes once its answer is written.
    Failed,
}

/// Whether a request may run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// It may.
    Admit,
    /// It may not: the connection closes, for this reason.
    Refuse(&'static str),
}

fn is_sasl_api(api: ApiKey) -> bool {
    matches!(
        api,
        ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
    )
}

/// One connection's standing.
#[derive(Debug)]
pub struct Session {
    authenticator: Option<Arc<SaslAuthenticator>>,
    state: Mutex<SaslState>,
}

impl Session {
    fn authenticated(principal: String) -> Arc<Self> {
        Arc::new(Self {
            authenticator: None,
            state: Mutex::new(SaslState::Authenticated {
                principal,
                mechanism: None,
                expires_at: None,
            }),
        })
    }

    /// A connection on a listener without SASL.
    pub fn unauthenticated() -> Arc<Self> {
        Self::authenticated(ANONYMOUS.into())
    }

    /// A connection whose client certificate made it `principal` (an SSL
    /// listener asking for certificates).
    pub fn certificate(principal: String) -> Arc<Self> {
        Self::authenticated(principal)
    }

    /// A connection on a SASL listener.
    pub fn sasl(authenticator: Arc<SaslAuthenticator>) -> Arc<Self> {
        Arc::new(Self {
            authenticator: Some(authenticator),
            state: Mutex::new(SaslState::AwaitingHandshake),
        })
    }

    /// The listener's authenticator, on a SASL listener.
    pub fn authenticator(&self) -> Option<&Arc<SaslAuthenticator>> {
        self.authenticator.as_ref()
    }

    /// Where authentication stands.
    pub fn state(&self) -> SaslState {
        self.state.lock().clone()
    }

    /// Moves authentication on.
    pub fn set_state(&self, state: SaslState) {
        *self.state.lock() = state;
    }

    /// Whether a request of `api` may run now: before authentication, and
    /// while re-authenticating, only ApiVersions and the SASL requests; a
    /// session past its lifetime only a re-authentication.
    pub fn admits(&self, api: ApiKey, now: Instant) -> Admission {
        match &*self.state.lock() {
            _ if is_sasl_api(api) => Admission::Admit,
            SaslState::Authenticated {
                expires_at: Some(at),
                ..
            } if now >= *at => Admission::Refuse(
                "the SASL session expired (connections.max.reauth.ms) without re-authentication",
            ),
            SaslState::Authenticated { .. } => Admission::Admit,
            _ => Admission::Refuse("a request before SASL authentication"),
        }
    }

    /// The mechanism whose raw token the next frame is (after a v0
    /// handshake).
    pub fn raw_token_mechanism(&self) -> Option<SaslMechanism> {
        match *self.state.lock() {
            SaslState::AwaitingToken {
                mechanism,
                raw: true,
                ..
            } => Some(mechanism),
            _ => None,
        }
    }

    /// Whether the connection must close once its answers are written.
    pub fn must_close(&self) -> bool {
        *self.state.lock() == SaslState::Failed
    }

    /// Who the client is: `User:<name>`, or `User:ANONYMOUS`.
    pub fn principal(&self) -> String {
        match &*self.state.lock() {
            SaslState::Authenticated { principal, .. } => principal.clone(),
            _ => ANONYMOUS.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn an_expired_session_admits_only_a_re_authentication() {
        let session = Session::unauthenticated();
        let now = Instant::now();
        assert_eq!(session.admits(ApiKey::Metadata, now), Admission::Admit);
        session.set_state(SaslState::Authenticated {
            principal: "User:alice".into(),
            mechanism: Some(SaslMechanism::Plain),
            expires_at: Some(now + Duration::from_secs(1)),
        });
        assert_eq!(session.admits(ApiKey::Fetch, now), Admission::Admit);
        let later = now + Duration::from_secs(2);
        assert!(matches!(
            session.admits(ApiKey::Fetch, later),
            Admission::Refuse(_)
        ));
        assert_eq!(
            session.admits(ApiKey::SaslHandshake, later),
            Admission::Admit
        );
        session.set_state(SaslState::AwaitingToken {
            mechanism: SaslMechanism::Plain,
            raw: false,
            reauthenticating: Some("User:alice".into()),
        });
        assert!(matches!(
            session.admits(ApiKey::Produce, now),
            Admission::Refuse(_)
        ));
    }
}
