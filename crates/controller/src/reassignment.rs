//! Partition reassignment (AlterPartitionReassignments and
//! ListPartitionReassignments), as pure functions of the image, by Kafka's
//! KRaft rules:
//!
//! - Starting one moves a partition from its replicas R to a target T:
//!   the replicas become T followed by R − T, with `adding_replicas` T − R
//!   and `removing_replicas` R − T (one record, a new partition epoch).
//!   The new replicas create their logs and fetch from the leader like any
//!   follower; its leader takes each into the ISR once caught up.
//! - It completes when every target replica is in the ISR, in the same
//!   commit as the ISR change that made it so (or at once when it only
//!   drops or reorders replicas): replicas become T, the ISR drops the
//!   removed ones, and a leader being removed hands over to the first
//!   in-sync target replica (a new leader epoch).
//! - A new target for a partition already moving starts from its original
//!   replicas. Cancelling (no target) goes back to the original replicas,
//!   dropping the added ones from the ISR; NO_REASSIGNMENT_IN_PROGRESS
//!   when nothing moves.
//! - Targets must be distinct registered brokers
//!   (INVALID_REPLICA_ASSIGNMENT); from v1, changing the replication
//!   factor needs `allow_replication_factor_change`
//!   (INVALID_REPLICATION_FACTOR).

use strom_metadata::{MetadataImage, MetadataRecord, PartitionRegistration};
use strom_protocol::ErrorCode;
use uuid::Uuid;

use crate::error::ApiError;

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidReplicaAssignment, message)
}

/// A change of one partition's replicas, leader or ISR, as one record.
fn change(
    topic_id: Uuid,
    partition_id: i32,
    replicas: Vec<i32>,
    isr: Option<Vec<i32>>,
    leader: Option<i32>,
    adding: Vec<i32>,
    removing: Vec<i32>,
) -> MetadataRecord {
    MetadataRecord::PartitionChange {
        topic_id,
        partition_id,
        leader,
        isr,
        replicas: Some(replicas),
        adding_replicas: Some(adding),
        removing_replicas: Some(removing),
    }
}

/// The leader after the replicas shrink to `replicas` with ISR `isr`: the
/// current one if it stays, else the first in-sync unfenced replica, else
/// none (−1). `None` when the leader does not change.
fn leader_among(
    image: &MetadataImage,
    p: &PartitionRegistration,
    replicas: &[i32],
    isr: &[i32],
) -> Option<i32> {
    if replicas.contains(&p.leader) {
        return None;
    }
    let next = replicas
        .iter()
        .copied()
        .find(|r| isr.contains(r) && image.is_broker_online(*r))
        .unwrap_or(-1);
    Some(next)
}

