//! Metadata images for the controller's unit tests: registered brokers
//! and one topic `t` (id [`TOPIC_ID`]) with the given partitions.

use strom_metadata::{BrokerRegistration, MetadataImage, MetadataRecord, PartitionRegistration};
use uuid::Uuid;

/// The id of topic `t`.
pub(crate) const TOPIC_ID: Uuid = Uuid::from_u128(7);

/// A partition at leader and partition epoch 0, not being reassigned.
pub(crate) fn partition(replicas: &[i32], isr: &[i32], leader: i32) -> PartitionRegistration {
    PartitionRegistration {
        replicas: replicas.to_vec(),
        isr: isr.to_vec(),
        leader,
        leader_epoch: 0,
        partition_epoch: 0,
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
    }
}

/// `brokers` (id, fenced) registered, then topic `t` with `partitions`
/// (indexes from 0). Each record at its own offset, so a broker's epoch is
/// its place in `brokers`.
pub(crate) fn image(
    brokers: &[(i32, bool)],
    partitions: &[PartitionRegistration],
) -> MetadataImage {
    let mut records: Vec<MetadataRecord> = brokers
        .iter()
        .map(|(b, fenced)| {
            MetadataRecord::RegisterBroker(BrokerRegistration {
                broker_id: *b,
                incarnation_id: Uuid::nil(),
                broker_epoch: 0,
                endpoints: Vec::new(),
                rack: None,
                fenced: *fenced,
            })
        })
        .collect();
    records.push(MetadataRecord::Topic {
        name: "t".into(),
        topic_id: TOPIC_ID,
    });
    for (i, p) in partitions.iter().enumerate() {
        records.push(MetadataRecord::Partition {
            topic_id: TOPIC_ID,
            partition_id: i32::try_from(i).unwrap(),
            replicas: p.replicas.clone(),
            isr: p.isr.clone(),
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
        });
    }
    MetadataImage::empty()
        .apply(records.iter().enumerate().map(|(i, r)| (i as i64, r)))
        .unwrap()
        .0
}
