//! What every layer of the broker shares about running: one home each.
//!
//! - [`clock`]: the one clock. Wall time ([`clock::now_ms`]: record
//!   timestamps, retention, commit times) and the monotonic lag clock
//!   ([`clock::lag_clock_ms`]: how long a follower has been behind). A
//!   simulation puts the wall clock on virtual time
//!   ([`clock::use_virtual_wall_clock`]), so it drives all of time.
//! - [`shutdown`]: the signal background tasks stop on.
//! - [`blocking`]: disk work on tokio's blocking pool, never on an async
//!   worker.
//! - [`parking`]: a request about to wait on other clients (a purgatory)
//!   lets its connection give back the request budget it holds.
//! - [`byte_budget`]: a broker-wide count of bytes held for clients (the
//!   fetch responses not yet written to their sockets).
//!
//! It knows nothing of Kafka; the crates above it (replication,
//! coordinator, controller, server) use it instead of copies of their own.

#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod blocking;
pub mod byte_budget;
pub mod clock;
pub mod parking;
pub mod shutdown;
