//! AlterPartition: a partition leader asks to change its ISR (dropping
//! followers that fell behind, taking back ones that caught up). The
//! controller checks the request against the image — a pure function
//! here — and commits the new ISR, which bumps the partition epoch.
//!
//! Kafka's rules: the broker must be registered with that epoch
//! (STALE_BROKER_EPOCH) and lead the partition (NOT_LEADER_OR_FOLLOWER)
//! in the current leader epoch (FENCED_LEADER_EPOCH); the request must be
//! based on the current partition epoch (INVALID_UPDATE_VERSION); the new
//! ISR must be replicas including the leader (INVALID_REQUEST), and every
//! broker it adds must be unfenced (INELIGIBLE_REPLICA).

use serde::{Deserialize, Serialize};
use strom_metadata::{BrokerRegistration, MetadataImage, MetadataRecord};
use strom_protocol::ErrorCode;

use crate::error::ApiError;

/// A leader's request for a new ISR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IsrChange {
    /// The leader.
    pub broker_id: i32,
    /// Its registration's epoch.
    pub broker_epoch: i64,
    /// Topic name.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The leader epoch it leads in.
    pub leader_epoch: i32,
    /// The partition epoch the request is based on.
    pub partition_epoch: i32,
    /// The ISR wanted.
    pub isr: Vec<i32>,
}

/// The partition after an accepted change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IsrChanged {
    /// Leader epoch (unchanged).
    pub leader_epoch: i32,
    /// The new partition epoch.
    pub partition_epoch: i32,
    /// The new ISR.
    pub isr: Vec<i32>,
}

/// The registration of `broker_id` if `broker_epoch` is its current epoch;
/// else STALE_BROKER_EPOCH, or `unregistered` when it is not registered at
/// all (heartbeats say BROKER_ID_NOT_REGISTERED, AlterPartition
/// STALE_BROKER_EPOCH, as in Kafka).
pub(crate) fn check_broker_epoch(
    image: &MetadataImage,
    broker_id: i32,
    broker_epoch: i64,
    unregistered: ErrorCode,
) -> Result<&BrokerRegistration, ApiError> {
    let broker = image.broker(broker_id).ok_or_else(|| {
        ApiError::new(
            unregistered,
            format!("Broker {broker_id} is not registered."),
        )
    })?;
    if broker.broker_epoch != broker_epoch {
        return Err(ApiError::new(
            ErrorCode::StaleBrokerEpoch,
            format!(
                "Broker {broker_id} has epoch {}, not {broker_epoch}.",
                broker.broker_epoch
            ),
        ));
    }
    Ok(broker)
}

