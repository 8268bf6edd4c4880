//! The metadata image: an immutable snapshot of the cluster's metadata as of
//! one offset of the metadata log, and the delta that produced it.
//!
//! Images are shared behind `Arc`; applying records builds a new image that
//! shares every unchanged topic with the old one, so readers never lock and
//! never see a half-applied change.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use uuid::Uuid;

use crate::record::{BrokerRegistration, ConfigResourceType, MetadataRecord};

/// A partition as the metadata knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRegistration {
    /// Replica broker ids, preferred leader first.
    pub replicas: Vec<i32>,
    /// In-sync replicas.
    pub isr: Vec<i32>,
    /// Leader broker id, −1 when none.
    pub leader: i32,
    /// Leader epoch.
    pub leader_epoch: i32,
    /// Partition epoch.
    pub partition_epoch: i32,
    /// During a reassignment: replicas being added (already in `replicas`).
    #[serde(default)]
    pub adding_replicas: Vec<i32>,
    /// During a reassignment: replicas to drop once the added ones are in
    /// sync (still in `replicas`).
    #[serde(default)]
    pub removing_replicas: Vec<i32>,
}

impl PartitionRegistration {
    /// Whether a reassignment is under way.
    pub fn is_reassigning(&self) -> bool {
        !self.adding_replicas.is_empty() || !self.removing_replicas.is_empty()
    }

    /// The replicas a reassignment under way moves to (all replicas when
    /// none is).
    pub fn target_replicas(&self) -> Vec<i32> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.removing_replicas.contains(r))
            .collect()
    }

    /// The replicas before the reassignment under way began.
    pub fn original_replicas(&self) -> Vec<i32> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.adding_replicas.contains(r))
            .collect()
    }
}

/// A topic and its partitions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicImage {
    /// Name.
    pub name: String,
    /// Id.
    pub id: Uuid,
    /// Partitions by index.
    pub partitions: BTreeMap<i32, PartitionRegistration>,
}

/// The cluster's metadata at one metadata log offset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataImage {
    /// Offset of the last record applied (−1 for the empty image).
    pub offset: i64,
    /// Topics by name.
    topics: BTreeMap<String, Arc<TopicImage>>,
    /// Topic names by id.
    topic_names: HashMap<Uuid, String>,
    /// Registered brokers by id.
    brokers: BTreeMap<i32, BrokerRegistration>,
    /// Config overrides by resource.
    configs: BTreeMap<(ConfigResourceType, String), Arc<BTreeMap<String, String>>>,
    /// First producer id not yet handed out.
    next_producer_id: i64,
}

/// Everything an image holds, as plain data: what a metadata snapshot
/// stores (see the controller's snapshot files). An image rebuilt from its
/// snapshot equals the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSnapshot {
    /// Offset of the last record applied.
    pub offset: i64,
    /// Topics.
    pub topics: Vec<TopicImage>,
    /// Registered brokers.
    pub brokers: Vec<BrokerRegistration>,
    /// Config overrides: (resource type, resource name, key, value).
    pub configs: Vec<(ConfigResourceType, String, String, String)>,
    /// First producer id not yet handed out.
    pub next_producer_id: i64,
}

/// What a set of records changed, for brokers to act on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataDelta {
    /// Topics created.
    pub created_topics: BTreeSet<Uuid>,
    /// Topics deleted, with the name and partitions they had.
    pub deleted_topics: Vec<(Uuid, String, Vec<i32>)>,
    /// Partitions created or changed.
    pub changed_partitions: BTreeSet<(Uuid, i32)>,
    /// Topics whose configs changed (by name).
    pub changed_topic_configs: BTreeSet<String>,
    /// Brokers registered, fenced or unfenced.
    pub changed_brokers: BTreeSet<i32>,
}

