//! IncrementalAlterConfigs (KIP-339) as a pure function of the image: each
//! resource's operations become `Config` records, or its Kafka error.
//!
//! - Topics: every key a topic config knows; SET and DELETE (back to the
//!   broker default) for all, APPEND and SUBTRACT for list keys (items
//!   added if missing, removed if present). The topic's overrides after
//!   the change are validated together (INVALID_CONFIG); an unknown topic
//!   is UNKNOWN_TOPIC_OR_PARTITION.
//! - Brokers (by id, or the cluster default with an empty name): only the
//!   keys brokers apply while running ([`DYNAMIC_BROKER_KEYS`], the
//!   replication throttle rates); others are INVALID_REQUEST, as Kafka
//!   answers for configs it cannot update dynamically.
//! - A key named twice in one resource is INVALID_REQUEST; other resource
//!   types are INVALID_REQUEST.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use strom_config::definition::{list_items, ConfigType};
use strom_config::throttle::{validate_dynamic_broker_config, DYNAMIC_BROKER_KEYS};
use strom_config::topic::topic_config_def;
use strom_config::validate_topic_overrides;
use strom_metadata::record::ConfigResourceType;
use strom_metadata::{MetadataImage, MetadataRecord};
use strom_protocol::ErrorCode;

use crate::error::ApiError;

/// How one config key changes (Kafka's `AlterConfigOp.OpType` ids 0–3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigOpKind {
    /// Set the value.
    Set,
    /// Remove the override.
    Delete,
    /// Add items to a list.
    Append,
    /// Remove items from a list.
    Subtract,
}

impl ConfigOpKind {
    /// From the wire id; `None` for an unknown one.
    pub fn from_wire(id: i8) -> Option<Self> {
        match id {
            0 => Some(Self::Set),
            1 => Some(Self::Delete),
            2 => Some(Self::Append),
            3 => Some(Self::Subtract),
            _ => None,
        }
    }
}

/// One key's change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigOp {
    /// Config key.
    pub key: String,
    /// What to do.
    pub kind: ConfigOpKind,
    /// The value (ignored by DELETE).
    pub value: Option<String>,
}

/// The resource a change is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigResource {
    /// A topic, by name.
    Topic(String),
    /// A broker by id, or the cluster default (empty name).
    Broker(String),
    /// A resource type this broker does not alter (Kafka's type id).
    Unsupported(i8),
}

/// One resource's changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigChange {
    /// The resource.
    pub resource: ConfigResource,
    /// Its key changes.
    pub ops: Vec<ConfigOp>,
    /// Legacy AlterConfigs: the ops (all SET) are the resource's whole new
    /// set of overrides, and keys they do not set are removed.
    #[serde(default)]
    pub replace: bool,
}

fn invalid_request(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidRequest, message)
}

fn invalid_config(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidConfig, message)
}

/// The records that carry out `change`, or its error.
pub fn config_change_records(
    image: &MetadataImage,
    change: &ConfigChange,
) -> Result<Vec<MetadataRecord>, ApiError> {
    let mut seen = HashSet::new();
    if let Some(dup) = change.ops.iter().find(|op| !seen.insert(op.key.as_str())) {
        return Err(invalid_request(format!(
            "Error due to duplicate config keys: {}",
            dup.key
        )));
    }
    let (resource_type, name, current) = match &change.resource {
        ConfigResource::Topic(name) => {
            if image.topic(name).is_none() {
                return Err(ApiError::new(
                    ErrorCode::UnknownTopicOrPartition,
                    format!("Topic {name} does not exist."),
                ));
            }
            (ConfigResourceType::Topic, name, image.topic_configs(name))
        }
        ConfigResource::Broker(name) => {
            if !name.is_empty() && name.parse::<i32>().is_err() {
                return Err(invalid_request(format!(
                    "Broker id must be an integer, but it is: {name}"
                )));
            }
            (
                ConfigResourceType::Broker,
                name,
                image.configs(ConfigResourceType::Broker, name),
            )
        }
        ConfigResource::Unsupported(kind) => {
            return Err(invalid_request(format!(
                "Unsupported resource type {kind} for IncrementalAlterConfigs."
            )))
        }
    };
    let mut next: BTreeMap<String, String> = if change.replace {
        BTreeMap::new()
    } else {
        (*current).clone()
    };
    for op in &change.ops {
        apply_op(resource_type, &mut next, op)?;
    }
    match resource_type {
        ConfigResourceType::Topic => {
            validate_topic_overrides(&next).map_err(|e| invalid_config(e.to_string()))?
        }
        ConfigResourceType::Broker => {
            for (key, value) in &next {
                validate_dynamic_broker_config(key, value).map_err(invalid_config)?;
            }
        }
    }
    let keys: std::collections::BTreeSet<&String> = current.keys().chain(next.keys()).collect();
    Ok(keys
        .into_iter()
        .filter(|k| current.get(*k) != next.get(*k))
        .map(|k| MetadataRecord::Config {
            resource_type,
            resource_name: name.clone(),
            name: k.clone(),
            value: next.get(k).cloned(),
        })
        .collect())
}

