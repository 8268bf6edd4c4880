//! Topics declared up front (`strom serve --provision-topics FILE`, the
//! Helm chart's `provisioning.topics`), applied at start-up and
//! idempotently: a missing topic is created; an existing one gets the
//! declared configs and, when it has fewer, more partitions (a lower count
//! or another replication factor is reported, never applied: Kafka cannot
//! remove partitions, and a replication factor changes by reassignment).
//!
//! Every broker of a cluster may run it at once: the controller serialises
//! the changes, and a topic another broker created first is simply found.
//! Until enough brokers are registered for a replication factor, creation
//! is retried.
//!
//! The file is a JSON array:
//!
//! ```json
//! [{"name": "orders", "partitions": 6, "replicationFactor": 3,
//!   "config": {"max.message.bytes": "2097152", "flush.messages": 1}}]
//! ```
//!
//! `partitions` and `replicationFactor` default to `num.partitions` and
//! `default.replication.factor`; config values may be strings, numbers or
//! booleans.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use strom_controller::config_change::{ConfigChange, ConfigOp, ConfigOpKind, ConfigResource};
use strom_controller::{ApiError, CreatePartitions, CreateTopic};
use strom_protocol::ErrorCode;
use strom_runtime::shutdown;
use tokio::sync::watch;

use crate::state::BrokerState;

/// Largest provisioning file read.
pub const PROVISIONING_FILE_MAX_BYTES: u64 = 4 << 20;
/// How long one controller request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between attempts while some topic cannot be applied yet.
const RETRY_INTERVAL: Duration = Duration::from_secs(2);
/// Attempts between two log lines about a topic still waiting (30 s).
const RETRIES_PER_LOG_LINE: u32 = 15;

/// One declared topic.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TopicSpec {
    /// Name.
    pub name: String,
    /// Partitions (default `num.partitions`).
    #[serde(default)]
    pub partitions: Option<i32>,
    /// Replication factor (default `default.replication.factor`).
    #[serde(default)]
    pub replication_factor: Option<i16>,
    /// Topic configs.
    #[serde(default)]
    pub config: BTreeMap<String, serde_json::Value>,
}

impl TopicSpec {
    fn configs(&self) -> Vec<(String, String)> {
        self.config
            .iter()
            .map(|(k, v)| {
                let text = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), text)
            })
            .collect()
    }
}

/// Why a provisioning file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ProvisioningError {
    /// It cannot be read.
    #[error("cannot read {path}: {message}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// It is not a valid list of topics.
    #[error("{path} is not a JSON list of topics: {message}")]
    Parse {
        /// The file.
        path: String,
        /// Where and why.
        message: String,
    },
}