impl MetadataDelta {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A record that does not apply to the image it is replayed on: a sign of a
/// corrupt or foreign metadata log.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MetadataError {
    /// A record names a topic id the image does not have.
    #[error("record at offset {offset} refers to unknown topic id {topic_id}")]
    UnknownTopic {
        /// Metadata log offset.
        offset: i64,
        /// The id.
        topic_id: Uuid,
    },
    /// A topic record reuses a name or id.
    #[error("record at offset {offset} creates topic {name} which already exists")]
    DuplicateTopic {
        /// Metadata log offset.
        offset: i64,
        /// The name.
        name: String,
    },
    /// A record about an unknown broker.
    #[error("record at offset {offset} refers to unknown broker {broker_id}")]
    UnknownBroker {
        /// Metadata log offset.
        offset: i64,
        /// The broker.
        broker_id: i32,
    },
    /// A partition change would take an epoch past `i32::MAX` (only a
    /// crafted or corrupt snapshot holds such an epoch): refused on every
    /// node alike, never wrapped.
    #[error("record at offset {offset} would overflow an epoch of partition {partition_id}")]
    EpochOverflow {
        /// Metadata log offset.
        offset: i64,
        /// The partition.
        partition_id: i32,
    },
}

impl MetadataImage {
    /// The empty image, before any record.
    pub fn empty() -> Self {
        Self {
            offset: -1,
            ..Self::default()
        }
    }

    /// The image as plain data.
    pub fn to_snapshot(&self) -> ImageSnapshot {
        ImageSnapshot {
            offset: self.offset,
            topics: self.topics.values().map(|t| (**t).clone()).collect(),
            brokers: self.brokers.values().cloned().collect(),
            configs: self
                .configs
                .iter()
                .flat_map(|((kind, resource), map)| {
                    map.iter()
                        .map(move |(k, v)| (*kind, resource.clone(), k.clone(), v.clone()))
                })
                .collect(),
            next_producer_id: self.next_producer_id,
        }
    }

    /// The image a snapshot holds; an error when it is inconsistent (two
    /// topics with one name or id).
    pub fn from_snapshot(snapshot: ImageSnapshot) -> Result<Self, MetadataError> {
        let mut image = Self {
            offset: snapshot.offset,
            next_producer_id: snapshot.next_producer_id,
            ..Self::default()
        };
        for topic in snapshot.topics {
            if image.topics.contains_key(&topic.name) || image.topic_names.contains_key(&topic.id) {
                return Err(MetadataError::DuplicateTopic {
                    offset: snapshot.offset,
                    name: topic.name,
                });
            }
            image.topic_names.insert(topic.id, topic.name.clone());
            image.topics.insert(topic.name.clone(), Arc::new(topic));
        }
        for broker in snapshot.brokers {
            image.brokers.insert(broker.broker_id, broker);
        }
        for (kind, resource, key, value) in snapshot.configs {
            let entry = image.configs.entry((kind, resource)).or_default();
            Arc::make_mut(entry).insert(key, value);
        }
        Ok(image)
    }

    /// A topic by name.
    pub fn topic(&self, name: &str) -> Option<&Arc<TopicImage>> {
        self.topics.get(name)
    }

    /// A topic by id.
    pub fn topic_by_id(&self, id: &Uuid) -> Option<&Arc<TopicImage>> {
        self.topic_names.get(id).and_then(|n| self.topics.get(n))
    }

    /// All topics, by name.
    pub fn topics(&self) -> impl Iterator<Item = &Arc<TopicImage>> {
        self.topics.values()
    }

    /// Number of topics.
    pub fn topic_count(&self) -> usize {
        self.topics.len()
    }

    /// A broker.
    pub fn broker(&self, id: i32) -> Option<&BrokerRegistration> {
        self.brokers.get(&id)
    }

    /// All registered brokers.
    pub fn brokers(&self) -> impl Iterator<Item = &BrokerRegistration> {
        self.brokers.values()
    }

    /// Brokers that are not fenced.
    pub fn unfenced_brokers(&self) -> impl Iterator<Item = &BrokerRegistration> {
        self.brokers.values().filter(|b| !b.fenced)
    }

    /// First producer id not yet handed out in a block.
    pub fn next_producer_id(&self) -> i64 {
        self.next_producer_id
    }

    /// A topic's config overrides.
    pub fn topic_configs(&self, topic: &str) -> Arc<BTreeMap<String, String>> {
        self.configs
            .get(&(ConfigResourceType::Topic, topic.to_string()))
            .cloned()
            .unwrap_or_default()
    }

