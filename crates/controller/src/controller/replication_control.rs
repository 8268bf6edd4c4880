//! Topics and partitions in the metadata (Kafka's
//! `ReplicationControlManager`): CreateTopics (names, collisions, configs,
//! replica placement), DeleteTopics, CreatePartitions, AlterPartition (ISR
//! changes from partition leaders, completing a reassignment once its new
//! replicas are in sync), ElectLeaders and the periodic preferred-leader
//! rebalance, and AlterPartitionReassignments. The rules themselves are
//! pure functions in [`crate::placement`], [`crate::election`],
//! [`crate::isr_change`] and [`crate::reassignment`]; this file checks
//! requests against the current image and commits their records.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use strom_config::validate_topic_overrides;
use strom_metadata::topic_name::{
    unify_collision_chars, validate_topic_name, CLUSTER_METADATA_TOPIC,
};
use strom_metadata::{ConfigResourceType, MetadataImage, MetadataRecord};
use strom_protocol::ErrorCode;
use tokio::sync::watch;
use uuid::Uuid;

use super::{every_request_failed, CommitOffset, Controller};
use crate::election::{elect_leaders, preferred_leaders, ElectionResult, ElectionType};
use crate::error::ApiError;
use crate::isr_change::{check_isr_change, IsrChange, IsrChanged};
use crate::ops::{ControllerOp, PartitionReassignment};
use crate::placement::{place_replicas, PlacementBroker};
use crate::reassignment;

/// Most partitions one CreateTopics or CreatePartitions request may create
/// (Kafka's `MAX_PARTITIONS_PER_BATCH`).
pub const MAX_PARTITIONS_PER_REQUEST: i64 = 10_000;

/// Preferred leader elections one rebalance round commits at most (Kafka's
/// `maxElectionsPerImbalance`); the rest wait for the next round.
pub const MAX_ELECTIONS_PER_REBALANCE: usize = 1_000;

/// A topic to create.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CreateTopic {
    /// Checked against Kafka's topic name rules, and against existing
    /// names that differ only in `.` versus `_`.
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedTopic {
    /// Drawn at random by the active controller.
    pub topic_id: Uuid,
    /// Partitions, with `num.partitions` resolved.
    pub num_partitions: i32,
    /// Replicas per partition, with `default.replication.factor` resolved.
    pub replication_factor: i16,
    /// The overrides given; defaults are not included.
    pub configs: BTreeMap<String, String>,
}

/// A topic to delete, by name or by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TopicRef {
    /// A name no topic has is UNKNOWN_TOPIC_OR_PARTITION.
    Name(String),
    /// An id no topic has is UNKNOWN_TOPIC_ID.
    Id(Uuid),
    /// Neither or both were given.
    Invalid(String),
}

/// Partitions to add to a topic.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreatePartitions {
    /// The topic to grow.
    pub name: String,
    /// New total count.
    pub count: i32,
    /// Replicas of each new partition; placed as for a new topic when
    /// `None`.
    pub assignments: Option<Vec<Vec<i32>>>,
}

impl Controller {
    /// Creates topics; each topic succeeds or fails on its own. Gives up
    /// after `timeout` when no controller answers.
    pub async fn create_topics(
        &self,
        topics: Vec<CreateTopic>,
        validate_only: bool,
        timeout: Duration,
    ) -> (Vec<Result<CreatedTopic, ApiError>>, Option<CommitOffset>) {
        let n = topics.len();
        let op = ControllerOp::CreateTopics {
            topics,
            validate_only,
        };
        self.route_as(op, timeout, answer!(CreateTopics(r, o) => Ok((r, o))))
            .await
            .unwrap_or_else(|e| every_request_failed(n, &e))
    }

    /// Deletes topics; returns each one's id and name or its error.
    pub async fn delete_topics(
        &self,
        topics: Vec<TopicRef>,
        timeout: Duration,
    ) -> (Vec<Result<(Uuid, String), ApiError>>, Option<CommitOffset>) {
        let n = topics.len();
        let op = ControllerOp::DeleteTopics { topics };
        self.route_as(op, timeout, answer!(DeleteTopics(r, o) => Ok((r, o))))
            .await
            .unwrap_or_else(|e| every_request_failed(n, &e))
    }

    /// CreatePartitions: grows each topic to its requested count; each
    /// topic succeeds or fails on its own.
    pub async fn create_partitions(
        &self,
        requests: Vec<CreatePartitions>,
        validate_only: bool,
        timeout: Duration,
    ) -> (Vec<Result<(), ApiError>>, Option<CommitOffset>) {
        let n = requests.len();
        let op = ControllerOp::CreatePartitions {
            requests,
            validate_only,
        };
        self.route_as(op, timeout, answer!(CreatePartitions(r, o) => Ok((r, o))))
            .await
            .unwrap_or_else(|e| every_request_failed(n, &e))
    }

    /// ElectLeaders: elects leaders of the given partitions (every
    /// partition when `None`); each partition's result.
    pub async fn elect_leaders(
        &self,
        election: ElectionType,
        partitions: Option<Vec<(String, i32)>>,
        timeout: Duration,
    ) -> Result<(Vec<ElectionResult>, Option<CommitOffset>), ApiError> {
        let op = ControllerOp::ElectLeaders {
            election,
            partitions,
        };
        self.route_as(op, timeout, answer!(ElectLeaders(r, o) => Ok((r, o))))
            .await
    }

