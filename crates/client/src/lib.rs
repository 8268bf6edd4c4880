//! The broker's client side of the Kafka protocol: a connection from this
//! broker to another over its inter-broker listener, framed and bounded
//! like the server side, one request at a time.
//!
//! In the data flow (see `docs/ARCHITECTURE.md`) a follower's replica
//! fetcher (crate `replication`) fetches from its partition leaders
//! through a [`BrokerClient`]; inter-broker requests that come with new
//! features (transaction markers, say) use it too. It knows requests and
//! responses only as kafka-protocol messages, nothing of partitions.

pub mod broker_client;

pub use broker_client::{BrokerClient, ClientError, MAX_RESPONSE_FRAME_BYTES};
