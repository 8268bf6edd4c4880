//! Where a configuration value came from, as DescribeConfigs reports it.

/// Kafka's `ConfigSource`, with the ids of DescribeConfigs v1+.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ConfigSource {
    /// A topic's own override.
    TopicConfig,
    /// Set dynamically for one broker.
    DynamicBrokerConfig,
    /// Set dynamically as the cluster-wide broker default.
    DynamicDefaultBrokerConfig,
    /// Set in the broker's file, environment or command line.
    StaticBrokerConfig,
    /// Kafka's built-in default.
    DefaultConfig,
}

impl ConfigSource {
    /// The numeric id DescribeConfigs uses.
    pub fn id(self) -> i8 {
        match self {
            ConfigSource::TopicConfig => 1,
            ConfigSource::DynamicBrokerConfig => 2,
            ConfigSource::DynamicDefaultBrokerConfig => 3,
            ConfigSource::StaticBrokerConfig => 4,
            ConfigSource::DefaultConfig => 5,
        }
    }
}

/// One value in a synonym chain, most specific first.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigSynonym {
    /// Key of the synonym (a broker key for topic configs).
    pub name: String,
    /// Its value as text.
    pub value: Option<String>,
    /// Where it came from.
    pub source: ConfigSource,
}

/// One described configuration entry.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribedConfig {
    /// Kafka key.
    pub name: String,
    /// Value as text; `None` for sensitive or unset values.
    pub value: Option<String>,
    /// Source of the effective value.
    pub source: ConfigSource,
    /// Cannot be changed at run time.
    pub read_only: bool,
    /// A secret.
    pub sensitive: bool,
    /// Type id for DescribeConfigs v3+.
    pub config_type: i8,
    /// Documentation.
    pub documentation: &'static str,
    /// Values this one overrides, most specific first (including itself).
    pub synonyms: Vec<ConfigSynonym>,
}
