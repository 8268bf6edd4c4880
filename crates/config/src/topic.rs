//! Topic configurations: Kafka's topic-level keys, each with the broker keys
//! that provide its default (`retention.ms` ← `log.retention.ms`,
//! `log.retention.minutes`, `log.retention.hours`), and the typed
//! [`TopicConfig`] a partition's log runs with.
//!
//! A topic's effective value is its own override if it has one, else the
//! first broker synonym set in the broker's configuration, else Kafka's
//! default.

use std::collections::BTreeMap;

use crate::definition::{ConfigDef, ConfigType, ConfigValue, Validator, NO_MAX};
use crate::error::ConfigError;
use crate::source::{ConfigSource, ConfigSynonym, DescribedConfig};
use crate::throttle::ThrottledReplicas;

/// A broker key that provides a topic key's default, with the factor that
/// converts its unit to the topic key's unit (e.g. hours → ms).
#[derive(Debug, Clone, Copy)]
pub struct BrokerSynonym {
    /// Broker key.
    pub key: &'static str,
    /// Multiply the broker value by this.
    pub factor: i64,
}

const fn syn(key: &'static str) -> BrokerSynonym {
    BrokerSynonym { key, factor: 1 }
}

const MS_PER_MINUTE: i64 = 60_000;
const MS_PER_HOUR: i64 = 3_600_000;

/// A topic key with its broker synonyms.
#[derive(Debug, Clone, Copy)]
pub struct TopicConfigDef {
    /// Key, type, default and validation.
    pub def: ConfigDef,
    /// Broker keys providing the default, most specific first.
    pub synonyms: &'static [BrokerSynonym],
}

macro_rules! topic_key {
    ($name:literal, $kind:ident, $default:expr, $validator:expr, [$($syn:expr),*], $doc:literal) => {
        TopicConfigDef {
            def: ConfigDef {
                name: $name,
                kind: ConfigType::$kind,
                default: $default,
                validator: $validator,
                doc: $doc,
            },
            synonyms: &[$($syn),*],
        }
    };
}

/// `Long.MAX_VALUE` as text, Kafka's "never" for counts and intervals.
pub const LONG_MAX_TEXT: &str = "9223372036854775807";

/// Codecs accepted by `compression.type`.
pub const COMPRESSION_TYPES: &[&str] =
    &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];
/// Values of `message.timestamp.type`.
pub const TIMESTAMP_TYPES: &[&str] = &["CreateTime", "LogAppendTime"];
/// Values of `cleanup.policy`.
pub const CLEANUP_POLICIES: &[&str] = &["delete", "compact"];