    /// A resource's config overrides.
    pub fn configs(
        &self,
        resource_type: ConfigResourceType,
        name: &str,
    ) -> Arc<BTreeMap<String, String>> {
        self.configs
            .get(&(resource_type, name.to_string()))
            .cloned()
            .unwrap_or_default()
    }

    /// Applies records (each with its metadata log offset) and returns the
    /// new image and what changed. The image itself is not modified.
    pub fn apply<'a>(
        &self,
        records: impl IntoIterator<Item = (i64, &'a MetadataRecord)>,
    ) -> Result<(MetadataImage, MetadataDelta), MetadataError> {
        let mut next = self.clone();
        let mut delta = MetadataDelta::default();
        for (offset, record) in records {
            next.replay(offset, record, &mut delta)?;
            next.offset = offset;
        }
        Ok((next, delta))
    }

    fn topic_mut(
        &mut self,
        offset: i64,
        topic_id: &Uuid,
    ) -> Result<&mut TopicImage, MetadataError> {
        let name = self
            .topic_names
            .get(topic_id)
            .ok_or(MetadataError::UnknownTopic {
                offset,
                topic_id: *topic_id,
            })?;
        let topic = self
            .topics
            .get_mut(name)
            .ok_or(MetadataError::UnknownTopic {
                offset,
                topic_id: *topic_id,
            })?;
        Ok(Arc::make_mut(topic))
    }