fn apply_op(
    resource_type: ConfigResourceType,
    next: &mut BTreeMap<String, String>,
    op: &ConfigOp,
) -> Result<(), ApiError> {
    let is_list = match resource_type {
        ConfigResourceType::Topic => {
            let def = topic_config_def(&op.key)
                .ok_or_else(|| invalid_config(format!("Unknown topic config name: {}", op.key)))?;
            def.def.kind == ConfigType::List
        }
        ConfigResourceType::Broker => {
            if !DYNAMIC_BROKER_KEYS.contains(&op.key.as_str()) {
                return Err(invalid_request(format!(
                    "Cannot update these configs dynamically: {}",
                    op.key
                )));
            }
            false
        }
    };
    let value = || {
        op.value
            .clone()
            .ok_or_else(|| invalid_config(format!("Null value not supported for : {}", op.key)))
    };
    match op.kind {
        ConfigOpKind::Set => {
            next.insert(op.key.clone(), value()?);
        }
        ConfigOpKind::Delete => {
            next.remove(&op.key);
        }
        ConfigOpKind::Append | ConfigOpKind::Subtract => {
            if !is_list {
                return Err(invalid_config(format!(
                    "Config value append is not allowed for config key: {}",
                    op.key
                )));
            }
            let mut list = next.get(&op.key).map(|v| list_items(v)).unwrap_or_default();
            let change = list_items(&value()?);
            if op.kind == ConfigOpKind::Append {
                for item in change {
                    if !list.contains(&item) {
                        list.push(item);
                    }
                }
            } else {
                list.retain(|item| !change.contains(item));
            }
            next.insert(op.key.clone(), list.join(","));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_images;

    fn op(key: &str, kind: ConfigOpKind, value: Option<&str>) -> ConfigOp {
        ConfigOp {
            key: key.into(),
            kind,
            value: value.map(String::from),
        }
    }

    fn topic(ops: Vec<ConfigOp>) -> ConfigChange {
        ConfigChange {
            resource: ConfigResource::Topic("t".into()),
            ops,
            replace: false,
        }
    }

    fn code(r: Result<Vec<MetadataRecord>, ApiError>) -> ErrorCode {
        r.unwrap_err().code
    }

    #[test]
    fn a_replacing_change_removes_the_keys_it_does_not_set() {
        let img = test_images::image(&[(1, false)], &[test_images::partition(&[1], &[1], 1)]);
        let apply = |img: &MetadataImage, change: ConfigChange| {
            let records = config_change_records(img, &change).unwrap();
            img.apply(records.iter().map(|r| (img.offset + 1, r)))
                .unwrap()
                .0
        };
        let two = apply(
            &img,
            topic(vec![
                op("retention.ms", ConfigOpKind::Set, Some("1000")),
                op("max.message.bytes", ConfigOpKind::Set, Some("2000")),
            ]),
        );
        let replaced = apply(
            &two,
            ConfigChange {
                replace: true,
                ..topic(vec![op(
                    "cleanup.policy",
                    ConfigOpKind::Set,
                    Some("compact"),
                )])
            },
        );
        let configs = replaced.topic_configs("t");
        assert_eq!(
            configs.iter().collect::<Vec<_>>(),
            vec![(&"cleanup.policy".to_string(), &"compact".to_string())]
        );
    }

    #[test]
    fn topic_configs_set_delete_append_and_subtract() {
        let img = test_images::image(&[(1, false)], &[test_images::partition(&[1], &[1], 1)]);
        let records = config_change_records(
            &img,
            &topic(vec![
                op("retention.ms", ConfigOpKind::Set, Some("1000")),
                op(
                    "leader.replication.throttled.replicas",
                    ConfigOpKind::Append,
                    Some("0:1,1:1"),
                ),
            ]),
        )
        .unwrap();
        let next = img
            .apply(records.iter().map(|r| (img.offset + 1, r)))
            .unwrap()
            .0;
        let configs = next.topic_configs("t");
        assert_eq!(
            configs.get("retention.ms").map(String::as_str),
            Some("1000")
        );
        assert_eq!(
            configs
                .get("leader.replication.throttled.replicas")
                .map(String::as_str),
            Some("0:1,1:1")
        );
        let records = config_change_records(
            &next,
            &topic(vec![
                op("retention.ms", ConfigOpKind::Delete, None),
                op(
                    "leader.replication.throttled.replicas",
                    ConfigOpKind::Subtract,
                    Some("0:1"),
                ),
            ]),
        )
        .unwrap();
        let last = next
            .apply(records.iter().map(|r| (next.offset + 1, r)))
            .unwrap()
            .0;
        let configs = last.topic_configs("t");
        assert_eq!(configs.get("retention.ms"), None);
        assert_eq!(
            configs
                .get("leader.replication.throttled.replicas")
                .map(String::as_str),
            Some("1:1")
        );
    }

    #[test]
    fn bad_changes_get_kafkas_errors() {
        let img = test_images::image(&[(1, false)], &[test_images::partition(&[1], &[1], 1)]);
        let set = |k: &str, v: &str| op(k, ConfigOpKind::Set, Some(v));
        assert_eq!(
            code(config_change_records(&img, &topic(vec![set("nope", "1")]))),
            ErrorCode::InvalidConfig
        );
        assert_eq!(
            code(config_change_records(
                &img,
                &topic(vec![set("retention.ms", "soon")])
            )),
            ErrorCode::InvalidConfig
        );
        assert_eq!(
            code(config_change_records(
                &img,
                &topic(vec![set("leader.replication.throttled.replicas", "x")])
            )),
            ErrorCode::InvalidConfig
        );
        assert_eq!(
            code(config_change_records(
                &img,
                &topic(vec![op("retention.ms", ConfigOpKind::Append, Some("1"))])
            )),
            ErrorCode::InvalidConfig
        );
        assert_eq!(
            code(config_change_records(
                &img,
                &topic(vec![set("retention.ms", "1"), set("retention.ms", "2")])
            )),
            ErrorCode::InvalidRequest
        );
        let missing = ConfigChange {
            resource: ConfigResource::Topic("gone".into()),
            ops: vec![set("retention.ms", "1")],
            replace: false,
        };
        assert_eq!(
            code(config_change_records(&img, &missing)),
            ErrorCode::UnknownTopicOrPartition
        );
        let broker = |name: &str, ops| ConfigChange {
            resource: ConfigResource::Broker(name.into()),
            ops,
            replace: false,
        };
        assert_eq!(
            code(config_change_records(
                &img,
                &broker("1", vec![set("log.retention.ms", "1")])
            )),
            ErrorCode::InvalidRequest
        );
        assert_eq!(
            code(config_change_records(
                &img,
                &broker("1", vec![set("leader.replication.throttled.rate", "-5")])
            )),
            ErrorCode::InvalidConfig
        );
        assert_eq!(
            code(config_change_records(
                &img,
                &broker("x", vec![set("leader.replication.throttled.rate", "5")])
            )),
            ErrorCode::InvalidRequest
        );
        let ok = config_change_records(
            &img,
            &broker("", vec![set("leader.replication.throttled.rate", "5")]),
        )
        .unwrap();
        assert_eq!(ok.len(), 1);
        let unsupported = ConfigChange {
            resource: ConfigResource::Unsupported(8),
            ops: vec![],
            replace: false,
        };
        assert_eq!(
            code(config_change_records(&img, &unsupported)),
            ErrorCode::InvalidRequest
        );
    }
}