/// Every topic-level key Strom knows, in Kafka's order.
pub const TOPIC_CONFIGS: &[TopicConfigDef] = &[
    topic_key!(
        "cleanup.policy",
        List,
        Some("delete"),
        Validator::ListOf(CLEANUP_POLICIES),
        [syn("log.cleanup.policy")],
        "Retention policy of old segments: delete, compact, or both."
    ),
    topic_key!(
        "compression.type",
        String,
        Some("producer"),
        Validator::OneOfIgnoreCase(COMPRESSION_TYPES),
        [syn("compression.type")],
        "Final compression of the topic; 'producer' keeps the producer's codec."
    ),
    topic_key!(
        "delete.retention.ms",
        Long,
        Some("86400000"),
        Validator::Range {
            min: 0,
            max: NO_MAX
        },
        [syn("log.cleaner.delete.retention.ms")],
        "How long delete tombstones are kept on compacted topics."
    ),
    topic_key!(
        "file.delete.delay.ms",
        Long,
        Some("60000"),
        Validator::Range {
            min: 0,
            max: NO_MAX
        },
        [syn("log.segment.delete.delay.ms")],
        "Delay before a deleted segment's files are removed."
    ),
    topic_key!(
        "flush.messages",
        Long,
        Some(LONG_MAX_TEXT),
        Validator::Range {
            min: 1,
            max: NO_MAX
        },
        [syn("log.flush.interval.messages")],
        "Force an fsync after this many messages; 1 fsyncs every batch before acknowledging it."
    ),
    topic_key!(
        "flush.ms",
        Long,
        Some(LONG_MAX_TEXT),
        Validator::Range {
            min: 0,
            max: NO_MAX
        },
        [
            syn("log.flush.interval.ms"),
            syn("log.flush.scheduler.interval.ms")
        ],
        "Force an fsync when data is older than this many milliseconds."
    ),
    topic_key!(
        "follower.replication.throttled.replicas",
        List,
        Some(""),
        Validator::ThrottledReplicas,
        [],
        "Replicas (partition:broker, or *) whose replication the follower throttles to follower.replication.throttled.rate."
    ),
    topic_key!(
        "index.interval.bytes",
        Int,
        Some("4096"),
        Validator::Range {
            min: 0,
            max: NO_MAX
        },
        [syn("log.index.interval.bytes")],
        "Bytes of log between two offset index entries."
    ),
    topic_key!(
        "max.compaction.lag.ms",
        Long,
        Some(LONG_MAX_TEXT),
        Validator::Range {
            min: 1,
            max: NO_MAX
        },
        [syn("log.cleaner.max.compaction.lag.ms")],
        "Longest time a message stays uncompacted."
    ),
    topic_key!(
        "max.message.bytes",
        Int,
        Some("1048588"),
        Validator::Range {
            min: 0,
            max: NO_MAX
        },
        [syn("message.max.bytes")],
        "Largest record batch the topic accepts, in bytes."
    ),
    topic_key!(
        "message.timestamp.after.max.ms",
        Long,
        Some("3600000"),
        Validator::Range {
            min: 0,
            max: NO_MAX
        },
        [syn("log.message.timestamp.after.max.ms")],
        "How far in the future a CreateTime timestamp may be."
    ),
    topic_key!(
        "message.timestamp.before.max.ms",
        Long,
        Some(LONG_MAX_TEXT),
        Validator::Range {
            min: 0,
            max: NO_MAX
        },
        [syn("log.message.timestamp.before.max.ms")],
        "How far in the past a CreateTime timestamp may be."
    ),
    topic_key!(
        "message.timestamp.type",
        String,
        Some("CreateTime"),
        Validator::OneOf(TIMESTAMP_TYPES),
        [syn("log.message.timestamp.type")],
        "CreateTime keeps the producer's timestamps; LogAppendTime stamps batches on append."
    ),
    topic_key!(
        "min.cleanable.dirty.ratio",
        Double,
        Some("0.5"),
        Validator::DoubleRange { min: 0.0, max: 1.0 },
        [syn("log.cleaner.min.cleanable.ratio")],
        "Dirty ratio above which the log is compacted."
    ),
    topic_key!(
        "min.compaction.lag.ms",
        Long,
        Some("0"),
        Validator::Range {
            min: 0,
            max: NO_MAX
        },
        [syn("log.cleaner.min.compaction.lag.ms")],
        "Shortest time a message stays uncompacted."
    ),
    topic_key!(
        "leader.replication.throttled.replicas",
        List,
        Some(""),
        Validator::ThrottledReplicas,
        [],
        "Replicas (partition:broker, or *) whose replication the leader throttles to leader.replication.throttled.rate."
    ),
    topic_key!(
        "min.insync.replicas",
        Int,
        Some("1"),
        Validator::Range {
            min: 1,
            max: NO_MAX
        },
        [syn("min.insync.replicas")],
        "In-sync replicas an acks=all write needs."
    ),
    topic_key!(
        "preallocate",
        Boolean,
        Some("false"),
        Validator::Any,
        [syn("log.preallocate")],
        "Preallocate segment files on roll."
    ),
    topic_key!(
        "retention.bytes",
        Long,
        Some("-1"),
        Validator::Any,
        [syn("log.retention.bytes")],
        "Largest size of a partition's log before old segments are deleted; -1 is unlimited."
    ),
    topic_key!(
        "retention.ms",
        Long,
        Some("604800000"),
        Validator::Range {
            min: -1,
            max: NO_MAX
        },
        [
            syn("log.retention.ms"),
            BrokerSynonym {
                key: "log.retention.minutes",
                factor: MS_PER_MINUTE
            },
            BrokerSynonym {
                key: "log.retention.hours",
                factor: MS_PER_HOUR
            }
        ],
        "How long segments are kept before deletion; -1 is forever."
    ),
    topic_key!(
        "segment.bytes",
        Int,
        Some("1073741824"),
        Validator::Range {
            min: 14,
            max: NO_MAX
        },
        [syn("log.segment.bytes")],
        "Size at which a segment is rolled."
    ),
    topic_key!(
        "segment.index.bytes",
        Int,
        Some("10485760"),
        Validator::Range {
            min: 8,
            max: NO_MAX
        },
        [syn("log.index.size.max.bytes")],
        "Preallocated size of each offset and time index."
    ),
    topic_key!(
        "segment.jitter.ms",
        Long,
        Some("0"),
        Validator::Range {
            min: 0,
            max: NO_MAX
        },
        [
            syn("log.roll.jitter.ms"),
            BrokerSynonym {
                key: "log.roll.jitter.hours",
                factor: MS_PER_HOUR
            }
        ],
        "Random jitter subtracted from segment.ms."
    ),
    topic_key!(
        "segment.ms",
        Long,
        Some("604800000"),
        Validator::Range {
            min: 1,
            max: NO_MAX
        },
        [
            syn("log.roll.ms"),
            BrokerSynonym {
                key: "log.roll.hours",
                factor: MS_PER_HOUR
            }
        ],
        "Age after which a segment is rolled even if not full."
    ),
    topic_key!(
        "unclean.leader.election.enable",
        Boolean,
        Some("false"),
        Validator::Any,
        [syn("unclean.leader.election.enable")],
        "Allow a replica outside the ISR to become leader."
    ),
];

