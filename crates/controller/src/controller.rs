//! The controller: the only writer of the metadata log. On the quorum
//! leader it validates requests against the current image, turns them
//! into metadata records and commits them through the quorum
//! ([`crate::quorum`]); every node's state machine applies them and
//! publishes the new image. Operations are serialized on the leader and
//! validated only after everything committed before them is applied.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use strom_config::validate_topic_overrides;
use strom_metadata::topic_name::{
    unify_collision_chars, validate_topic_name, CLUSTER_METADATA_TOPIC,
};
use strom_metadata::{BrokerRegistration, ConfigResourceType, MetadataImage, MetadataRecord};
use strom_protocol::ErrorCode;
use tokio::sync::{watch, Mutex};
use uuid::Uuid;

use crate::error::{ApiError, ControllerError};
use crate::placement::place_replicas;
use crate::quorum::{MetadataQuorum, QuorumConfig};

/// Most partitions one CreateTopics or CreatePartitions request may create
/// (Kafka's `MAX_PARTITIONS_PER_BATCH`).
pub const MAX_PARTITIONS_PER_REQUEST: i64 = 10_000;

/// Producer ids per block handed to a broker (Kafka's block size).
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

/// What the controller needs from the broker configuration.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// This node's id.
    pub node_id: i32,
    /// `num.partitions`.
    pub num_partitions: i32,
    /// `default.replication.factor`.
    pub default_replication_factor: i16,
    /// `delete.topic.enable`.
    pub delete_topic_enable: bool,
}

/// A topic to create.
#[derive(Debug, Clone, Default)]
pub struct CreateTopic {
    /// Name.
    pub name: String,
    /// Partitions, −1 for `num.partitions`.
    pub num_partitions: i32,
    /// Replication factor, −1 for `default.replication.factor`.
    pub replication_factor: i16,
    /// Manual assignment: partition index → replicas.
    pub assignments: Vec<(i32, Vec<i32>)>,
    /// Config overrides; a `None` value is an error.
    pub configs: Vec<(String, Option<String>)>,
}

/// A topic that was (or, with `validate_only`, would be) created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedTopic {
    /// Its id.
    pub topic_id: Uuid,
    /// Partitions.
    pub num_partitions: i32,
    /// Replication factor.
    pub replication_factor: i16,
    /// Config overrides.
    pub configs: BTreeMap<String, String>,
}

/// A topic to delete, by name or by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicRef {
    /// By name.
    Name(String),
    /// By id.
    Id(Uuid),
    /// Neither or both were given.
    Invalid(String),
}

/// Partitions to add to a topic.
#[derive(Debug, Clone)]
pub struct CreatePartitions {
    /// Topic name.
    pub name: String,
    /// New total count.
    pub count: i32,
    /// Replicas of each new partition, if given.
    pub assignments: Option<Vec<Vec<i32>>>,
}

/// The outcome of a write: the offset to wait for before the change is
/// visible on this broker.
pub type CommitOffset = i64;

/// How long start-up waits for the quorum to elect a leader.
pub const QUORUM_START_TIMEOUT: Duration = Duration::from_secs(60);

/// The controller.
#[derive(Debug)]
pub struct Controller {
    config: ControllerConfig,
    cluster_id: String,
    quorum: MetadataQuorum,
    write_lock: Mutex<()>,
}

impl Controller {
    /// Opens the metadata log and snapshots under `log_dir` and joins the
    /// quorum.
    pub async fn start(
        log_dir: &Path,
        had_clean_shutdown: bool,
        cluster_id: String,
        config: ControllerConfig,
        quorum: QuorumConfig,
    ) -> Result<Self, ControllerError> {
        let quorum =
            MetadataQuorum::start(log_dir, had_clean_shutdown, &cluster_id, quorum).await?;
        Ok(Self {
            config,
            cluster_id,
            quorum,
            write_lock: Mutex::new(()),
        })
    }

    /// The quorum.
    pub fn quorum(&self) -> &MetadataQuorum {
        &self.quorum
    }

    /// The cluster id.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// The node id of the active controller as far as this node knows (this
    /// node when none is known).
    pub fn active_controller_id(&self) -> i32 {
        self.quorum
            .leader()
            .and_then(|l| i32::try_from(l).ok())
            .unwrap_or(self.config.node_id)
    }

