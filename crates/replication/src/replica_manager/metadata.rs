//! Applying metadata to local replicas: loading the logs at start-up,
//! reconciling the hosted partitions with each new image, and telling
//! waiters which metadata offset this broker has applied.

use super::*;

impl ReplicaManager {
    /// Loads the logs on disk at start-up, setting aside those the metadata
    /// no longer has. While a log directory is offline, a hosted partition
    /// whose log was not found is held offline rather than created empty
    /// (it may live in that directory). Blocking.
    pub fn load_logs(&self, image: &MetadataImage) -> Result<LoadSummary, StorageError> {
        let mut summary = self.log_manager.load_logs(now_ms(), |tp, topic_id| {
            let topic = image.topic(&tp.topic)?;
            let hosted = topic
                .partitions
                .get(&tp.partition)
                .is_some_and(|p| p.replicas.contains(&self.node_id));
            let same_topic = topic_id.is_none_or(|id| id == topic.id);
            (hosted && same_topic).then(|| (self.topic_config(image, &tp.topic), topic.id))
        })?;
        if !self.log_manager.offline_dirs().is_empty() {
            let assigned = image
                .topics()
                .flat_map(|topic| {
                    topic
                        .partitions
                        .iter()
                        .filter(|(_, p)| p.replicas.contains(&self.node_id))
                        .map(|(index, _)| {
                            (
                                TopicPartition::new(topic.name.clone(), *index),
                                topic.id,
                                self.topic_config(image, &topic.name),
                            )
                        })
                        .collect::<Vec<_>>()
                })
                .collect();
            summary.offline_logs += self
                .log_manager
                .hold_missing_logs_offline(assigned, now_ms());
        }
        Ok(summary)
    }

    /// Brings the hosted partitions in line with `image`. Blocking.
    pub fn reconcile(&self, image: &MetadataImage) {
        let now = now_ms();
        let mut wanted: HashMap<TopicPartition, (Uuid, PartitionState)> = HashMap::new();
        for topic in image.topics() {
            for (p, reg) in &topic.partitions {
                if reg.replicas.contains(&self.node_id) {
                    wanted.insert(
                        TopicPartition::new(topic.name.clone(), *p),
                        (
                            topic.id,
                            PartitionState {
                                leader: reg.leader,
                                leader_epoch: reg.leader_epoch,
                                partition_epoch: reg.partition_epoch,
                                replicas: reg.replicas.clone(),
                                isr: reg.isr.clone(),
                            },
                        ),
                    );
                }
            }
        }
        // Remove partitions no longer hosted, or whose topic was re-created.
        let doomed: Vec<TopicPartition> = self
            .partitions
            .read()
            .iter()
            .filter(|(tp, p)| wanted.get(*tp).is_none_or(|(id, _)| *id != p.topic_id()))
            .map(|(tp, _)| tp.clone())
            .collect();
        for tp in doomed {
            self.partitions.write().remove(&tp);
            if let Err(e) = self.log_manager.delete(&tp) {
                tracing::error!(partition = %tp, error = %e, "cannot delete log");
            } else {
                tracing::info!(partition = %tp, "deleted partition log");
            }
        }
        self.configs
            .lock()
            .retain(|topic, _| image.topic(topic).is_some());
        for (tp, (topic_id, state)) in wanted {
            let config = self.topic_config(image, &tp.topic);
            let existing = self.partitions.read().get(&tp).cloned();
            match existing {
                Some(p) => {
                    if p.state() != state {
                        p.update_state(state);
                    }
                    if !Arc::ptr_eq(&p.log().config(), &config) {
                        p.log().set_config(config);
                    }
                }
                None => match self.log_manager.get_or_create(&tp, topic_id, config, now) {
                    Ok(log) => {
                        let p = Arc::new(Partition::new(self.node_id, topic_id, log, state));
                        self.partitions.write().insert(tp, p);
                    }
                    Err(e) => tracing::error!(partition = %tp, error = %e, "cannot create log"),
                },
            }
        }
        let own = image.configs(ConfigResourceType::Broker, &self.node_id.to_string());
        let cluster_default = image.configs(ConfigResourceType::Broker, "");
        self.leader_quota.set_rate(throttled_rate(
            &own,
            &cluster_default,
            LEADER_THROTTLED_RATE,
        ));
        self.follower_quota.set_rate(throttled_rate(
            &own,
            &cluster_default,
            FOLLOWER_THROTTLED_RATE,
        ));
        self.applied_offset.send_replace(image.offset);
    }

    /// The metadata offset the hosted partitions reflect.
    pub fn applied_offset(&self) -> i64 {
        *self.applied_offset.borrow()
    }

    /// Waits until the hosted partitions reflect metadata `offset`.
    pub async fn wait_for_metadata(&self, offset: i64, timeout: Duration) -> bool {
        let mut rx = self.applied_offset.subscribe();
        let reached = tokio::time::timeout(timeout, rx.wait_for(|o| *o >= offset))
            .await
            .is_ok_and(|r| r.is_ok());
        reached
    }
}