/// Finds a topic key's definition.
pub fn topic_config_def(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.def.name == name)
}

/// A topic key's broker-level default, resolved once per broker start.
#[derive(Debug, Clone, PartialEq)]
struct ResolvedDefault {
    value: ConfigValue,
    text: String,
    source: ConfigSource,
    synonyms: Vec<ConfigSynonym>,
}

/// The broker's defaults for every topic key, from its configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct LogDefaults {
    entries: BTreeMap<&'static str, ResolvedDefault>,
}

impl LogDefaults {
    /// Resolves every topic key's default from the broker keys that were set
    /// explicitly (`broker_set`; defaults of broker keys equal Kafka's topic
    /// defaults, so unset keys need no lookup).
    pub fn from_broker(broker_set: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let mut entries = BTreeMap::new();
        for tdef in TOPIC_CONFIGS {
            let mut synonyms = Vec::new();
            let mut chosen: Option<(ConfigValue, String, ConfigSource)> = None;
            for s in tdef.synonyms {
                let Some(raw) = broker_set.get(s.key) else {
                    continue;
                };
                // Parse with the topic key's type but name the broker key in errors.
                let def = ConfigDef {
                    name: s.key,
                    ..tdef.def
                };
                let value = scale(def.parse(raw)?, s.factor, s.key)?;
                let text = value_text(&value);
                synonyms.push(ConfigSynonym {
                    name: s.key.to_string(),
                    value: Some(raw.trim().to_string()),
                    source: ConfigSource::StaticBrokerConfig,
                });
                if chosen.is_none() {
                    chosen = Some((value, text, ConfigSource::StaticBrokerConfig));
                }
            }
            let default_text = tdef.def.default.unwrap_or("");
            if let Some(first) = tdef.synonyms.first() {
                synonyms.push(ConfigSynonym {
                    name: first.key.to_string(),
                    value: Some(unscale_text(default_text, first.factor)),
                    source: ConfigSource::DefaultConfig,
                });
            }
            let (value, text, source) = match chosen {
                Some(c) => c,
                None => (
                    tdef.def.parse(default_text)?,
                    default_text.to_string(),
                    ConfigSource::DefaultConfig,
                ),
            };
            entries.insert(
                tdef.def.name,
                ResolvedDefault {
                    value,
                    text,
                    source,
                    synonyms,
                },
            );
        }
        Ok(Self { entries })
    }

