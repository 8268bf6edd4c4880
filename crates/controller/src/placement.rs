//! Replica placement for new partitions: round-robin over the unfenced
//! brokers, each partition's replicas on distinct brokers, the leader
//! (first replica) rotating so leadership spreads evenly, and rack-aware
//! when brokers set `broker.rack`.
//!
//! The brokers are first put in rack-alternated order: racks sorted by
//! name (brokers without a rack count as one more rack), brokers sorted by
//! id within each, then the first broker of every rack, the second of
//! every rack, and so on. Partition `p` is led by the broker at position
//! `p mod n` of that order; its followers are taken walking on from there
//! (skipping `p div n` extra positions for the first follower so that
//! follower sets vary too), preferring brokers on racks the partition does
//! not use yet until every rack holds one of its replicas. With a single
//! rack this is plain round-robin.

use std::collections::{BTreeMap, HashSet};

use strom_protocol::ErrorCode;

use crate::error::ApiError;

/// A broker that may receive replicas: its id and `broker.rack`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementBroker {
    /// Broker id.
    pub id: i32,
    /// Its rack, if it set one.
    pub rack: Option<String>,
}

/// Orders brokers so that consecutive ones are on different racks when
/// there are several.
fn rack_alternated(brokers: &[PlacementBroker]) -> Vec<&PlacementBroker> {
    let mut by_rack: BTreeMap<Option<&str>, Vec<&PlacementBroker>> = BTreeMap::new();
    for b in brokers {
        by_rack.entry(b.rack.as_deref()).or_default().push(b);
    }
    for members in by_rack.values_mut() {
        members.sort_by_key(|b| b.id);
    }
    let deepest = by_rack.values().map(Vec::len).max().unwrap_or(0);
    (0..deepest)
        .flat_map(|i| by_rack.values().filter_map(move |m| m.get(i).copied()))
        .collect()
}

/// Chooses replicas for partitions `first_partition..first_partition+count`
/// among `brokers` (the unfenced brokers, any order).
pub fn place_replicas(
    brokers: &[PlacementBroker],
    first_partition: i32,
    count: i32,
    replication_factor: i16,
) -> Result<Vec<Vec<i32>>, ApiError> {
    let order = rack_alternated(brokers);
    let n = order.len();
    let rf = usize::try_from(replication_factor).unwrap_or(0);
    if rf == 0 || rf > n {
        return Err(ApiError::new(
            ErrorCode::InvalidReplicationFactor,
            format!(
                "Unable to replicate the partition {replication_factor} time(s): The target replication factor of {replication_factor} cannot be reached because only {n} broker(s) are registered."
            ),
        ));
    }
    let racks = order
        .iter()
        .map(|b| b.rack.as_deref())
        .collect::<HashSet<_>>()
        .len();
    let first = usize::try_from(first_partition).unwrap_or(0);
    let count = usize::try_from(count).unwrap_or(0);
    Ok((first..first.saturating_add(count))
        .map(|p| {
            let start = p % n;
            let shift = p / n;
            let mut chosen: Vec<&PlacementBroker> = order.get(start).copied().into_iter().collect();
            // Followers, walking on from the leader: the first one `shift`
            // positions further so follower sets vary between rounds.
            let walk: Vec<&PlacementBroker> = (1..n)
                .filter_map(|i| {
                    order
                        .get((start + (i - 1 + shift) % (n - 1) + 1) % n)
                        .copied()
                })
                .collect();
            while chosen.len() < rf {
                let used: HashSet<Option<&str>> =
                    chosen.iter().map(|b| b.rack.as_deref()).collect();
                let fresh_rack = used.len() < racks;
                let next = walk
                    .iter()
                    .find(|b| {
                        !chosen.iter().any(|c| c.id == b.id)
                            && (!fresh_rack || !used.contains(&b.rack.as_deref()))
                    })
                    .copied();
                match next {
                    Some(b) => chosen.push(b),
                    None => break,
                }
            }
            chosen.iter().map(|b| b.id).collect()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brokers(spec: &[(i32, Option<&str>)]) -> Vec<PlacementBroker> {
        spec.iter()
            .map(|(id, rack)| PlacementBroker {
                id: *id,
                rack: rack.map(str::to_string),
            })
            .collect()
    }

    #[test]
    fn spreads_leaders_and_keeps_replicas_distinct() {
        let placed = place_replicas(&brokers(&[(3, None), (1, None), (2, None)]), 0, 6, 2).unwrap();
        let leaders: Vec<i32> = placed.iter().map(|r| r[0]).collect();
        assert_eq!(leaders, vec![1, 2, 3, 1, 2, 3]);
        for r in &placed {
            assert_eq!(r.len(), 2);
            assert_ne!(r[0], r[1]);
        }
        // Follower sets vary between rounds.
        assert_ne!(placed[0], placed[3]);
        assert_eq!(
            place_replicas(&brokers(&[(1, None)]), 0, 1, 2)
                .unwrap_err()
                .code,
            ErrorCode::InvalidReplicationFactor
        );
        assert!(place_replicas(&brokers(&[]), 0, 1, 1).is_err());
        assert!(place_replicas(&brokers(&[(1, None)]), 0, 1, 0).is_err());
    }

    #[test]
    fn continues_the_rotation_for_added_partitions() {
        let all = brokers(&[(1, None), (2, None), (3, None)]);
        let whole = place_replicas(&all, 0, 5, 1).unwrap();
        let added = place_replicas(&all, 3, 2, 1).unwrap();
        assert_eq!(whole[3..], added[..]);
    }

    #[test]
    fn every_rack_holds_a_replica_before_any_rack_holds_two() {
        let all = brokers(&[
            (1, Some("a")),
            (2, Some("a")),
            (3, Some("b")),
            (4, Some("b")),
            (5, Some("c")),
            (6, Some("c")),
        ]);
        let rack = |id: i32| all.iter().find(|b| b.id == id).unwrap().rack.clone();
        for rf in 1..=6 {
            let placed = place_replicas(&all, 0, 12, rf).unwrap();
            for replicas in &placed {
                assert_eq!(replicas.len(), rf as usize);
                let distinct: HashSet<i32> = replicas.iter().copied().collect();
                assert_eq!(distinct.len(), replicas.len(), "{replicas:?}");
                let racks: HashSet<_> = replicas.iter().map(|r| rack(*r)).collect();
                assert_eq!(racks.len(), replicas.len().min(3), "rf {rf}: {replicas:?}");
            }
            // Leadership is spread evenly over brokers and racks.
            let mut led: BTreeMap<i32, usize> = BTreeMap::new();
            for replicas in &placed {
                *led.entry(replicas[0]).or_default() += 1;
            }
            assert!(led.values().all(|n| *n == 2), "rf {rf}: {led:?}");
        }
        // Consecutive partitions' leaders alternate racks.
        let placed = place_replicas(&all, 0, 3, 1).unwrap();
        let racks: HashSet<_> = placed.iter().map(|r| rack(r[0])).collect();
        assert_eq!(racks.len(), 3);
    }

    #[test]
    fn uneven_racks_and_brokers_without_a_rack() {
        let all = brokers(&[
            (1, Some("a")),
            (2, Some("a")),
            (3, Some("a")),
            (4, Some("b")),
            (5, None),
        ]);
        let placed = place_replicas(&all, 0, 10, 3).unwrap();
        for replicas in &placed {
            let racks: HashSet<Option<String>> = replicas
                .iter()
                .map(|r| all.iter().find(|b| b.id == *r).unwrap().rack.clone())
                .collect();
            assert_eq!(racks.len(), 3, "{replicas:?}");
        }
    }
}