    /// The newest image this node applied.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.quorum.image()
    }

    /// A receiver that sees every new image.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.quorum.subscribe()
    }

    /// Waits until the image reflects everything committed before now (on
    /// the leader) and returns it. Must be called with the write lock held.
    async fn current_image(&self) -> Result<Arc<MetadataImage>, ControllerError> {
        self.quorum.ensure_current().await?;
        Ok(self.image())
    }

    /// Commits records through the quorum; returns the offset to wait for.
    /// Must be called with the write lock held.
    async fn commit(&self, records: Vec<MetadataRecord>) -> Result<CommitOffset, ControllerError> {
        self.quorum.write(records).await
    }

    /// Registers (or re-registers) a broker.
    pub async fn register_broker(
        &self,
        registration: BrokerRegistration,
    ) -> Result<CommitOffset, ControllerError> {
        let _guard = self.write_lock.lock().await;
        self.commit(vec![MetadataRecord::RegisterBroker(registration)])
            .await
    }

    /// Creates topics; each topic succeeds or fails on its own.
    pub async fn create_topics(
        &self,
        topics: Vec<CreateTopic>,
        validate_only: bool,
    ) -> (Vec<Result<CreatedTopic, ApiError>>, Option<CommitOffset>) {
        let _guard = self.write_lock.lock().await;
        let image = match self.current_image().await {
            Ok(image) => image,
            Err(e) => {
                let err = e.to_api_error();
                return (topics.iter().map(|_| Err(err.clone())).collect(), None);
            }
        };
        let mut name_counts: HashMap<&str, usize> = HashMap::new();
        for t in &topics {
            *name_counts.entry(t.name.as_str()).or_default() += 1;
        }
        let total_partitions: i64 = topics
            .iter()
            .map(|t| {
                if t.assignments.is_empty() {
                    i64::from(if t.num_partitions == -1 {
                        self.config.num_partitions
                    } else {
                        t.num_partitions
                    })
                } else {
                    t.assignments.len() as i64
                }
            })
            .filter(|n| *n > 0)
            .sum();
        let mut records = Vec::new();
        let mut unified_in_request: HashSet<String> = HashSet::new();
        let mut results = Vec::with_capacity(topics.len());
        for t in &topics {
            let result = if name_counts.get(t.name.as_str()).copied().unwrap_or(0) > 1 {
                Err(ApiError::new(
                    ErrorCode::InvalidRequest,
                    "Duplicate topic name.",
                ))
            } else if total_partitions > MAX_PARTITIONS_PER_REQUEST {
                Err(ApiError::new(
                    ErrorCode::PolicyViolation,
                    "Excessively large number of partitions per request.",
                ))
            } else {
                self.plan_topic(&image, t, &mut unified_in_request, &mut records)
            };
            results.push(result);
        }
        if validate_only || records.is_empty() {
            return (results, None);
        }
        match self.commit(records).await {
            Ok(offset) => {
                for r in results.iter().filter_map(|r| r.as_ref().ok()) {
                    tracing::info!(topic_id = %r.topic_id, partitions = r.num_partitions, "created topic");
                }
                (results, Some(offset))
            }
            Err(e) => {
                let err = e.to_api_error();
                tracing::error!(error = %e, "cannot commit topic creation");
                (
                    results
                        .into_iter()
                        .map(|r| r.and(Err(err.clone())))
                        .collect(),
                    None,
                )
            }
        }
    }

    fn plan_topic(
        &self,
        image: &MetadataImage,
        t: &CreateTopic,
        unified_in_request: &mut HashSet<String>,
        records: &mut Vec<MetadataRecord>,
    ) -> Result<CreatedTopic, ApiError> {
        if t.name == CLUSTER_METADATA_TOPIC {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                "Creation of internal topic __cluster_metadata is prohibited.",
            ));
        }
        validate_topic_name(&t.name)
            .map_err(|m| ApiError::new(ErrorCode::InvalidTopicException, m))?;
        if image.topic(&t.name).is_some() {
            return Err(ApiError::new(
                ErrorCode::TopicAlreadyExists,
                format!("Topic '{}' already exists.", t.name),
            ));
        }
        let unified = unify_collision_chars(&t.name);
        if let Some(other) = image
            .topics()
            .find(|o| unify_collision_chars(&o.name) == unified)
        {
            return Err(ApiError::new(
                ErrorCode::InvalidTopicException,
                format!(
                    "Topic '{}' collides with existing topic: {}",
                    t.name, other.name
                ),
            ));
        }
        if !unified_in_request.insert(unified) {
            return Err(ApiError::new(
                ErrorCode::InvalidTopicException,
                format!(
                    "Topic '{}' collides with another topic in the request",
                    t.name
                ),
            ));
        }
        let brokers: Vec<i32> = image.unfenced_brokers().map(|b| b.broker_id).collect();
        let assignments: Vec<Vec<i32>> = if t.assignments.is_empty() {
            let partitions = if t.num_partitions == -1 {
                self.config.num_partitions
            } else {
                t.num_partitions
            };
            let rf = if t.replication_factor == -1 {
                self.config.default_replication_factor
            } else {
                t.replication_factor
            };
            if partitions <= 0 {
                return Err(ApiError::new(
                    ErrorCode::InvalidPartitions,
                    "Number of partitions was set to an invalid non-positive value.",
                ));
            }
            if rf <= 0 {
                return Err(ApiError::new(
                    ErrorCode::InvalidReplicationFactor,
                    "Replication factor must be larger than 0, or -1 to use the default value.",
                ));
            }
            place_replicas(&brokers, 0, partitions, rf)?
        } else {
            if t.num_partitions != -1 || t.replication_factor != -1 {
                return Err(ApiError::new(
                    ErrorCode::InvalidRequest,
                    "A manual partition assignment was specified, but numPartitions or replicationFactor was not set to -1.",
                ));
            }
            let mut sorted = t.assignments.clone();
            sorted.sort_by_key(|(p, _)| *p);
            for (i, (p, _)) in sorted.iter().enumerate() {
                if *p != i as i32 {
                    return Err(ApiError::new(
                        ErrorCode::InvalidReplicaAssignment,
                        "Partitions should be consecutive and start at 0.",
                    ));
                }
            }
            let replicas: Vec<Vec<i32>> = sorted.into_iter().map(|(_, r)| r).collect();
            validate_assignments(image, &replicas, None)?;
            replicas
        };
        let mut configs = BTreeMap::new();
        for (k, v) in &t.configs {
            let v = v.clone().ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidConfig,
                    format!("Null value not supported for topic configs: {k}"),
                )
            })?;
            configs.insert(k.clone(), v);
        }
        validate_topic_overrides(&configs).map_err(|e| match e {
            strom_config::ConfigError::UnknownTopicConfig(k) => ApiError::new(
                ErrorCode::InvalidConfig,
                format!("Unknown topic config name: {k}"),
            ),
            other => ApiError::new(ErrorCode::InvalidConfig, other.to_string()),
        })?;
        let topic_id = Uuid::new_v4();
        records.push(MetadataRecord::Topic {
            name: t.name.clone(),
            topic_id,
        });
        for (name, value) in &configs {
            records.push(MetadataRecord::Config {
                resource_type: ConfigResourceType::Topic,
                resource_name: t.name.clone(),
                name: name.clone(),
                value: Some(value.clone()),
            });
        }
        for (p, replicas) in assignments.iter().enumerate() {
            records.push(MetadataRecord::Partition {
                topic_id,
                partition_id: p as i32,
                replicas: replicas.clone(),
                isr: replicas.clone(),
                leader: replicas.first().copied().unwrap_or(-1),
                leader_epoch: 0,
                partition_epoch: 0,
            });
        }
        Ok(CreatedTopic {
            topic_id,
            num_partitions: assignments.len() as i32,
            replication_factor: assignments.first().map_or(0, |r| r.len() as i16),
            configs,
        })
    }

    /// Deletes topics; returns each one's id and name or its error.
    pub async fn delete_topics(
        &self,
        topics: Vec<TopicRef>,
    ) -> (Vec<Result<(Uuid, String), ApiError>>, Option<CommitOffset>) {
        let _guard = self.write_lock.lock().await;
        if !self.config.delete_topic_enable {
            let err = ApiError::new(
                ErrorCode::TopicDeletionDisabled,
                "Topic deletion is disabled.",
            );
            return (topics.iter().map(|_| Err(err.clone())).collect(), None);
        }
        let image = match self.current_image().await {
            Ok(image) => image,
            Err(e) => {
                let err = e.to_api_error();
                return (topics.iter().map(|_| Err(err.clone())).collect(), None);
            }
        };
        let mut seen: HashMap<Uuid, usize> = HashMap::new();
        let resolved: Vec<Result<(Uuid, String), ApiError>> = topics
            .iter()
            .map(|t| match t {
                TopicRef::Name(n) => {
                    image
                        .topic(n)
                        .map(|t| (t.id, t.name.clone()))
                        .ok_or_else(|| {
                            ApiError::new(
                                ErrorCode::UnknownTopicOrPartition,
                                "This server does not host this topic-partition.",
                            )
                        })
                }
                TopicRef::Id(id) => image
                    .topic_by_id(id)
                    .map(|t| (t.id, t.name.clone()))
                    .ok_or_else(|| {
                        ApiError::new(
                            ErrorCode::UnknownTopicId,
                            "This server does not host this topic ID.",
                        )
                    }),
                TopicRef::Invalid(m) => Err(ApiError::new(ErrorCode::InvalidRequest, m.clone())),
            })
            .collect();
        for (id, _) in resolved.iter().flatten() {
            *seen.entry(*id).or_default() += 1;
        }
        let results: Vec<Result<(Uuid, String), ApiError>> = resolved
            .into_iter()
            .map(|r| match r {
                Ok((id, _)) if seen.get(&id).copied().unwrap_or(0) > 1 => Err(ApiError::new(
                    ErrorCode::InvalidRequest,
                    "Duplicate topic in the request.",
                )),
                other => other,
            })
            .collect();
        let records: Vec<MetadataRecord> = results
            .iter()
            .flatten()
            .map(|(id, _)| MetadataRecord::RemoveTopic { topic_id: *id })
            .collect();
        if records.is_empty() {
            return (results, None);
        }
        match self.commit(records).await {
            Ok(offset) => {
                for (id, name) in results.iter().flatten() {
                    tracing::info!(topic = %name, topic_id = %id, "deleted topic");
                }
                (results, Some(offset))
            }
            Err(e) => {
                let err = e.to_api_error();
                (
                    results
                        .into_iter()
                        .map(|r| r.and(Err(err.clone())))
                        .collect(),
                    None,
                )
            }
        }
    }

    /// Adds partitions to topics.
    pub async fn create_partitions(
        &self,
        requests: Vec<CreatePartitions>,
        validate_only: bool,
    ) -> (Vec<Result<(), ApiError>>, Option<CommitOffset>) {
        let _guard = self.write_lock.lock().await;
        let image = match self.current_image().await {
            Ok(image) => image,
            Err(e) => {
                let err = e.to_api_error();
                return (requests.iter().map(|_| Err(err.clone())).collect(), None);
            }
        };
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for r in &requests {
            *counts.entry(r.name.as_str()).or_default() += 1;
        }
        let mut records = Vec::new();
        let mut added_total: i64 = 0;
        let results = requests
            .iter()
            .map(|r| {
                if counts.get(r.name.as_str()).copied().unwrap_or(0) > 1 {
                    return Err(ApiError::new(ErrorCode::InvalidRequest, "Duplicate topic name."));
                }
                let topic = image.topic(&r.name).ok_or_else(|| {
                    ApiError::new(ErrorCode::UnknownTopicOrPartition, "This server does not host this topic-partition.")
                })?;
                let current = topic.partitions.len() as i32;
                if r.count == current {
                    return Err(ApiError::new(
                        ErrorCode::InvalidPartitions,
                        format!("Topic already has {current} partition(s)."),
                    ));
                }
                if r.count < current {
                    return Err(ApiError::new(
                        ErrorCode::InvalidPartitions,
                        format!(
                            "The topic {} currently has {current} partition(s); {} would not be an increase.",
                            r.name, r.count
                        ),
                    ));
                }
                let adding = r.count - current;
                added_total += i64::from(adding);
                if added_total > MAX_PARTITIONS_PER_REQUEST {
                    return Err(ApiError::new(
                        ErrorCode::PolicyViolation,
                        "Excessively large number of partitions per request.",
                    ));
                }
                let rf = topic.partitions.values().next().map_or(1, |p| p.replicas.len() as i16);
                let replicas = match &r.assignments {
                    Some(a) => {
                        if a.len() != adding as usize {
                            return Err(ApiError::new(
                                ErrorCode::InvalidReplicaAssignment,
                                format!("Attempted to add {adding} additional partition(s), but only {} assignment(s) were specified.", a.len()),
                            ));
                        }
                        validate_assignments(&image, a, Some(rf as usize))?;
                        a.clone()
                    }
                    None => {
                        let brokers: Vec<i32> = image.unfenced_brokers().map(|b| b.broker_id).collect();
                        place_replicas(&brokers, current, adding, rf)?
                    }
                };
                for (i, replicas) in replicas.into_iter().enumerate() {
                    records.push(MetadataRecord::Partition {
                        topic_id: topic.id,
                        partition_id: current + i as i32,
                        isr: replicas.clone(),
                        leader: replicas.first().copied().unwrap_or(-1),
                        replicas,
                        leader_epoch: 0,
                        partition_epoch: 0,
                    });
                }
                Ok(())
            })
            .collect::<Vec<_>>();
        if validate_only || records.is_empty() {
            return (results, None);
        }
        match self.commit(records).await {
            Ok(offset) => (results, Some(offset)),
            Err(e) => {
                let err = e.to_api_error();
                (
                    results
                        .into_iter()
                        .map(|r| r.and(Err(err.clone())))
                        .collect(),
                    None,
                )
            }
        }
    }

    /// Hands `broker_id` the next block of producer ids; returns its first
    /// id. Blocks are recorded in the metadata log, so no id is given out
    /// twice, across restarts too.
    pub async fn allocate_producer_ids(
        &self,
        broker_id: i32,
        broker_epoch: i64,
    ) -> Result<i64, ApiError> {
        let _guard = self.write_lock.lock().await;
        let first = self
            .current_image()
            .await
            .map_err(|e| e.to_api_error())?
            .next_producer_id();
        let next = first.checked_add(PRODUCER_ID_BLOCK_SIZE).ok_or_else(|| {
            ApiError::new(ErrorCode::UnknownServerError, "producer ids are exhausted")
        })?;
        self.commit(vec![MetadataRecord::ProducerIds {
            broker_id,
            broker_epoch,
            next_producer_id: next,
        }])
        .await
        .map_err(|e| e.to_api_error())?;
        Ok(first)
    }

    /// Leaves the quorum and closes the metadata log.
    pub async fn shutdown(&self) -> Result<(), ControllerError> {
        self.quorum.shutdown().await
    }
}