/// Checks `change` against `image`: the record that makes it, and the
/// partition's state after it; or the error Kafka gives.
pub fn check_isr_change(
    image: &MetadataImage,
    change: &IsrChange,
) -> Result<(Option<MetadataRecord>, IsrChanged), ApiError> {
    check_broker_epoch(
        image,
        change.broker_id,
        change.broker_epoch,
        ErrorCode::StaleBrokerEpoch,
    )?;
    let topic = image
        .topic(&change.topic)
        .ok_or_else(|| ApiError::new(ErrorCode::UnknownTopicOrPartition, "No such topic."))?;
    let p = topic
        .partitions
        .get(&change.partition)
        .ok_or_else(|| ApiError::new(ErrorCode::UnknownTopicOrPartition, "No such partition."))?;
    if p.leader != change.broker_id {
        return Err(ApiError::new(
            ErrorCode::NotLeaderOrFollower,
            format!("Broker {} does not lead this partition.", change.broker_id),
        ));
    }
    if p.leader_epoch != change.leader_epoch {
        return Err(ApiError::new(
            ErrorCode::FencedLeaderEpoch,
            format!(
                "The leader epoch is {}, not {}.",
                p.leader_epoch, change.leader_epoch
            ),
        ));
    }
    if p.partition_epoch != change.partition_epoch {
        return Err(ApiError::new(
            ErrorCode::InvalidUpdateVersion,
            format!(
                "The partition epoch is {}, not {}.",
                p.partition_epoch, change.partition_epoch
            ),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    if change.isr.is_empty()
        || !change.isr.contains(&change.broker_id)
        || change
            .isr
            .iter()
            .any(|r| !p.replicas.contains(r) || !seen.insert(*r))
    {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "The ISR must be distinct replicas including the leader.",
        ));
    }
    if let Some(bad) = change
        .isr
        .iter()
        .find(|r| !p.isr.contains(r) && image.broker(**r).is_none_or(|b| b.fenced))
    {
        return Err(ApiError::new(
            ErrorCode::IneligibleReplica,
            format!("Replica {bad} is fenced and cannot join the ISR."),
        ));
    }
    if change.isr == p.isr {
        let same = IsrChanged {
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            isr: p.isr.clone(),
        };
        return Ok((None, same));
    }
    let record = MetadataRecord::PartitionChange {
        topic_id: topic.id,
        partition_id: change.partition,
        leader: None,
        isr: Some(change.isr.clone()),
        replicas: None,
        adding_replicas: None,
        removing_replicas: None,
    };
    let Some(partition_epoch) = p.partition_epoch.checked_add(1) else {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "The partition epoch cannot grow further.",
        ));
    };
    let after = IsrChanged {
        leader_epoch: p.leader_epoch,
        partition_epoch,
        isr: change.isr.clone(),
    };
    Ok((Some(record), after))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_images;
    use strom_metadata::PartitionRegistration;

    /// Brokers 1 and 2 (epochs 0 and 1) and fenced 3; `t-0` led by 1 in
    /// leader epoch 4, partition epoch 7, with ISR [1, 2].
    fn image() -> MetadataImage {
        let p = PartitionRegistration {
            leader_epoch: 4,
            partition_epoch: 7,
            ..test_images::partition(&[1, 2, 3], &[1, 2], 1)
        };
        test_images::image(&[(1, false), (2, false), (3, true)], &[p])
    }

    fn change(isr: Vec<i32>) -> IsrChange {
        IsrChange {
            broker_id: 1,
            broker_epoch: 0,
            topic: "t".into(),
            partition: 0,
            leader_epoch: 4,
            partition_epoch: 7,
            isr,
        }
    }

    fn code(r: Result<(Option<MetadataRecord>, IsrChanged), ApiError>) -> ErrorCode {
        r.map(|_| ErrorCode::UnknownServerError)
            .unwrap_or_else(|e| e.code)
    }

    #[test]
    fn a_leader_shrinks_its_isr_and_the_partition_epoch_moves() {
        let img = image();
        let (record, after) = check_isr_change(&img, &change(vec![1])).unwrap();
        assert_eq!(after.isr, vec![1]);
        assert_eq!(after.partition_epoch, 8);
        let (next, _) = img.apply([(1, &record.unwrap())]).unwrap();
        let p = &next.topic("t").unwrap().partitions[&0];
        assert_eq!(
            (p.isr.clone(), p.partition_epoch, p.leader_epoch),
            (vec![1], 8, 4)
        );
        // No change: nothing to commit.
        assert!(check_isr_change(&img, &change(vec![1, 2]))
            .unwrap()
            .0
            .is_none());
    }

    #[test]
    fn requests_that_do_not_match_the_image_get_kafkas_errors() {
        let img = image();
        let mut c = change(vec![1]);
        c.broker_epoch = 99;
        assert_eq!(
            code(check_isr_change(&img, &c)),
            ErrorCode::StaleBrokerEpoch
        );
        let mut c = change(vec![2]);
        c.broker_id = 2;
        c.broker_epoch = 1;
        assert_eq!(
            code(check_isr_change(&img, &c)),
            ErrorCode::NotLeaderOrFollower
        );
        let mut c = change(vec![1]);
        c.leader_epoch = 3;
        assert_eq!(
            code(check_isr_change(&img, &c)),
            ErrorCode::FencedLeaderEpoch
        );
        let mut c = change(vec![1]);
        c.partition_epoch = 6;
        assert_eq!(
            code(check_isr_change(&img, &c)),
            ErrorCode::InvalidUpdateVersion
        );
        for bad in [vec![], vec![2], vec![1, 1], vec![1, 9]] {
            assert_eq!(
                code(check_isr_change(&img, &change(bad.clone()))),
                ErrorCode::InvalidRequest,
                "{bad:?}"
            );
        }
        // 3 is fenced: it cannot join.
        assert_eq!(
            code(check_isr_change(&img, &change(vec![1, 2, 3]))),
            ErrorCode::IneligibleReplica
        );
        let mut c = change(vec![1]);
        c.topic = "nope".into();
        assert_eq!(
            code(check_isr_change(&img, &c)),
            ErrorCode::UnknownTopicOrPartition
        );
    }
}
