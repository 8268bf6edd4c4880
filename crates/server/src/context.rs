//! What a handler knows about the request it serves and the broker it runs
//! in.

use std::net::SocketAddr;
use std::sync::Arc;

use strom_metadata::MetadataImage;

use crate::fetch_memory::HeldUntilWritten;
use crate::session::Session;

use crate::state::BrokerState;

/// Per-request context.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The broker.
    pub broker: Arc<BrokerState>,
    /// API version of the request.
    pub api_version: i16,
    /// Correlation id.
    pub correlation_id: i32,
    /// The client's id, if sent.
    pub client_id: Option<Arc<str>>,
    /// Peer address.
    pub peer: SocketAddr,
    /// Name of the listener the request came in on.
    pub listener_name: Arc<str>,
    /// Memory the response holds until the connection has written it.
    pub held_until_written: HeldUntilWritten,
    /// The connection's security standing (SASL state, principal).
    pub session: Arc<Session>,
}

impl RequestContext {
    /// The metadata image this broker has applied.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.broker.image()
    }
}
