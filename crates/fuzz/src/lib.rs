//! Fuzzing Strom's decoders on the stable toolchain: every decoder of
//! input Strom does not control (bytes from a socket, files from a disk,
//! frames from another node) as a [`targets`] function, a seeded mutation
//! engine ([`mutate`], [`rng`]) run by [`campaign`], the seeds ([`corpus`]:
//! frames captured from real clients, files from a real broker, generated
//! requests of every served API and version, and every input that ever
//! broke a target), and [`net`], which sends mutated frames to a live
//! broker over many connections.
//!
//! `tests/corpus_replay.rs` runs every corpus file through its target;
//! `tests/mutation_campaign.rs` runs a short campaign of every target in
//! `tests/run`. Longer campaigns: `cargo run --release -p strom-fuzz --
//! run --executions 10000000` (see the README for figures).

#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod campaign;
pub mod corpus;
pub mod mutate;
pub mod net;
pub mod rng;
pub mod targets;
