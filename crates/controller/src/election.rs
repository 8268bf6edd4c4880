//! Partition leader election, as the controller decides it when brokers
//! come and go: pure functions from an image to the records that change
//! it, so every rule is testable without a quorum.
//!
//! Rules (Kafka's, for KRaft):
//! - A fenced or shutting-down broker leads nothing. Each partition it
//!   leads gets the first other in-sync replica (in replica order) that is
//!   not fenced; if there is none, the partition has no leader (−1) until
//!   one comes back — never a replica outside the ISR, unless
//!   `unclean.leader.election.enable`.
//! - It also leaves every ISR, except where it is the last member: the ISR
//!   never becomes empty, so the last replica known to hold every
//!   acknowledged record is remembered.
//! - A broker whose log of a partition failed (it reports the replica
//!   offline in its heartbeats, as Kafka's brokers report a failed log
//!   directory) leaves that partition's leadership and ISR by the same
//!   two rules, and keeps the others.
//! - A broker that is unfenced again leads the leaderless partitions whose
//!   ISR it is in.
//! - Preferred leader election moves leadership back to the first replica
//!   when it is in the ISR and not fenced.
//! - During a reassignment the replicas list the target replicas first
//!   (see [`crate::reassignment`]), so every election here prefers an
//!   in-sync target replica over one being removed, as Kafka's does.
//!
//! Every leader change bumps the leader epoch (the image does it when it
//! applies a `PartitionChange` with a leader).

use std::collections::HashSet;

use strom_metadata::{MetadataImage, MetadataRecord, PartitionRegistration};
use strom_protocol::ErrorCode;
use uuid::Uuid;

use crate::error::ApiError;

/// No leader.
pub const NO_LEADER: i32 = -1;

fn eligible(image: &MetadataImage, broker: i32, excluded: i32) -> bool {
    broker != excluded && image.broker(broker).is_some_and(|b| !b.fenced)
}

fn change(
    topic_id: Uuid,
    partition_id: i32,
    p: &PartitionRegistration,
    leader: i32,
    isr: Vec<i32>,
) -> Option<MetadataRecord> {
    let leader_changed = leader != p.leader;
    let isr_changed = isr != p.isr;
    (leader_changed || isr_changed).then(|| MetadataRecord::PartitionChange {
        topic_id,
        partition_id,
        leader: leader_changed.then_some(leader),
        isr: isr_changed.then_some(isr),
        replicas: None,
        adding_replicas: None,
        removing_replicas: None,
    })
}

/// The changes when `broker` is fenced or shuts down.
pub fn on_broker_leaving(
    image: &MetadataImage,
    broker: i32,
    unclean_leader_election: bool,
) -> Vec<MetadataRecord> {
    leave_replicas(image, broker, unclean_leader_election, |_, _| true)
}

/// The changes when `broker` reports the logs of `offline` replicas
/// failed (an I/O error, a log that did not load): it leaves those
/// partitions as it would leave all of them when fenced, while it goes on
/// serving the others.
pub fn on_replicas_offline(
    image: &MetadataImage,
    broker: i32,
    offline: &HashSet<(Uuid, i32)>,
    unclean_leader_election: bool,
) -> Vec<MetadataRecord> {
    leave_replicas(
        image,
        broker,
        unclean_leader_election,
        |topic_id, partition| offline.contains(&(topic_id, partition)),
    )
}

/// `broker` leaves the leadership and ISR of its replicas that `which`
/// picks, by the rules above.
fn leave_replicas(
    image: &MetadataImage,
    broker: i32,
    unclean_leader_election: bool,
    which: impl Fn(Uuid, i32) -> bool,
) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for topic in image.topics() {
        for (index, p) in &topic.partitions {
            if !p.replicas.contains(&broker) || !which(topic.id, *index) {
                continue;
            }
            let isr: Vec<i32> = if p.isr.len() > 1 || !p.isr.contains(&broker) {
                p.isr.iter().copied().filter(|b| *b != broker).collect()
            } else {
                p.isr.clone()
            };
            let leader = if p.leader == broker || p.leader == NO_LEADER {
                let from_isr = p
                    .replicas
                    .iter()
                    .copied()
                    .find(|r| isr.contains(r) && eligible(image, *r, broker));
                let unclean = unclean_leader_election
                    .then(|| {
                        p.replicas
                            .iter()
                            .copied()
                            .find(|r| eligible(image, *r, broker))
                    })
                    .flatten();
                from_isr.or(unclean).unwrap_or(NO_LEADER)
            } else {
                p.leader
            };
            // An unclean leader is the whole ISR: nothing else is known to
            // match it.
            let isr = if leader != NO_LEADER && !isr.contains(&leader) {
                vec![leader]
            } else {
                isr
            };
            records.extend(change(topic.id, *index, p, leader, isr));
        }
    }
    records
}

