//! Replication throttles (KIP-73), as `kafka-reassign-partitions.sh
//! --throttle` sets them: topic keys naming which replicas' replication is
//! throttled, and dynamic broker keys giving the rates.
//!
//! - `leader.replication.throttled.replicas` /
//!   `follower.replication.throttled.replicas` (topic): `*` (every
//!   replica), or a list `partition:broker,...`; empty (the default)
//!   throttles nothing. A leader throttles what it sends for a listed
//!   `partition:leader`; a follower what it fetches for a listed
//!   `partition:follower`. Replicas in the ISR are never throttled.
//! - `leader.replication.throttled.rate` /
//!   `follower.replication.throttled.rate` (broker, bytes per second,
//!   default `Long.MAX_VALUE`: unlimited): set per broker id or as the
//!   cluster default (empty broker name); the broker's own value wins.

use std::collections::{BTreeMap, BTreeSet};

use crate::definition::ConfigType;
use crate::source::{ConfigSource, ConfigSynonym, DescribedConfig};

/// Topic key: replicas throttled on the leader side.
pub const LEADER_THROTTLED_REPLICAS: &str = "leader.replication.throttled.replicas";
/// Topic key: replicas throttled on the follower side.
pub const FOLLOWER_THROTTLED_REPLICAS: &str = "follower.replication.throttled.replicas";
/// Broker key: bytes per second a leader sends to throttled replicas.
pub const LEADER_THROTTLED_RATE: &str = "leader.replication.throttled.rate";
/// Broker key: bytes per second a follower fetches for throttled replicas.
pub const FOLLOWER_THROTTLED_RATE: &str = "follower.replication.throttled.rate";
/// The broker keys IncrementalAlterConfigs may change on running brokers.
pub const DYNAMIC_BROKER_KEYS: &[&str] = &[LEADER_THROTTLED_RATE, FOLLOWER_THROTTLED_RATE];
/// No throttle: Kafka's default rate, `Long.MAX_VALUE`.
pub const UNLIMITED_BYTES_PER_SEC: i64 = i64::MAX;

/// The replicas a throttled-replicas key names.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ThrottledReplicas {
    /// None (the default).
    #[default]
    None,
    /// Every replica (`*`).
    All,
    /// These (partition, broker) pairs.
    Listed(BTreeSet<(i32, i32)>),
}

impl ThrottledReplicas {
    /// Parses the list's items (already split at commas and trimmed).
    pub fn parse(items: &[String]) -> Result<Self, String> {
        let wrong = || {
            "must be the wildcard (*) or a list of replicas in the format \
             [partitionId]:[brokerId],[partitionId]:[brokerId],..."
                .to_string()
        };
        match items {
            [] => Ok(Self::None),
            [one] if one == "*" => Ok(Self::All),
            _ => items
                .iter()
                .map(|item| {
                    let (p, b) = item.split_once(':').ok_or_else(wrong)?;
                    let p = p.trim().parse::<i32>().map_err(|_| wrong())?;
                    let b = b.trim().parse::<i32>().map_err(|_| wrong())?;
                    if p < 0 || b < 0 {
                        return Err(wrong());
                    }
                    Ok((p, b))
                })
                .collect::<Result<BTreeSet<_>, _>>()
                .map(Self::Listed),
        }
    }

    /// Whether replication of `partition`'s replica on `broker` is
    /// throttled.
    pub fn contains(&self, partition: i32, broker: i32) -> bool {
        match self {
            Self::None => false,
            Self::All => true,
            Self::Listed(set) => set.contains(&(partition, broker)),
        }
    }
}

/// Checks a dynamic broker key's value: a rate in bytes per second, at
/// least 0.
pub fn validate_dynamic_broker_config(key: &str, value: &str) -> Result<(), String> {
    if !DYNAMIC_BROKER_KEYS.contains(&key) {
        return Err(format!("Cannot update these configs dynamically: {key}"));
    }
    match value.trim().parse::<i64>() {
        Ok(v) if v >= 0 => Ok(()),
        _ => Err(format!(
            "Invalid value {value} for configuration {key}: value must be at least 0"
        )),
    }
}

/// The rate `key` has for a broker: its own dynamic value, else the
/// cluster-wide dynamic default, else unlimited.
pub fn throttled_rate(
    own: &BTreeMap<String, String>,
    cluster_default: &BTreeMap<String, String>,
    key: &str,
) -> i64 {
    own.get(key)
        .or_else(|| cluster_default.get(key))
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|v| *v >= 0)
        .unwrap_or(UNLIMITED_BYTES_PER_SEC)
}

/// What each dynamic broker key is for (DescribeConfigs' documentation).
fn dynamic_key_doc(key: &str) -> &'static str {
    if key == LEADER_THROTTLED_RATE {
        "Bytes per second a leader sends to the throttled replicas of its partitions."
    } else {
        "Bytes per second a follower fetches for its throttled replicas."
    }
}