    /// Kafka's defaults with no broker overrides.
    pub fn kafka_defaults() -> Self {
        // Kafka's own defaults always parse; fall back to an empty table
        // rather than panicking if one ever did not.
        Self::from_broker(&BTreeMap::new()).unwrap_or(Self {
            entries: BTreeMap::new(),
        })
    }

    fn get(&self, name: &str) -> Option<&ResolvedDefault> {
        self.entries.get(name)
    }
}

fn scale(value: ConfigValue, factor: i64, key: &str) -> Result<ConfigValue, ConfigError> {
    match value {
        ConfigValue::Int(v) if factor != 1 => v
            .checked_mul(factor)
            .map(ConfigValue::Int)
            .ok_or_else(|| ConfigError::Invalid {
                key: key.to_string(),
                value: v.to_string(),
                message: "value overflows when converted to milliseconds".into(),
            }),
        v => Ok(v),
    }
}

fn unscale_text(default_ms: &str, factor: i64) -> String {
    match default_ms.parse::<i64>() {
        Ok(v) if factor != 1 => (v / factor).to_string(),
        _ => default_ms.to_string(),
    }
}

fn value_text(value: &ConfigValue) -> String {
    match value {
        ConfigValue::Bool(b) => b.to_string(),
        ConfigValue::Int(i) => i.to_string(),
        ConfigValue::Double(d) => d.to_string(),
        ConfigValue::Text(t) => t.clone(),
        ConfigValue::List(items) => items.join(","),
    }
}

/// Checks a map of topic overrides (CreateTopics configs, AlterConfigs):
/// every key must be a topic key and every value valid for it.
pub fn validate_topic_overrides(overrides: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    for (key, value) in overrides {
        let def =
            topic_config_def(key).ok_or_else(|| ConfigError::UnknownTopicConfig(key.clone()))?;
        def.def.parse(value)?;
    }
    Ok(())
}

/// Which timestamp a topic's batches carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageTimestampType {
    /// The producer's timestamps.
    CreateTime,
    /// Stamped by the broker when appended.
    LogAppendTime,
}

/// The effective configuration of one topic's logs.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicConfig {
    /// `cleanup.policy` contains `delete`.
    pub cleanup_delete: bool,
    /// `cleanup.policy` contains `compact`.
    pub cleanup_compact: bool,
    /// `compression.type`.
    pub compression_type: String,
    /// `file.delete.delay.ms`.
    pub file_delete_delay_ms: i64,
    /// `flush.messages`.
    pub flush_messages: i64,
    /// `flush.ms`.
    pub flush_ms: i64,
    /// `index.interval.bytes`.
    pub index_interval_bytes: i32,
    /// `max.message.bytes`.
    pub max_message_bytes: i32,
    /// `message.timestamp.after.max.ms`.
    pub message_timestamp_after_max_ms: i64,
    /// `message.timestamp.before.max.ms`.
    pub message_timestamp_before_max_ms: i64,
    /// `message.timestamp.type`.
    pub message_timestamp_type: MessageTimestampType,
    /// `min.insync.replicas`.
    pub min_insync_replicas: i32,
    /// `preallocate`.
    pub preallocate: bool,
    /// `retention.bytes`.
    pub retention_bytes: i64,
    /// `retention.ms`.
    pub retention_ms: i64,
    /// `segment.bytes`.
    pub segment_bytes: i32,
    /// `segment.index.bytes`.
    pub segment_index_bytes: i32,
    /// `segment.jitter.ms`.
    pub segment_jitter_ms: i64,
    /// `segment.ms`.
    pub segment_ms: i64,
    /// `unclean.leader.election.enable`.
    pub unclean_leader_election_enable: bool,
    /// `leader.replication.throttled.replicas`.
    pub leader_replication_throttled_replicas: ThrottledReplicas,
    /// `follower.replication.throttled.replicas`.
    pub follower_replication_throttled_replicas: ThrottledReplicas,
}