/// Checks manual replica assignments: non-empty, no duplicate brokers,
/// registered brokers, equal sizes (or `rf` when given).
fn validate_assignments(
    image: &MetadataImage,
    assignments: &[Vec<i32>],
    rf: Option<usize>,
) -> Result<(), ApiError> {
    let bad = |m: String| ApiError::new(ErrorCode::InvalidReplicaAssignment, m);
    let expected = rf
        .or_else(|| assignments.first().map(Vec::len))
        .unwrap_or(0);
    for replicas in assignments {
        if replicas.is_empty() {
            return Err(bad(
                "The manual partition assignment includes an empty replica list.".into(),
            ));
        }
        let unique: HashSet<&i32> = replicas.iter().collect();
        if unique.len() != replicas.len() {
            return Err(bad(format!("The manual partition assignment includes the broker ids more than once: {replicas:?}")));
        }
        if let Some(b) = replicas.iter().find(|b| image.broker(**b).is_none()) {
            return Err(bad(format!("The manual partition assignment includes broker {b}, but no such broker is registered.")));
        }
        if replicas.len() != expected {
            return Err(bad(format!(
                "The manual partition assignment includes a partition with {} replica(s), but this is not consistent with previous partitions, which have {expected} replica(s).",
                replicas.len()
            )));
        }
    }
    Ok(())
}