    fn replay(
        &mut self,
        offset: i64,
        record: &MetadataRecord,
        delta: &mut MetadataDelta,
    ) -> Result<(), MetadataError> {
        match record {
            MetadataRecord::RegisterBroker(registration) => {
                let mut r = registration.clone();
                r.broker_epoch = offset;
                delta.changed_brokers.insert(r.broker_id);
                self.brokers.insert(r.broker_id, r);
            }
            MetadataRecord::BrokerFencing { broker_id, fenced } => {
                let b = self
                    .brokers
                    .get_mut(broker_id)
                    .ok_or(MetadataError::UnknownBroker {
                        offset,
                        broker_id: *broker_id,
                    })?;
                b.fenced = *fenced;
                delta.changed_brokers.insert(*broker_id);
            }
            MetadataRecord::Topic { name, topic_id } => {
                if self.topics.contains_key(name) || self.topic_names.contains_key(topic_id) {
                    return Err(MetadataError::DuplicateTopic {
                        offset,
                        name: name.clone(),
                    });
                }
                self.topics.insert(
                    name.clone(),
                    Arc::new(TopicImage {
                        name: name.clone(),
                        id: *topic_id,
                        partitions: BTreeMap::new(),
                    }),
                );
                self.topic_names.insert(*topic_id, name.clone());
                delta.created_topics.insert(*topic_id);
            }
            MetadataRecord::Partition {
                topic_id,
                partition_id,
                replicas,
                isr,
                leader,
                leader_epoch,
                partition_epoch,
            } => {
                let topic = self.topic_mut(offset, topic_id)?;
                topic.partitions.insert(
                    *partition_id,
                    PartitionRegistration {
                        replicas: replicas.clone(),
                        isr: isr.clone(),
                        leader: *leader,
                        leader_epoch: *leader_epoch,
                        partition_epoch: *partition_epoch,
                        adding_replicas: Vec::new(),
                        removing_replicas: Vec::new(),
                    },
                );
                delta.changed_partitions.insert((*topic_id, *partition_id));
            }
            MetadataRecord::PartitionChange {
                topic_id,
                partition_id,
                leader,
                isr,
                replicas,
                adding_replicas,
                removing_replicas,
            } => {
                let topic = self.topic_mut(offset, topic_id)?;
                let p =
                    topic
                        .partitions
                        .get_mut(partition_id)
                        .ok_or(MetadataError::UnknownTopic {
                            offset,
                            topic_id: *topic_id,
                        })?;
                let overflow = MetadataError::EpochOverflow {
                    offset,
                    partition_id: *partition_id,
                };
                let partition_epoch = p.partition_epoch.checked_add(1).ok_or(overflow.clone())?;
                if let Some(l) = leader {
                    p.leader_epoch = p.leader_epoch.checked_add(1).ok_or(overflow)?;
                    p.leader = *l;
                }
                if let Some(i) = isr {
                    p.isr = i.clone();
                }
                if let Some(r) = replicas {
                    p.replicas = r.clone();
                }
                if let Some(r) = adding_replicas {
                    p.adding_replicas = r.clone();
                }
                if let Some(r) = removing_replicas {
                    p.removing_replicas = r.clone();
                }
                p.partition_epoch = partition_epoch;
                delta.changed_partitions.insert((*topic_id, *partition_id));
            }
            MetadataRecord::RemoveTopic { topic_id } => {
                let name =
                    self.topic_names
                        .remove(topic_id)
                        .ok_or(MetadataError::UnknownTopic {
                            offset,
                            topic_id: *topic_id,
                        })?;
                if let Some(t) = self.topics.remove(&name) {
                    delta.deleted_topics.push((
                        *topic_id,
                        name.clone(),
                        t.partitions.keys().copied().collect(),
                    ));
                }
                delta.created_topics.remove(topic_id);
                delta.changed_partitions.retain(|(id, _)| id != topic_id);
                if self
                    .configs
                    .remove(&(ConfigResourceType::Topic, name.clone()))
                    .is_some()
                {
                    delta.changed_topic_configs.insert(name);
                }
            }
            MetadataRecord::ProducerIds {
                next_producer_id, ..
            } => {
                self.next_producer_id = self.next_producer_id.max(*next_producer_id);
            }
            MetadataRecord::Config {
                resource_type,
                resource_name,
                name,
                value,
            } => {
                let key = (*resource_type, resource_name.clone());
                let entry = self.configs.entry(key.clone()).or_default();
                let map = Arc::make_mut(entry);
                match value {
                    Some(v) => {
                        map.insert(name.clone(), v.clone());
                    }
                    None => {
                        map.remove(name);
                    }
                }
                if map.is_empty() {
                    self.configs.remove(&key);
                }
                if *resource_type == ConfigResourceType::Topic {
                    delta.changed_topic_configs.insert(resource_name.clone());
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic_records(name: &str, id: Uuid, partitions: i32) -> Vec<MetadataRecord> {
        let mut v = vec![MetadataRecord::Topic {
            name: name.into(),
            topic_id: id,
        }];
        for p in 0..partitions {
            v.push(MetadataRecord::Partition {
                topic_id: id,
                partition_id: p,
                replicas: vec![1],
                isr: vec![1],
                leader: 1,
                leader_epoch: 0,
                partition_epoch: 0,
            });
        }
        v
    }

    fn numbered(records: &[MetadataRecord], from: i64) -> Vec<(i64, &MetadataRecord)> {
        records
            .iter()
            .enumerate()
            .map(|(i, r)| (from + i as i64, r))
            .collect()
    }

    #[test]
    fn an_epoch_at_its_maximum_refuses_the_change_instead_of_overflowing() {
        let id = Uuid::new_v4();
        for (leader_epoch, partition_epoch) in [(i32::MAX, 0), (0, i32::MAX)] {
            let records = vec![
                MetadataRecord::Topic {
                    name: "worn".into(),
                    topic_id: id,
                },
                MetadataRecord::Partition {
                    topic_id: id,
                    partition_id: 0,
                    replicas: vec![1, 2],
                    isr: vec![1, 2],
                    leader: 1,
                    leader_epoch,
                    partition_epoch,
                },
            ];
            let (image, _) = MetadataImage::empty().apply(numbered(&records, 0)).unwrap();
            let change = [MetadataRecord::PartitionChange {
                topic_id: id,
                partition_id: 0,
                leader: Some(2),
                isr: None,
                replicas: None,
                adding_replicas: None,
                removing_replicas: None,
            }];
            assert_eq!(
                image.apply(numbered(&change, 2)).unwrap_err(),
                MetadataError::EpochOverflow {
                    offset: 2,
                    partition_id: 0
                }
            );
        }
    }

    #[test]
    fn topics_partitions_configs_and_removal() {
        let id = Uuid::new_v4();
        let mut records = topic_records("orders", id, 3);
        records.push(MetadataRecord::Config {
            resource_type: ConfigResourceType::Topic,
            resource_name: "orders".into(),
            name: "retention.ms".into(),
            value: Some("1000".into()),
        });
        let empty = MetadataImage::empty();
        let (image, delta) = empty.apply(numbered(&records, 0)).unwrap();
        assert_eq!(image.offset, 4);
        assert_eq!(image.topic("orders").unwrap().partitions.len(), 3);
        assert_eq!(image.topic_by_id(&id).unwrap().name, "orders");
        assert_eq!(
            image
                .topic_configs("orders")
                .get("retention.ms")
                .map(String::as_str),
            Some("1000")
        );
        assert!(delta.created_topics.contains(&id));
        assert_eq!(delta.changed_partitions.len(), 3);
        assert!(
            empty.topic("orders").is_none(),
            "the old image is untouched"
        );

        let change = [MetadataRecord::PartitionChange {
            topic_id: id,
            partition_id: 1,
            leader: Some(2),
            isr: Some(vec![2]),
            replicas: None,
            adding_replicas: None,
            removing_replicas: None,
        }];
        let (image2, _) = image.apply(numbered(&change, 5)).unwrap();
        let p = &image2.topic("orders").unwrap().partitions[&1];
        assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (2, 1, 1));

        let remove = [MetadataRecord::RemoveTopic { topic_id: id }];
        let (image3, delta) = image2.apply(numbered(&remove, 6)).unwrap();
        assert!(image3.topic("orders").is_none());
        assert!(image3.topic_configs("orders").is_empty());
        assert_eq!(
            delta.deleted_topics,
            vec![(id, "orders".to_string(), vec![0, 1, 2])]
        );
    }

    #[test]
    fn an_image_survives_its_snapshot() {
        let id = Uuid::new_v4();
        let mut records = topic_records("orders", id, 2);
        records.extend(topic_records("audit", Uuid::new_v4(), 1));
        records.push(MetadataRecord::RegisterBroker(BrokerRegistration {
            broker_id: 3,
            incarnation_id: Uuid::new_v4(),
            broker_epoch: 0,
            endpoints: Vec::new(),
            rack: Some("r1".into()),
            fenced: true,
        }));
        records.push(MetadataRecord::Config {
            resource_type: ConfigResourceType::Topic,
            resource_name: "orders".into(),
            name: "retention.ms".into(),
            value: Some("1000".into()),
        });
        records.push(MetadataRecord::Config {
            resource_type: ConfigResourceType::Broker,
            resource_name: "".into(),
            name: "log.retention.ms".into(),
            value: Some("5".into()),
        });
        records.push(MetadataRecord::ProducerIds {
            broker_id: 3,
            broker_epoch: 5,
            next_producer_id: 2000,
        });
        let (image, _) = MetadataImage::empty()
            .apply(numbered(&records, 10))
            .unwrap();
        let snapshot = image.to_snapshot();
        let json = serde_json::to_vec(&snapshot).unwrap();
        let back: ImageSnapshot = serde_json::from_slice(&json).unwrap();
        let rebuilt = MetadataImage::from_snapshot(back).unwrap();
        assert_eq!(rebuilt, image);
        assert_eq!(
            rebuilt.broker(3).unwrap().broker_epoch,
            image.broker(3).unwrap().broker_epoch
        );
        // And it keeps applying records like the original.
        let more = [MetadataRecord::RemoveTopic { topic_id: id }];
        assert_eq!(
            rebuilt.apply(numbered(&more, 99)).unwrap().0,
            image.apply(numbered(&more, 99)).unwrap().0
        );
    }

    #[test]
    fn inconsistent_records_are_errors() {
        let id = Uuid::new_v4();
        let records = topic_records("a", id, 1);
        let (image, _) = MetadataImage::empty().apply(numbered(&records, 0)).unwrap();
        let dup = [MetadataRecord::Topic {
            name: "a".into(),
            topic_id: Uuid::new_v4(),
        }];
        assert!(image.apply(numbered(&dup, 9)).is_err());
        let unknown = [MetadataRecord::RemoveTopic {
            topic_id: Uuid::new_v4(),
        }];
        assert!(image.apply(numbered(&unknown, 9)).is_err());
    }
}