/// The dynamic broker keys as DescribeConfigs reports them for one broker
/// (`Some(own)`: its own values, then the cluster default, then Kafka's
/// default, as synonyms in that order) or for the cluster default resource
/// (`None`: only the keys set there).
pub fn describe_dynamic_broker_configs(
    own: Option<&BTreeMap<String, String>>,
    cluster_default: &BTreeMap<String, String>,
) -> Vec<DescribedConfig> {
    let unlimited = UNLIMITED_BYTES_PER_SEC.to_string();
    DYNAMIC_BROKER_KEYS
        .iter()
        .filter_map(|key| {
            let mut synonyms = Vec::new();
            let synonym = |value: &String, source| ConfigSynonym {
                name: key.to_string(),
                value: Some(value.clone()),
                source,
            };
            if let Some(v) = own.and_then(|own| own.get(*key)) {
                synonyms.push(synonym(v, ConfigSource::DynamicBrokerConfig));
            }
            if let Some(v) = cluster_default.get(*key) {
                synonyms.push(synonym(v, ConfigSource::DynamicDefaultBrokerConfig));
            }
            match own {
                Some(_) => synonyms.push(synonym(&unlimited, ConfigSource::DefaultConfig)),
                None if synonyms.is_empty() => return None,
                None => {}
            }
            let first = synonyms.first()?.clone();
            Some(DescribedConfig {
                name: key.to_string(),
                value: first.value,
                source: first.source,
                read_only: false,
                sensitive: false,
                config_type: ConfigType::Long.id(),
                documentation: dynamic_key_doc(key),
                synonyms,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::list_items as items;

    #[test]
    fn dynamic_broker_configs_are_described_with_their_sources() {
        let own: BTreeMap<String, String> =
            [(LEADER_THROTTLED_RATE.to_string(), "100".to_string())].into();
        let default: BTreeMap<String, String> =
            [(FOLLOWER_THROTTLED_RATE.to_string(), "50".to_string())].into();
        let broker = describe_dynamic_broker_configs(Some(&own), &default);
        let leader = broker
            .iter()
            .find(|c| c.name == LEADER_THROTTLED_RATE)
            .unwrap();
        assert_eq!(leader.value.as_deref(), Some("100"));
        assert_eq!(leader.source, ConfigSource::DynamicBrokerConfig);
        assert!(!leader.read_only);
        assert_eq!(leader.synonyms.len(), 2);
        let follower = broker
            .iter()
            .find(|c| c.name == FOLLOWER_THROTTLED_RATE)
            .unwrap();
        assert_eq!(follower.value.as_deref(), Some("50"));
        assert_eq!(follower.source, ConfigSource::DynamicDefaultBrokerConfig);
        let none = describe_dynamic_broker_configs(Some(&BTreeMap::new()), &BTreeMap::new());
        assert!(none.iter().all(|c| c.source == ConfigSource::DefaultConfig
            && c.value.as_deref() == Some("9223372036854775807")));
        // The cluster default resource lists only what is set there.
        let cluster = describe_dynamic_broker_configs(None, &default);
        assert_eq!(cluster.len(), 1);
        assert_eq!(cluster[0].name, FOLLOWER_THROTTLED_RATE);
        assert_eq!(cluster[0].source, ConfigSource::DynamicDefaultBrokerConfig);
    }

    #[test]
    fn throttled_replicas_are_none_all_or_listed() {
        assert_eq!(
            ThrottledReplicas::parse(&items("")),
            Ok(ThrottledReplicas::None)
        );
        assert!(ThrottledReplicas::parse(&items("*"))
            .unwrap()
            .contains(7, 9));
        let listed = ThrottledReplicas::parse(&items("0:1, 1:2")).unwrap();
        assert!(listed.contains(0, 1) && listed.contains(1, 2));
        assert!(!listed.contains(0, 2));
        for bad in ["*,0:1", "0", "a:1", "0:-1", "0:1:2"] {
            assert!(ThrottledReplicas::parse(&items(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_brokers_own_rate_wins_over_the_cluster_default() {
        let own: BTreeMap<String, String> =
            [(LEADER_THROTTLED_RATE.to_string(), "100".to_string())].into();
        let default: BTreeMap<String, String> = [
            (LEADER_THROTTLED_RATE.to_string(), "5".to_string()),
            (FOLLOWER_THROTTLED_RATE.to_string(), "7".to_string()),
        ]
        .into();
        assert_eq!(throttled_rate(&own, &default, LEADER_THROTTLED_RATE), 100);
        assert_eq!(throttled_rate(&own, &default, FOLLOWER_THROTTLED_RATE), 7);
        assert_eq!(
            throttled_rate(&BTreeMap::new(), &BTreeMap::new(), LEADER_THROTTLED_RATE),
            UNLIMITED_BYTES_PER_SEC
        );
        assert!(validate_dynamic_broker_config(LEADER_THROTTLED_RATE, "0").is_ok());
        assert!(validate_dynamic_broker_config(LEADER_THROTTLED_RATE, "-1").is_err());
        assert!(validate_dynamic_broker_config("log.retention.ms", "1").is_err());
    }
}
