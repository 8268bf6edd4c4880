//! How well the partitions are replicated, read from an image: which
//! replicas are offline, and the counts operators watch (Kafka's
//! `UnderReplicatedPartitions`, `UnderMinIsrPartitionCount`,
//! `AtMinIsrPartitionCount` of a broker, `OfflinePartitionsCount` of the
//! cluster).
//!
//! - A replica is offline when its broker is not registered or is fenced.
//! - A partition is offline when it has no leader, or its leader is
//!   offline: nobody can write to it or read from it.
//! - Of the partitions a broker leads, one is under-replicated when its ISR
//!   is smaller than its replica set (less the replicas a reassignment is
//!   still adding), under min ISR when the ISR is smaller
//!   than the topic's `min.insync.replicas` (acks=all writes fail with
//!   NOT_ENOUGH_REPLICAS), and at min ISR when it is exactly that (losing
//!   one more replica stops acks=all writes).

use crate::image::{MetadataImage, PartitionRegistration};

/// Partition counts for one broker, and the cluster's offline partitions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PartitionHealth {
    /// Partitions of the whole cluster without a live leader.
    pub offline: usize,
    /// Partitions the broker leads whose ISR lacks some replica.
    pub under_replicated: usize,
    /// Partitions the broker leads with fewer in-sync replicas than
    /// `min.insync.replicas`.
    pub under_min_isr: usize,
    /// Partitions the broker leads with exactly `min.insync.replicas`
    /// in-sync replicas.
    pub at_min_isr: usize,
}

impl MetadataImage {
    /// Whether `broker` is registered and not fenced.
    pub fn is_broker_online(&self, broker: i32) -> bool {
        self.broker(broker).is_some_and(|b| !b.fenced)
    }

    /// The replicas of `partition` whose brokers are offline, in replica
    /// order.
    pub fn offline_replicas(&self, partition: &PartitionRegistration) -> Vec<i32> {
        partition
            .replicas
            .iter()
            .copied()
            .filter(|r| !self.is_broker_online(*r))
            .collect()
    }

    /// Whether `partition` has a leader that is online.
    pub fn has_online_leader(&self, partition: &PartitionRegistration) -> bool {
        partition.leader >= 0 && self.is_broker_online(partition.leader)
    }

    /// The partitions waiting for `broker` to rejoin their ISR, as
    /// `(topic, partition)`: it is one of their replicas but not in their
    /// ISR, a reassignment is not still adding it, and another, live broker
    /// leads them (with no live leader there is nothing to catch up from).
    pub fn partitions_awaiting_replica(&self, broker: i32) -> Vec<(String, i32)> {
        let mut waiting = Vec::new();
        for topic in self.topics() {
            for (index, p) in &topic.partitions {
                if p.replicas.contains(&broker)
                    && !p.isr.contains(&broker)
                    && !p.adding_replicas.contains(&broker)
                    && p.leader != broker
                    && self.has_online_leader(p)
                {
                    waiting.push((topic.name.clone(), *index));
                }
            }
        }
        waiting
    }