    /// AlterPartition: commits a leader's new ISR; returns the partition
    /// after it and the offset to wait for.
    pub async fn alter_partition(
        &self,
        change: IsrChange,
        timeout: Duration,
    ) -> Result<(IsrChanged, Option<CommitOffset>), ApiError> {
        let op = ControllerOp::AlterPartition(change);
        self.route_as(op, timeout, answer!(AlterPartition(r) => r))
            .await
    }

    /// AlterPartitionReassignments: starts (or cancels) each partition's
    /// reassignment; one commit for all.
    pub async fn reassign_partitions(
        &self,
        partitions: Vec<PartitionReassignment>,
        allow_replication_factor_change: bool,
        timeout: Duration,
    ) -> Result<(Vec<Result<(), ApiError>>, Option<CommitOffset>), ApiError> {
        let op = ControllerOp::AlterPartitionReassignments {
            partitions,
            allow_replication_factor_change,
        };
        self.route_as(
            op,
            timeout,
            answer!(AlterPartitionReassignments(r, o) => Ok((r, o))),
        )
        .await
    }

    /// Moves leadership back to preferred replicas every
    /// `leader.imbalance.check.interval.seconds` while this node is the
    /// active controller (`auto.leader.rebalance.enable`); runs until
    /// `shutdown`.
    pub async fn run_leader_rebalance(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let Some(interval) = self.config.leader_imbalance_check_interval else {
            return;
        };
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.changed() => return,
            }
            if !self.quorum.is_leader() {
                continue;
            }
            let _guard = self.write_lock.lock().await;
            let Ok(image) = self.current_image().await else {
                continue;
            };
            let mut records = preferred_leaders(&image, None);
            records.truncate(MAX_ELECTIONS_PER_REBALANCE);
            if records.is_empty() {
                continue;
            }
            let moved = records.len();
            match self.commit(records).await {
                Ok(_) => tracing::info!(
                    partitions = moved,
                    "moved leadership back to preferred replicas"
                ),
                Err(e) => tracing::warn!(error = %e, "preferred leader election failed"),
            }
        }
    }

    pub(super) async fn create_topics_here(
        &self,
        topics: Vec<CreateTopic>,
        validate_only: bool,
    ) -> (Vec<Result<CreatedTopic, ApiError>>, Option<CommitOffset>) {
        let _guard = self.write_lock.lock().await;
        let image = match self.current_image().await {
            Ok(image) => image,
            Err(e) => return every_request_failed(topics.len(), &e.to_api_error()),
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
        if validate_only {
            return (results, None);
        }
        let (results, offset) = self.commit_for(results, records).await;
        if offset.is_some() {
            for r in results.iter().filter_map(|r| r.as_ref().ok()) {
                tracing::info!(topic_id = %r.topic_id, partitions = r.num_partitions, "created topic");
            }
        }
        (results, offset)
    }

    /// One topic of a CreateTopics request: checks it and adds its records
    /// to `records`.
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
        let brokers = placement_brokers(image);
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

    pub(super) async fn delete_topics_here(
        &self,
        topics: Vec<TopicRef>,
    ) -> (Vec<Result<(Uuid, String), ApiError>>, Option<CommitOffset>) {
        let _guard = self.write_lock.lock().await;
        if !self.config.delete_topic_enable {
            let err = ApiError::new(
                ErrorCode::TopicDeletionDisabled,
                "Topic deletion is disabled.",
            );
            return every_request_failed(topics.len(), &err);
        }
        let image = match self.current_image().await {
            Ok(image) => image,
            Err(e) => return every_request_failed(topics.len(), &e.to_api_error()),
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
        let (results, offset) = self.commit_for(results, records).await;
        if offset.is_some() {
            for (id, name) in results.iter().flatten() {
                tracing::info!(topic = %name, topic_id = %id, "deleted topic");
            }
        }
        (results, offset)
    }

    pub(super) async fn create_partitions_here(
        &self,
        requests: Vec<CreatePartitions>,
        validate_only: bool,
    ) -> (Vec<Result<(), ApiError>>, Option<CommitOffset>) {
        let _guard = self.write_lock.lock().await;
        let image = match self.current_image().await {
            Ok(image) => image,
            Err(e) => return every_request_failed(requests.len(), &e.to_api_error()),
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
                        let brokers = placement_brokers(&image);
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
        if validate_only {
            return (results, None);
        }
        self.commit_for(results, records).await
    }

    pub(super) async fn elect_leaders_here(
        &self,
        election: ElectionType,
        partitions: Option<&[(String, i32)]>,
    ) -> (Vec<ElectionResult>, Option<CommitOffset>) {
        let _guard = self.write_lock.lock().await;
        let image = match self.current_image().await {
            Ok(image) => image,
            Err(e) => {
                let err = e.to_api_error();
                let results = partitions
                    .unwrap_or_default()
                    .iter()
                    .map(|p| (p.clone(), Err(err.clone())))
                    .collect();
                return (results, None);
            }
        };
        let (results, records) = elect_leaders(&image, election, partitions);
        if records.is_empty() {
            return (results, None);
        }
        match self.commit(records).await {
            Ok(offset) => (results, Some(offset)),
            Err(e) => {
                let err = e.to_api_error();
                let results = results
                    .into_iter()
                    .map(|(p, r)| (p, r.and(Err(err.clone()))))
                    .collect();
                (results, None)
            }
        }
    }

    pub(super) async fn alter_partition_here(
        &self,
        change: IsrChange,
    ) -> Result<(IsrChanged, Option<CommitOffset>), ApiError> {
        let _guard = self.write_lock.lock().await;
        let image = self.current_image().await.map_err(|e| e.to_api_error())?;
        let (record, after) = check_isr_change(&image, &change)?;
        let Some(record) = record else {
            return Ok((after, None));
        };
        // A reassignment whose new replicas are all in sync now completes
        // in the same commit.
        let mut records = vec![record];
        if let Some(done) =
            completed_reassignment(&image, &change.topic, change.partition, &records)
        {
            tracing::info!(topic = %change.topic, partition = change.partition, "completed a partition reassignment");
            records.push(done);
        }
        let offset = self.commit(records).await.map_err(|e| e.to_api_error())?;
        tracing::info!(
            topic = %change.topic,
            partition = change.partition,
            isr = ?after.isr,
            partition_epoch = after.partition_epoch,
            "changed the ISR"
        );
        Ok((after, Some(offset)))
    }

    pub(super) async fn reassign_partitions_here(
        &self,
        partitions: &[PartitionReassignment],
        allow_replication_factor_change: bool,
    ) -> (Vec<Result<(), ApiError>>, Option<CommitOffset>) {
        let _guard = self.write_lock.lock().await;
        let image = match self.current_image().await {
            Ok(image) => image,
            Err(e) => return every_request_failed(partitions.len(), &e.to_api_error()),
        };
        // Each partition against the image its predecessors in this
        // request made, so one partition named twice is judged twice.
        let mut next = (*image).clone();
        let mut records = Vec::new();
        let mut results = Vec::new();
        for r in partitions {
            let outcome = reassignment_records(&next, r, allow_replication_factor_change);
            results.push(outcome.as_ref().map(|_| ()).map_err(Clone::clone));
            let Ok(these) = outcome else { continue };
            match next.apply(
                these
                    .iter()
                    .enumerate()
                    .map(|(i, rec)| (next.offset + 1 + i as i64, rec)),
            ) {
                Ok((applied, _)) => next = applied,
                Err(e) => {
                    tracing::error!(error = %e, "a reassignment record does not apply");
                    if let Some(last) = results.last_mut() {
                        *last = Err(ApiError::new(ErrorCode::UnknownServerError, e.to_string()));
                    }
                    continue;
                }
            }
            records.extend(these);
        }
        let (results, offset) = self.commit_for(results, records).await;
        if offset.is_some() {
            tracing::info!(
                partitions = partitions.len(),
                "started or cancelled partition reassignments"
            );
        }
        (results, offset)
    }
}

/// The records that start or cancel one partition's reassignment.
fn reassignment_records(
    image: &MetadataImage,
    request: &PartitionReassignment,
    allow_replication_factor_change: bool,
) -> Result<Vec<MetadataRecord>, ApiError> {
    let unknown = || {
        ApiError::new(
            ErrorCode::UnknownTopicOrPartition,
            "This server does not host this topic-partition.",
        )
    };
    let topic = image.topic(&request.topic).ok_or_else(unknown)?;
    let p = topic
        .partitions
        .get(&request.partition)
        .ok_or_else(unknown)?;
    match &request.target {
        Some(target) => reassignment::start_reassignment(
            image,
            topic.id,
            request.partition,
            p,
            target,
            allow_replication_factor_change,
        ),
        None => reassignment::cancel_reassignment(image, topic.id, request.partition, p)
            .map(|r| vec![r]),
    }
}

/// After `records` (an ISR change) applied to `image`: the record that
/// completes the partition's reassignment, if it may complete.
fn completed_reassignment(
    image: &MetadataImage,
    topic: &str,
    partition: i32,
    records: &[MetadataRecord],
) -> Option<MetadataRecord> {
    let moving = image.topic(topic)?.partitions.get(&partition)?;
    if !moving.is_reassigning() {
        return None;
    }
    let (after, _) = image
        .apply(
            records
                .iter()
                .enumerate()
                .map(|(i, r)| (image.offset + 1 + i as i64, r)),
        )
        .ok()?;
    let t = after.topic(topic)?;
    reassignment::complete_reassignment(&after, t.id, partition, t.partitions.get(&partition)?)
}

/// The brokers new replicas may go to: the unfenced ones, with their racks.
fn placement_brokers(image: &MetadataImage) -> Vec<PlacementBroker> {
    image
        .unfenced_brokers()
        .map(|b| PlacementBroker {
            id: b.broker_id,
            rack: b.rack.clone(),
        })
        .collect()
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
