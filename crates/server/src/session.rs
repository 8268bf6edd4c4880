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
//! the connection is closed. Connections on PLAINTEXT and SSL listeners
//! need no authentication; their principal is `User:ANONYMOUS`.

use std::sync::Arc;

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
    },
    /// Authenticated.
    Authenticated {
        /// `User:<name>`.
        principal: String,
    },
    /// Failed: the connection closes once its answer is written.
    Failed,
}

/// One connection's standing.
#[derive(Debug)]
pub struct Session {
    authenticator: Option<Arc<SaslAuthenticator>>,
    state: Mutex<SaslState>,
}

impl Session {
    /// A connection on a listener without SASL.
    pub fn unauthenticated() -> Arc<Self> {
        Arc::new(Self {
            authenticator: None,
            state: Mutex::new(SaslState::Authenticated {
                principal: ANONYMOUS.into(),
            }),
        })
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

    /// Whether a request of `api` may run now.
    pub fn admits(&self, api: ApiKey) -> bool {
        matches!(*self.state.lock(), SaslState::Authenticated { .. })
            || matches!(
                api,
                ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
            )
    }

    /// The mechanism whose raw token the next frame is (after a v0
    /// handshake).
    pub fn raw_token_mechanism(&self) -> Option<SaslMechanism> {
        match *self.state.lock() {
            SaslState::AwaitingToken {
                mechanism,
                raw: true,
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
            SaslState::Authenticated { principal } => principal.clone(),
            _ => ANONYMOUS.into(),
        }
    }
}
