//! Strom's Kafka front end: listeners, connections, and one handler per
//! Kafka API.
//!
//! In the data flow (see `docs/ARCHITECTURE.md`) bytes arrive on a
//! [`listener`], a [`connection`] cuts them into size-checked frames and
//! decodes each request header, and the [`registry`] dispatches the request
//! to its handler in [`handlers`] (one file per API). Handlers translate
//! between Kafka's messages and the layers below (controller for metadata
//! changes, replica manager for partitions) and hold no business logic of
//! their own. [`broker`] starts and stops everything in order. The [`http`]
//! endpoint serves the [`metrics`] and the health checks ([`readiness`]).

#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod broker;
pub mod connection;
pub mod connection_quotas;
pub mod context;
pub mod fetch_memory;
pub mod handlers;
pub mod http;
pub mod isr_updates;
pub mod legacy;
pub mod lifecycle;
pub mod listener;
pub mod metrics;
pub mod provisioning;
pub mod readiness;
pub mod registry;
pub mod request_budget;
pub mod session;
pub mod state;

pub use broker::{Broker, StartError};
pub use state::BrokerState;
