//! Strom's configuration, in Kafka's vocabulary.
//!
//! The broker reads Kafka's own `server.properties` keys (see
//! [`broker::BROKER_CONFIGS`]) and topics take Kafka's topic keys (see
//! [`topic::TOPIC_CONFIGS`]). Everything is parsed and validated once, at
//! start-up or when a topic is created or altered, into typed structs that
//! the rest of the broker reads; nothing here reads globals at run time.
//!
//! Precedence, lowest first: Kafka's default, the properties file,
//! `STROM_CFG_*` environment variables, `--override KEY=VALUE`.

#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod broker;
pub mod broker_keys;
pub mod definition;
pub mod error;
pub mod listener;
pub mod properties;
pub mod providers;
pub mod sasl;
pub mod source;
pub mod ssl;
pub mod throttle;
pub mod topic;

pub use broker::{
    BrokerConfig, ConfigInputs, GroupKeys, LoadedConfig, ProcessRole, QuorumVoter,
    ReplicaFetchConfig,
};
pub use error::ConfigError;
pub use listener::Listener;
pub use source::{ConfigSource, ConfigSynonym, DescribedConfig};
pub use topic::{
    describe_topic_configs, validate_topic_overrides, LogDefaults, MessageTimestampType,
    TopicConfig,
};
