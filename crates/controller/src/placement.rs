//! Replica placement for new partitions: round-robin over the unfenced
//! brokers, each partition's replicas on distinct brokers, the leader
//! (first replica) rotating so leadership spreads evenly.

use strom_protocol::ErrorCode;

use crate::error::ApiError;

/// Chooses replicas for partitions `first_partition..first_partition+count`
/// among `brokers` (unfenced broker ids, any order).
pub fn place_replicas(
    brokers: &[i32],
    first_partition: i32,
    count: i32,
    replication_factor: i16,
) -> Result<Vec<Vec<i32>>, ApiError> {
    let mut brokers = brokers.to_vec();
    brokers.sort_unstable();
    let rf = usize::try_from(replication_factor).unwrap_or(0);
    if rf == 0 || rf > brokers.len() {
        return Err(ApiError::new(
            ErrorCode::InvalidReplicationFactor,
            format!(
                "Unable to replicate the partition {replication_factor} time(s): The target replication factor of {replication_factor} cannot be reached because only {} broker(s) are registered.",
                brokers.len()
            ),
        ));
    }
    let n = brokers.len();
    Ok((first_partition..first_partition.saturating_add(count))
        .map(|p| {
            (0..rf)
                .filter_map(|i| brokers.get((p as usize + i) % n).copied())
                .collect()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_leaders_and_keeps_replicas_distinct() {
        let placed = place_replicas(&[3, 1, 2], 0, 6, 2).unwrap();
        let leaders: Vec<i32> = placed.iter().map(|r| r[0]).collect();
        assert_eq!(leaders, vec![1, 2, 3, 1, 2, 3]);
        for r in &placed {
            assert_ne!(r[0], r[1]);
        }
        assert_eq!(
            place_replicas(&[1], 0, 1, 2).unwrap_err().code,
            ErrorCode::InvalidReplicationFactor
        );
    }
}