/// Reads the topics declared in `path`.
pub fn read_topics(path: &std::path::Path) -> Result<Vec<TopicSpec>, ProvisioningError> {
    let shown = path.display().to_string();
    let read = |message: String| ProvisioningError::Read {
        path: shown.clone(),
        message,
    };
    let size = std::fs::metadata(path)
        .map_err(|e| read(e.to_string()))?
        .len();
    if size > PROVISIONING_FILE_MAX_BYTES {
        return Err(read(format!(
            "{size} bytes, more than {PROVISIONING_FILE_MAX_BYTES}"
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| read(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| ProvisioningError::Parse {
        path: shown.clone(),
        message: e.to_string(),
    })
}

/// What became of one topic in one attempt.
enum Outcome {
    Done,
    /// Try again later (not enough brokers yet, no controller).
    Retry(String),
    /// It will not work (invalid name or config): reported once.
    Failed(String),
}

/// Applies `topics` until each is done or has failed, or `shutdown`.
pub async fn provision_topics(
    state: Arc<BrokerState>,
    topics: Vec<TopicSpec>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut pending = topics;
    let mut attempt = 0u32;
    while !pending.is_empty() {
        let mut still = Vec::new();
        for topic in pending {
            match apply(&state, &topic).await {
                Outcome::Done => tracing::info!(topic = %topic.name, "provisioned topic"),
                Outcome::Failed(why) => {
                    tracing::error!(topic = %topic.name, error = %why, "cannot provision topic")
                }
                Outcome::Retry(why) => {
                    if attempt.is_multiple_of(RETRIES_PER_LOG_LINE) {
                        tracing::info!(topic = %topic.name, reason = %why, "topic not provisioned yet; retrying");
                    }
                    still.push(topic);
                }
            }
        }
        pending = still;
        if pending.is_empty() {
            break;
        }
        attempt += 1;
        tokio::select! {
            _ = tokio::time::sleep(RETRY_INTERVAL) => {}
            _ = shutdown::signalled(&mut shutdown) => return,
        }
    }
}

fn retriable(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::InvalidReplicationFactor
            | ErrorCode::NotController
            | ErrorCode::RequestTimedOut
            | ErrorCode::BrokerNotAvailable
    ) || code.is_retriable()
}

async fn apply(state: &BrokerState, topic: &TopicSpec) -> Outcome {
    let controller = &state.controller;
    let image = controller.image();
    let Some(existing) = image.topic(&topic.name) else {
        let create = CreateTopic {
            name: topic.name.clone(),
            num_partitions: topic.partitions.unwrap_or(-1),
            replication_factor: topic.replication_factor.unwrap_or(-1),
            assignments: Vec::new(),
            configs: topic
                .configs()
                .into_iter()
                .map(|(k, v)| (k, Some(v)))
                .collect(),
        };
        let (mut results, _) = controller
            .create_topics(vec![create], false, REQUEST_TIMEOUT)
            .await;
        // Another broker was first: check it as an existing topic.
        return match settle(results.pop(), Some(ErrorCode::TopicAlreadyExists)) {
            Ok(_) => Outcome::Done,
            Err(outcome) => outcome,
        };
    };
    let have = i32::try_from(existing.partitions.len()).unwrap_or(i32::MAX);
    if let Some(want) = topic.partitions {
        if want > have {
            let grow = CreatePartitions {
                name: topic.name.clone(),
                count: want,
                assignments: None,
            };
            let (mut results, _) = controller
                .create_partitions(vec![grow], false, REQUEST_TIMEOUT)
                .await;
            // Another broker added them first: check again.
            if let Err(outcome) = settle(results.pop(), Some(ErrorCode::InvalidPartitions)) {
                return outcome;
            }
        } else if want < have {
            tracing::warn!(topic = %topic.name, declared = want, actual = have, "a topic's partitions cannot be removed; keeping them");
        }
    }
    if let (Some(want), Some(p)) = (
        topic.replication_factor,
        existing.partitions.values().next(),
    ) {
        if usize::try_from(want).ok() != Some(p.replicas.len()) {
            tracing::warn!(topic = %topic.name, declared = want, actual = p.replicas.len(), "replication factor differs; change it by reassignment");
        }
    }
    let current = image.topic_configs(&topic.name);
    let ops: Vec<ConfigOp> = topic
        .configs()
        .into_iter()
        .filter(|(k, v)| current.get(k) != Some(v))
        .map(|(key, value)| ConfigOp {
            key,
            kind: ConfigOpKind::Set,
            value: Some(value),
        })
        .collect();
    if ops.is_empty() {
        return Outcome::Done;
    }
    let change = ConfigChange {
        resource: ConfigResource::Topic(topic.name.clone()),
        ops,
        replace: false,
    };
    let (mut results, _) = controller
        .incremental_alter_configs(vec![change], false, REQUEST_TIMEOUT)
        .await;
    match settle(results.pop(), None) {
        Ok(()) => Outcome::Done,
        Err(outcome) => outcome,
    }
}

/// What one controller answer means: `Ok` to go on, else the outcome to
/// report. `raced` is the error a concurrent change by another broker
/// causes: look again at the next attempt.
fn settle<T>(answer: Option<Result<T, ApiError>>, raced: Option<ErrorCode>) -> Result<T, Outcome> {
    match answer {
        Some(Ok(value)) => Ok(value),
        Some(Err(e)) if Some(e.code) == raced || retriable(e.code) => {
            Err(Outcome::Retry(e.to_string()))
        }
        Some(Err(e)) => Err(Outcome::Failed(e.to_string())),
        None => Err(Outcome::Retry("no answer".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_charts_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("topics.json");
        std::fs::write(
            &path,
            r#"[{"name": "orders", "partitions": 6, "replicationFactor": 3,
                 "config": {"max.message.bytes": "2097152", "flush.messages": 1}},
                {"name": "audit"}]"#,
        )
        .unwrap();
        let topics = read_topics(&path).unwrap();
        assert_eq!(topics.len(), 2);
        assert_eq!(topics[0].partitions, Some(6));
        assert_eq!(topics[0].replication_factor, Some(3));
        assert_eq!(
            topics[0].configs(),
            vec![
                ("flush.messages".to_string(), "1".to_string()),
                ("max.message.bytes".to_string(), "2097152".to_string())
            ]
        );
        assert_eq!(topics[1].partitions, None);
    }

    #[test]
    fn refuses_unknown_fields_and_wrong_types() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("topics.json");
        std::fs::write(&path, r#"[{"name": "a", "partition": 3}]"#).unwrap();
        assert!(read_topics(&path)
            .unwrap_err()
            .to_string()
            .contains("partition"));
        std::fs::write(&path, r#"[{"name": "a", "partitions": "three"}]"#).unwrap();
        assert!(read_topics(&path).is_err());
        assert!(read_topics(&dir.path().join("missing.json")).is_err());
    }
}