impl TopicConfig {
    /// Resolves a topic's configuration from the broker's defaults and the
    /// topic's overrides (which must have been validated).
    pub fn resolve(
        defaults: &LogDefaults,
        overrides: &BTreeMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let value = |name: &'static str| -> Result<ConfigValue, ConfigError> {
            if let Some(raw) = overrides.get(name) {
                let def = topic_config_def(name)
                    .ok_or_else(|| ConfigError::UnknownTopicConfig(name.to_string()))?;
                return def.def.parse(raw);
            }
            defaults
                .get(name)
                .map(|d| d.value.clone())
                .ok_or_else(|| ConfigError::UnknownTopicConfig(name.to_string()))
        };
        let int = |name: &'static str| -> Result<i64, ConfigError> {
            match value(name)? {
                ConfigValue::Int(v) => Ok(v),
                _ => Err(ConfigError::UnknownTopicConfig(name.to_string())),
            }
        };
        let boolean = |name: &'static str| -> Result<bool, ConfigError> {
            Ok(matches!(value(name)?, ConfigValue::Bool(true)))
        };
        let text =
            |name: &'static str| -> Result<String, ConfigError> { Ok(value_text(&value(name)?)) };
        let policy = match value("cleanup.policy")? {
            ConfigValue::List(items) => items,
            _ => Vec::new(),
        };
        let throttled = |name: &'static str| -> Result<ThrottledReplicas, ConfigError> {
            match value(name)? {
                ConfigValue::List(items) => {
                    ThrottledReplicas::parse(&items).map_err(|message| ConfigError::Invalid {
                        key: name.to_string(),
                        value: items.join(","),
                        message,
                    })
                }
                _ => Ok(ThrottledReplicas::None),
            }
        };
        let narrow = |name: &'static str| -> Result<i32, ConfigError> {
            i32::try_from(int(name)?).map_err(|_| ConfigError::Invalid {
                key: name.to_string(),
                value: String::new(),
                message: "out of range for a 32-bit integer".into(),
            })
        };
        Ok(Self {
            cleanup_delete: policy.iter().any(|p| p == "delete"),
            cleanup_compact: policy.iter().any(|p| p == "compact"),
            compression_type: text("compression.type")?.to_ascii_lowercase(),
            file_delete_delay_ms: int("file.delete.delay.ms")?,
            flush_messages: int("flush.messages")?,
            flush_ms: int("flush.ms")?,
            index_interval_bytes: narrow("index.interval.bytes")?,
            max_message_bytes: narrow("max.message.bytes")?,
            message_timestamp_after_max_ms: int("message.timestamp.after.max.ms")?,
            message_timestamp_before_max_ms: int("message.timestamp.before.max.ms")?,
            message_timestamp_type: if text("message.timestamp.type")? == "LogAppendTime" {
                MessageTimestampType::LogAppendTime
            } else {
                MessageTimestampType::CreateTime
            },
            min_insync_replicas: narrow("min.insync.replicas")?,
            preallocate: boolean("preallocate")?,
            retention_bytes: int("retention.bytes")?,
            retention_ms: int("retention.ms")?,
            segment_bytes: narrow("segment.bytes")?,
            segment_index_bytes: narrow("segment.index.bytes")?,
            segment_jitter_ms: int("segment.jitter.ms")?,
            segment_ms: int("segment.ms")?,
            unclean_leader_election_enable: boolean("unclean.leader.election.enable")?,
            leader_replication_throttled_replicas: throttled(
                "leader.replication.throttled.replicas",
            )?,
            follower_replication_throttled_replicas: throttled(
                "follower.replication.throttled.replicas",
            )?,
        })
    }

    /// Kafka's defaults, for tests and tools.
    pub fn kafka_defaults() -> Self {
        Self::resolve(&LogDefaults::kafka_defaults(), &BTreeMap::new()).unwrap_or_else(|_| {
            // Unreachable with the built-in table; keep a safe value anyway.
            Self {
                cleanup_delete: true,
                cleanup_compact: false,
                compression_type: "producer".into(),
                file_delete_delay_ms: 60_000,
                flush_messages: i64::MAX,
                flush_ms: i64::MAX,
                index_interval_bytes: 4096,
                max_message_bytes: 1_048_588,
                message_timestamp_after_max_ms: 3_600_000,
                message_timestamp_before_max_ms: i64::MAX,
                message_timestamp_type: MessageTimestampType::CreateTime,
                min_insync_replicas: 1,
                preallocate: false,
                retention_bytes: -1,
                retention_ms: 604_800_000,
                segment_bytes: 1_073_741_824,
                segment_index_bytes: 10_485_760,
                segment_jitter_ms: 0,
                segment_ms: 604_800_000,
                unclean_leader_election_enable: false,
                leader_replication_throttled_replicas: ThrottledReplicas::None,
                follower_replication_throttled_replicas: ThrottledReplicas::None,
            }
        })
    }
}