/// The changes when `broker` is unfenced: it leads the leaderless
/// partitions whose ISR it is in.
pub fn on_broker_joining(image: &MetadataImage, broker: i32) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for topic in image.topics() {
        for (index, p) in &topic.partitions {
            if p.leader == NO_LEADER && p.isr.contains(&broker) {
                records.extend(change(topic.id, *index, p, broker, p.isr.clone()));
            }
        }
    }
    records
}

/// Preferred leader election for the given partitions (all when `None`).
pub fn preferred_leaders(
    image: &MetadataImage,
    only: Option<&HashSet<(String, i32)>>,
) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for topic in image.topics() {
        for (index, p) in &topic.partitions {
            if only.is_some_and(|o| !o.contains(&(topic.name.clone(), *index))) {
                continue;
            }
            let Some(preferred) = p.replicas.first().copied() else {
                continue;
            };
            if p.leader != preferred
                && p.isr.contains(&preferred)
                && image.broker(preferred).is_some_and(|b| !b.fenced)
            {
                records.extend(change(topic.id, *index, p, preferred, p.isr.clone()));
            }
        }
    }
    records
}

/// The kind of election ElectLeaders asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ElectionType {
    /// Move leadership to the first replica when it is in the ISR.
    Preferred,
    /// Give a leaderless partition a leader, outside the ISR if need be.
    Unclean,
}

/// One partition's answer to ElectLeaders.
pub type ElectionResult = ((String, i32), Result<(), ApiError>);

/// ElectLeaders: for each requested partition (every partition when
/// `partitions` is `None`, leaving out those that need no election, as
/// Kafka does), its result and the records that carry out the elections.
pub fn elect_leaders(
    image: &MetadataImage,
    election: ElectionType,
    partitions: Option<&[(String, i32)]>,
) -> (Vec<ElectionResult>, Vec<MetadataRecord>) {
    let mut results = Vec::new();
    let mut records = Vec::new();
    match partitions {
        Some(requested) => {
            for (topic, partition) in requested {
                let r = elect_one(image, election, topic, *partition, &mut records);
                results.push(((topic.clone(), *partition), r));
            }
        }
        None => {
            for topic in image.topics() {
                for index in topic.partitions.keys() {
                    let r = elect_one(image, election, &topic.name, *index, &mut records);
                    if !r
                        .as_ref()
                        .is_err_and(|e| e.code == ErrorCode::ElectionNotNeeded)
                    {
                        results.push(((topic.name.clone(), *index), r));
                    }
                }
            }
        }
    }
    (results, records)
}