    /// The counts for `broker`, `min_insync_replicas` giving each topic's
    /// effective `min.insync.replicas`.
    pub fn partition_health(
        &self,
        broker: i32,
        min_insync_replicas: impl Fn(&str) -> usize,
    ) -> PartitionHealth {
        let mut health = PartitionHealth::default();
        for topic in self.topics() {
            let mut min_isr = None;
            for p in topic.partitions.values() {
                if !self.has_online_leader(p) {
                    health.offline += 1;
                }
                if p.leader != broker {
                    continue;
                }
                let min_isr = *min_isr.get_or_insert_with(|| min_insync_replicas(&topic.name));
                let isr = p.isr.len();
                // Replicas a reassignment is adding do not count yet.
                let replication_factor = p.replicas.len().saturating_sub(p.adding_replicas.len());
                health.under_replicated += usize::from(isr < replication_factor);
                health.under_min_isr += usize::from(isr < min_isr);
                health.at_min_isr += usize::from(isr == min_isr);
            }
        }
        health
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::record::{BrokerRegistration, MetadataRecord};

    fn broker(id: i32) -> MetadataRecord {
        MetadataRecord::RegisterBroker(BrokerRegistration {
            broker_id: id,
            incarnation_id: Uuid::new_v4(),
            broker_epoch: i64::from(id),
            endpoints: Vec::new(),
            rack: None,
            fenced: false,
        })
    }

    fn partition(topic_id: Uuid, id: i32, leader: i32, isr: &[i32]) -> MetadataRecord {
        MetadataRecord::Partition {
            topic_id,
            partition_id: id,
            replicas: vec![1, 2, 3],
            isr: isr.to_vec(),
            leader,
            leader_epoch: 0,
            partition_epoch: 0,
        }
    }

    #[test]
    fn counts_follow_the_isr_the_min_isr_and_live_leaders() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let records = vec![
            broker(1),
            broker(2),
            broker(3),
            MetadataRecord::Topic {
                name: "a".into(),
                topic_id: a,
            },
            partition(a, 0, 1, &[1, 2, 3]),
            partition(a, 1, 1, &[1, 2]),
            partition(a, 2, 1, &[1]),
            partition(a, 3, 2, &[2]),
            MetadataRecord::Topic {
                name: "b".into(),
                topic_id: b,
            },
            partition(b, 0, -1, &[3]),
            partition(b, 1, 3, &[3]),
            MetadataRecord::BrokerFencing {
                broker_id: 3,
                fenced: true,
            },
            // a-0 gets a fourth replica by reassignment: not under-replicated
            // while it catches up.
            MetadataRecord::PartitionChange {
                topic_id: a,
                partition_id: 0,
                leader: None,
                isr: None,
                replicas: Some(vec![1, 2, 3, 4]),
                adding_replicas: Some(vec![4]),
                removing_replicas: Some(vec![]),
            },
        ];
        let image = MetadataImage::empty()
            .apply(records.iter().enumerate().map(|(i, r)| (i as i64, r)))
            .unwrap()
            .0;
        let min_isr = |topic: &str| if topic == "a" { 2 } else { 1 };
        assert_eq!(
            image.partition_health(1, min_isr),
            PartitionHealth {
                // b-0 has no leader, b-1's leader is fenced.
                offline: 2,
                under_replicated: 2,
                under_min_isr: 1,
                at_min_isr: 1,
            }
        );
        assert_eq!(
            image.partition_health(2, min_isr),
            PartitionHealth {
                offline: 2,
                under_replicated: 1,
                under_min_isr: 1,
                at_min_isr: 0,
            }
        );
        let b0 = &image.topic("b").unwrap().partitions[&0];
        assert_eq!(image.offline_replicas(b0), vec![3]);
        assert!(!image.has_online_leader(b0));
    }

    #[test]
    fn a_replica_out_of_the_isr_is_awaited_only_where_a_live_leader_waits() {
        let a = Uuid::new_v4();
        let records = vec![
            broker(1),
            broker(2),
            broker(3),
            MetadataRecord::Topic {
                name: "a".into(),
                topic_id: a,
            },
            // Awaited: led by live 1, 3 out of the ISR.
            partition(a, 0, 1, &[1, 2]),
            // In the ISR.
            partition(a, 1, 1, &[1, 2, 3]),
            // Led by fenced 2 (fenced below): nothing to catch up from.
            partition(a, 2, 2, &[2]),
            // No leader.
            partition(a, 3, -1, &[]),
            // Led by 3 itself.
            partition(a, 4, 3, &[3]),
            MetadataRecord::BrokerFencing {
                broker_id: 2,
                fenced: true,
            },
            // Being added by a reassignment: not awaited yet.
            MetadataRecord::PartitionChange {
                topic_id: a,
                partition_id: 1,
                leader: None,
                isr: Some(vec![1]),
                replicas: Some(vec![1, 2, 3]),
                adding_replicas: Some(vec![3]),
                removing_replicas: Some(vec![]),
            },
        ];
        let image = MetadataImage::empty()
            .apply(records.iter().enumerate().map(|(i, r)| (i as i64, r)))
            .unwrap()
            .0;
        assert_eq!(
            image.partitions_awaiting_replica(3),
            vec![("a".to_string(), 0)]
        );
        // 1 is out of a-4's ISR, which live 3 leads.
        assert_eq!(
            image.partitions_awaiting_replica(1),
            vec![("a".to_string(), 4)]
        );
        // 4 is no replica of anything.
        assert!(image.partitions_awaiting_replica(4).is_empty());
    }
}