/// Every topic key with its effective value and source, as DescribeConfigs
/// reports a topic. Overrides must have been validated.
pub fn describe_topic_configs(
    defaults: &LogDefaults,
    overrides: &BTreeMap<String, String>,
) -> Vec<DescribedConfig> {
    TOPIC_CONFIGS
        .iter()
        .map(|tdef| {
            let name = tdef.def.name;
            let fallback = defaults.get(name);
            let mut synonyms = Vec::new();
            let (value, source) = match overrides.get(name) {
                Some(v) => {
                    synonyms.push(ConfigSynonym {
                        name: name.to_string(),
                        value: Some(v.clone()),
                        source: ConfigSource::TopicConfig,
                    });
                    (Some(v.clone()), ConfigSource::TopicConfig)
                }
                None => (
                    fallback.map(|d| d.text.clone()),
                    fallback.map_or(ConfigSource::DefaultConfig, |d| d.source),
                ),
            };
            if let Some(d) = fallback {
                synonyms.extend(d.synonyms.iter().cloned());
            }
            DescribedConfig {
                name: name.to_string(),
                value,
                source,
                read_only: false,
                sensitive: false,
                config_type: tdef.def.kind.id(),
                documentation: tdef.def.doc,
                synonyms,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn kafka_defaults_resolve() {
        let c = TopicConfig::kafka_defaults();
        assert_eq!(c.retention_ms, 604_800_000);
        assert_eq!(c.segment_bytes, 1 << 30);
        assert_eq!(c.max_message_bytes, 1_048_588);
        assert!(c.cleanup_delete && !c.cleanup_compact);
    }

    #[test]
    fn broker_synonyms_and_overrides() {
        let d = LogDefaults::from_broker(&map(&[
            ("log.retention.hours", "1"),
            ("log.segment.bytes", "1024"),
        ]))
        .unwrap();
        let c = TopicConfig::resolve(&d, &BTreeMap::new()).unwrap();
        assert_eq!(c.retention_ms, 3_600_000);
        assert_eq!(c.segment_bytes, 1024);
        // A more specific broker key wins over a less specific one.
        let d = LogDefaults::from_broker(&map(&[
            ("log.retention.hours", "1"),
            ("log.retention.ms", "5"),
        ]))
        .unwrap();
        assert_eq!(
            TopicConfig::resolve(&d, &BTreeMap::new())
                .unwrap()
                .retention_ms,
            5
        );
        let c = TopicConfig::resolve(&d, &map(&[("retention.ms", "77")])).unwrap();
        assert_eq!(c.retention_ms, 77);
        let described = describe_topic_configs(&d, &map(&[("retention.ms", "77")]));
        let r = described.iter().find(|e| e.name == "retention.ms").unwrap();
        assert_eq!(r.source, ConfigSource::TopicConfig);
        assert_eq!(r.value.as_deref(), Some("77"));
        assert_eq!(r.synonyms[1].name, "log.retention.ms");
        let s = described
            .iter()
            .find(|e| e.name == "segment.bytes")
            .unwrap();
        assert_eq!(s.source, ConfigSource::DefaultConfig);
    }

    #[test]
    fn bad_overrides_name_the_key() {
        let e = validate_topic_overrides(&map(&[("retention.ms", "soon")])).unwrap_err();
        assert_eq!(e.key(), Some("retention.ms"));
        let e = validate_topic_overrides(&map(&[("retention.mss", "1")])).unwrap_err();
        assert_eq!(e, ConfigError::UnknownTopicConfig("retention.mss".into()));
        assert!(validate_topic_overrides(&map(&[("cleanup.policy", "compact,delete")])).is_ok());
        assert!(validate_topic_overrides(&map(&[("min.insync.replicas", "0")])).is_err());
    }
}