/// The records that start moving `p` (partition `partition_id` of topic
/// `topic_id`) to `target`: the reassignment, and its completion when
/// nothing needs to catch up.
pub fn start_reassignment(
    image: &MetadataImage,
    topic_id: Uuid,
    partition_id: i32,
    p: &PartitionRegistration,
    target: &[i32],
    allow_replication_factor_change: bool,
) -> Result<Vec<MetadataRecord>, ApiError> {
    if target.is_empty() {
        return Err(invalid("The replica assignment is empty."));
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = target.iter().find(|r| !seen.insert(**r)) {
        return Err(invalid(format!(
            "The replica assignment names broker {dup} twice."
        )));
    }
    if let Some(unknown) = target.iter().find(|r| image.broker(**r).is_none()) {
        return Err(invalid(format!(
            "The replica assignment includes broker {unknown}, but no such broker is registered."
        )));
    }
    let original = p.original_replicas();
    if !allow_replication_factor_change && target.len() != original.len() {
        return Err(ApiError::new(
            ErrorCode::InvalidReplicationFactor,
            format!(
                "The replication factor would change from {} to {}.",
                original.len(),
                target.len()
            ),
        ));
    }
    let adding: Vec<i32> = target
        .iter()
        .copied()
        .filter(|r| !original.contains(r))
        .collect();
    let removing: Vec<i32> = original
        .iter()
        .copied()
        .filter(|r| !target.contains(r))
        .collect();
    let replicas: Vec<i32> = target.iter().chain(&removing).copied().collect();
    // A previous reassignment's added replicas may be dropped now.
    let isr: Vec<i32> = p
        .isr
        .iter()
        .copied()
        .filter(|r| replicas.contains(r))
        .collect();
    if isr.is_empty() {
        return Err(invalid("The reassignment would leave no in-sync replica."));
    }
    let leader = leader_among(image, p, &replicas, &isr);
    let isr_changed = isr != p.isr;
    let started = PartitionRegistration {
        replicas: replicas.clone(),
        isr: isr.clone(),
        leader: leader.unwrap_or(p.leader),
        adding_replicas: adding.clone(),
        removing_replicas: removing.clone(),
        ..p.clone()
    };
    let mut records = vec![change(
        topic_id,
        partition_id,
        replicas,
        isr_changed.then_some(isr),
        leader,
        adding,
        removing,
    )];
    records.extend(complete_reassignment(
        image,
        topic_id,
        partition_id,
        &started,
    ));
    Ok(records)
}

/// The record that completes `p`'s reassignment if every target replica is
/// in its ISR.
pub fn complete_reassignment(
    image: &MetadataImage,
    topic_id: Uuid,
    partition_id: i32,
    p: &PartitionRegistration,
) -> Option<MetadataRecord> {
    if !p.is_reassigning() {
        return None;
    }
    let target = p.target_replicas();
    if !target.iter().all(|r| p.isr.contains(r)) {
        return None;
    }
    let isr: Vec<i32> = p
        .isr
        .iter()
        .copied()
        .filter(|r| target.contains(r))
        .collect();
    let leader = leader_among(image, p, &target, &isr);
    Some(change(
        topic_id,
        partition_id,
        target,
        (isr != p.isr).then_some(isr),
        leader,
        Vec::new(),
        Vec::new(),
    ))
}

/// The record that cancels `p`'s reassignment: back to the original
/// replicas.
pub fn cancel_reassignment(
    image: &MetadataImage,
    topic_id: Uuid,
    partition_id: i32,
    p: &PartitionRegistration,
) -> Result<MetadataRecord, ApiError> {
    if !p.is_reassigning() {
        return Err(ApiError::new(
            ErrorCode::NoReassignmentInProgress,
            "No reassignment is in progress for this partition.",
        ));
    }
    let original = p.original_replicas();
    let isr: Vec<i32> = p
        .isr
        .iter()
        .copied()
        .filter(|r| original.contains(r))
        .collect();
    if isr.is_empty() {
        return Err(invalid(
            "Cancelling would leave no in-sync replica: only added replicas are in sync.",
        ));
    }
    let leader = leader_among(image, p, &original, &isr);
    Ok(change(
        topic_id,
        partition_id,
        original,
        (isr != p.isr).then_some(isr),
        leader,
        Vec::new(),
        Vec::new(),
    ))
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::test_images;

    const TOPIC: Uuid = test_images::TOPIC_ID;

    /// Brokers 1 to 5 and topic `t` with partition `p`.
    fn image_with(p: &PartitionRegistration) -> MetadataImage {
        let brokers: Vec<(i32, bool)> = (1..=5).map(|b| (b, false)).collect();
        test_images::image(&brokers, std::slice::from_ref(p))
    }

    /// Applies `records` to `image`; returns partition 0 after them.
    fn after(
        image: &MetadataImage,
        records: &[MetadataRecord],
    ) -> (MetadataImage, PartitionRegistration) {
        let from = image.offset + 1;
        let (next, _) = image
            .apply(
                records
                    .iter()
                    .enumerate()
                    .map(|(i, r)| (from + i as i64, r)),
            )
            .unwrap();
        let p = next.topic("t").unwrap().partitions[&0].clone();
        (next, p)
    }

    #[test]
    fn a_move_adds_first_and_removes_once_the_new_replicas_are_in_sync() {
        let p = test_images::partition(&[1, 2, 3], &[1, 2, 3], 1);
        let image = image_with(&p);
        let records = start_reassignment(&image, TOPIC, 0, &p, &[4, 2, 3], false).unwrap();
        assert_eq!(records.len(), 1, "4 must catch up first");
        let (image, moving) = after(&image, &records);
        assert_eq!(moving.replicas, vec![4, 2, 3, 1]);
        assert_eq!(
            (
                moving.adding_replicas.clone(),
                moving.removing_replicas.clone()
            ),
            (vec![4], vec![1])
        );
        assert_eq!((moving.leader, moving.isr.clone()), (1, vec![1, 2, 3]));
        assert!(complete_reassignment(&image, TOPIC, 0, &moving).is_none());
        // 4 joins the ISR: done, and the leader (1) hands over to 4.
        let joined = PartitionRegistration {
            isr: vec![1, 2, 3, 4],
            ..moving
        };
        let done = complete_reassignment(&image, TOPIC, 0, &joined).unwrap();
        let (_, done) = after(&image, &[done]);
        assert_eq!(done.replicas, vec![4, 2, 3]);
        assert_eq!(done.isr, vec![2, 3, 4]);
        assert_eq!((done.leader, done.leader_epoch), (4, 1));
        assert!(!done.is_reassigning());
    }

    #[test]
    fn reorders_and_shrinks_complete_at_once_and_targets_are_checked() {
        let p = test_images::partition(&[1, 2, 3], &[1, 2, 3], 1);
        let image = image_with(&p);
        let records = start_reassignment(&image, TOPIC, 0, &p, &[3, 2, 1], false).unwrap();
        let (_, done) = after(&image, &records);
        assert!(!done.is_reassigning());
        assert_eq!((done.replicas, done.leader), (vec![3, 2, 1], 1));
        let records = start_reassignment(&image, TOPIC, 0, &p, &[2, 3], true).unwrap();
        let (_, done) = after(&image, &records);
        assert_eq!(
            (done.replicas, done.isr, done.leader),
            (vec![2, 3], vec![2, 3], 2)
        );

        let code = |target: &[i32], allow: bool| {
            start_reassignment(&image, TOPIC, 0, &p, target, allow)
                .unwrap_err()
                .code
        };
        assert_eq!(code(&[], true), ErrorCode::InvalidReplicaAssignment);
        assert_eq!(code(&[1, 1, 2], true), ErrorCode::InvalidReplicaAssignment);
        assert_eq!(code(&[1, 2, 9], true), ErrorCode::InvalidReplicaAssignment);
        assert_eq!(code(&[1, 2], false), ErrorCode::InvalidReplicationFactor);
    }

    #[test]
    fn cancelling_goes_back_to_the_original_replicas() {
        let p = test_images::partition(&[1, 2, 3], &[1, 2, 3], 1);
        let image = image_with(&p);
        assert_eq!(
            cancel_reassignment(&image, TOPIC, 0, &p).unwrap_err().code,
            ErrorCode::NoReassignmentInProgress
        );
        let records = start_reassignment(&image, TOPIC, 0, &p, &[4, 5, 3], false).unwrap();
        let (image, moving) = after(&image, &records);
        // 4 caught up already; 5 has not.
        let moving = PartitionRegistration {
            isr: vec![1, 2, 3, 4],
            ..moving
        };
        let (_, back) = after(
            &image,
            &[cancel_reassignment(&image, TOPIC, 0, &moving).unwrap()],
        );
        // Kafka's order: the original replicas as they stand in the list.
        assert!(!back.is_reassigning());
        assert_eq!(
            (back.replicas, back.isr, back.leader),
            (vec![3, 1, 2], vec![1, 2, 3], 1)
        );
        // A new target while moving starts from the original replicas.
        let records = start_reassignment(&image, TOPIC, 0, &moving, &[1, 2, 5], false).unwrap();
        let (_, again) = after(&image, &records);
        assert_eq!(again.replicas, vec![1, 2, 5, 3]);
        assert_eq!(
            (again.adding_replicas, again.removing_replicas),
            (vec![5], vec![3])
        );
        assert_eq!(again.isr, vec![1, 2, 3], "4 is no longer a replica");
    }
}