fn elect_one(
    image: &MetadataImage,
    election: ElectionType,
    topic_name: &str,
    partition: i32,
    records: &mut Vec<MetadataRecord>,
) -> Result<(), ApiError> {
    let topic = image.topic(topic_name).ok_or_else(|| {
        ApiError::new(
            ErrorCode::UnknownTopicOrPartition,
            format!("No such topic as {topic_name}"),
        )
    })?;
    let p = topic.partitions.get(&partition).ok_or_else(|| {
        ApiError::new(
            ErrorCode::UnknownTopicOrPartition,
            format!("No such partition as {topic_name}-{partition}"),
        )
    })?;
    let live = |b: &i32| image.broker(*b).is_some_and(|r| !r.fenced);
    let not_needed = || {
        Err(ApiError::new(
            ErrorCode::ElectionNotNeeded,
            "Leader election not needed for topic partition.",
        ))
    };
    match election {
        ElectionType::Preferred => {
            let preferred = p.replicas.first().copied().unwrap_or(NO_LEADER);
            if p.leader == preferred && preferred != NO_LEADER {
                return not_needed();
            }
            if p.isr.contains(&preferred) && live(&preferred) {
                records.extend(change(topic.id, partition, p, preferred, p.isr.clone()));
                Ok(())
            } else {
                Err(ApiError::new(
                    ErrorCode::PreferredLeaderNotAvailable,
                    format!("Failed to elect leader for partition {topic_name}-{partition} under strategy PreferredLeaderElection"),
                ))
            }
        }
        ElectionType::Unclean => {
            if p.leader != NO_LEADER {
                return not_needed();
            }
            let from_isr = p.replicas.iter().find(|r| p.isr.contains(r) && live(r));
            let leader = from_isr.or_else(|| p.replicas.iter().find(|r| live(r)));
            match leader {
                Some(leader) => {
                    let isr = if p.isr.contains(leader) {
                        p.isr.clone()
                    } else {
                        vec![*leader]
                    };
                    records.extend(change(topic.id, partition, p, *leader, isr));
                    Ok(())
                }
                None => Err(ApiError::new(
                    ErrorCode::EligibleLeadersNotAvailable,
                    format!("Failed to elect leader for partition {topic_name}-{partition} under strategy UncleanLeaderElection"),
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_images;

    fn image(brokers: &[(i32, bool)], partitions: &[(Vec<i32>, Vec<i32>, i32)]) -> MetadataImage {
        let partitions: Vec<_> = partitions
            .iter()
            .map(|(replicas, isr, leader)| test_images::partition(replicas, isr, *leader))
            .collect();
        test_images::image(brokers, &partitions)
    }

    fn state(image: &MetadataImage, records: &[MetadataRecord]) -> Vec<(i32, Vec<i32>, i32)> {
        let next = image.apply(records.iter().map(|r| (1, r))).unwrap().0;
        next.topic("t")
            .unwrap()
            .partitions
            .values()
            .map(|p| (p.leader, p.isr.clone(), p.leader_epoch))
            .collect()
    }

    #[test]
    fn a_leaving_leader_hands_over_to_the_next_live_isr_member() {
        let img = image(
            &[(1, false), (2, false), (3, true)],
            &[
                (vec![1, 2, 3], vec![1, 2, 3], 1),
                (vec![2, 1, 3], vec![2, 1], 2),
                (vec![1, 3], vec![1, 3], 1),
                (vec![1], vec![1], 1),
            ],
        );
        let records = on_broker_leaving(&img, 1, false);
        assert_eq!(
            state(&img, &records),
            vec![
                // 3 is fenced, so 2 leads; 1 leaves the ISR.
                (2, vec![2, 3], 1),
                // Not its leader: only the ISR shrinks (no epoch bump).
                (2, vec![2], 0),
                // The only other replica is fenced: no leader, ISR keeps 3.
                (NO_LEADER, vec![3], 1),
                // The last ISR member stays in the ISR; no leader.
                (NO_LEADER, vec![1], 1),
            ]
        );
    }

    #[test]
    fn a_broker_leaves_only_the_partitions_whose_logs_failed() {
        let img = image(
            &[(1, false), (2, false), (3, false)],
            &[
                (vec![1, 2, 3], vec![1, 2, 3], 1),
                (vec![1, 2, 3], vec![1, 2, 3], 1),
                (vec![2, 1, 3], vec![2, 1, 3], 2),
                (vec![1], vec![1], 1),
            ],
        );
        let id = img.topic("t").unwrap().id;
        let offline = [(id, 0), (id, 2), (id, 3)].into_iter().collect();
        assert_eq!(
            state(&img, &on_replicas_offline(&img, 1, &offline, false)),
            vec![
                // Its log failed: 2 leads, 1 leaves the ISR.
                (2, vec![2, 3], 1),
                // Its log is fine: nothing changes.
                (1, vec![1, 2, 3], 0),
                // Not its leader: only the ISR shrinks.
                (2, vec![2, 3], 0),
                // The only replica: no leader, the ISR remembers it.
                (NO_LEADER, vec![1], 1),
            ]
        );
        // Reported again, nothing more to change.
        let moved = img
            .apply(
                on_replicas_offline(&img, 1, &offline, false)
                    .iter()
                    .map(|r| (1, r)),
            )
            .unwrap()
            .0;
        assert!(on_replicas_offline(&moved, 1, &offline, false).is_empty());
    }

    #[test]
    fn elections_during_a_reassignment_prefer_target_replicas() {
        // Moving from [1, 2, 3] to [4, 3, 5]: the replicas list the target
        // first, then the replicas being removed (1 and 2).
        let mut moving = test_images::partition(&[4, 3, 5, 1, 2], &[1, 2, 3, 4], 1);
        moving.adding_replicas = vec![4, 5];
        moving.removing_replicas = vec![1, 2];
        let img = test_images::image(
            &[(1, false), (2, false), (3, false), (4, false), (5, false)],
            &[moving],
        );
        // 2 is in sync and ahead of 3 and 4 in the original order, but a
        // target replica takes over.
        assert_eq!(
            state(&img, &on_broker_leaving(&img, 1, false)),
            vec![(4, vec![2, 3, 4], 1)]
        );
        // The preferred leader is the target's first replica.
        assert_eq!(
            state(&img, &preferred_leaders(&img, None)),
            vec![(4, vec![1, 2, 3, 4], 1)]
        );
    }

    #[test]
    fn unclean_election_only_when_enabled() {
        let img = image(&[(1, false), (2, false)], &[(vec![1, 2], vec![1], 1)]);
        assert_eq!(
            state(&img, &on_broker_leaving(&img, 1, false)),
            vec![(NO_LEADER, vec![1], 1)]
        );
        assert_eq!(
            state(&img, &on_broker_leaving(&img, 1, true)),
            vec![(2, vec![2], 1)]
        );
    }

    #[test]
    fn a_returning_broker_leads_leaderless_partitions_it_is_in_sync_for() {
        let img = image(
            &[(1, false), (2, false)],
            &[
                (vec![1], vec![1], NO_LEADER),
                (vec![2, 1], vec![2], NO_LEADER),
            ],
        );
        assert_eq!(
            state(&img, &on_broker_joining(&img, 1)),
            vec![(1, vec![1], 1), (NO_LEADER, vec![2], 0)]
        );
    }

    #[test]
    fn preferred_leaders_come_back_when_in_sync() {
        let img = image(
            &[(1, false), (2, false), (3, true)],
            &[
                (vec![1, 2], vec![1, 2], 2),
                (vec![3, 2], vec![3, 2], 2),
                (vec![1, 2], vec![2], 2),
            ],
        );
        assert_eq!(
            state(&img, &preferred_leaders(&img, None)),
            vec![(1, vec![1, 2], 1), (2, vec![3, 2], 0), (2, vec![2], 0)]
        );
    }

    /// Each partition with its error code (0: elected).
    fn codes(results: &[ElectionResult]) -> Vec<(i32, i16)> {
        results
            .iter()
            .map(|((_, p), r)| (*p, r.as_ref().map_or_else(|e| e.code.code(), |()| 0)))
            .collect()
    }

    #[test]
    fn elect_leaders_preferred_answers_each_partition() {
        let img = image(
            &[(1, false), (2, false), (3, true)],
            &[
                (vec![1, 2], vec![1, 2], 2),
                (vec![1, 2], vec![1, 2], 1),
                (vec![3, 2], vec![3, 2], 2),
            ],
        );
        let asked: Vec<(String, i32)> = vec![
            ("t".into(), 0),
            ("t".into(), 1),
            ("t".into(), 2),
            ("t".into(), 9),
            ("nope".into(), 0),
        ];
        let (results, records) = elect_leaders(&img, ElectionType::Preferred, Some(&asked));
        assert_eq!(
            codes(&results),
            vec![
                (0, 0),
                (1, ErrorCode::ElectionNotNeeded.code()),
                (2, ErrorCode::PreferredLeaderNotAvailable.code()),
                (9, ErrorCode::UnknownTopicOrPartition.code()),
                (0, ErrorCode::UnknownTopicOrPartition.code()),
            ]
        );
        assert_eq!(
            state(&img, &records),
            vec![(1, vec![1, 2], 1), (1, vec![1, 2], 0), (2, vec![3, 2], 0)]
        );
        // All partitions: those that need no election are left out.
        let (all, _) = elect_leaders(&img, ElectionType::Preferred, None);
        assert_eq!(
            codes(&all),
            vec![(0, 0), (2, ErrorCode::PreferredLeaderNotAvailable.code())]
        );
    }

    #[test]
    fn elect_leaders_unclean_prefers_the_isr_then_any_live_replica() {
        let img = image(
            &[(1, true), (2, false), (3, false)],
            &[
                (vec![1, 2], vec![1], NO_LEADER),
                (vec![1, 3, 2], vec![1, 2], NO_LEADER),
                (vec![1], vec![1], NO_LEADER),
                (vec![2], vec![2], 2),
            ],
        );
        let (results, records) = elect_leaders(&img, ElectionType::Unclean, None);
        assert_eq!(
            codes(&results),
            vec![
                (0, 0),
                (1, 0),
                (2, ErrorCode::EligibleLeadersNotAvailable.code()),
            ]
        );
        assert_eq!(
            state(&img, &records),
            vec![
                // Outside the ISR: it becomes the whole ISR.
                (2, vec![2], 1),
                // In the ISR: the ISR stays.
                (2, vec![1, 2], 1),
                (NO_LEADER, vec![1], 0),
                (2, vec![2], 0),
            ]
        );
    }
}
