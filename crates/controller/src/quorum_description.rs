//! What DescribeQuorum reports: the leader, its epoch (the Raft term), the
//! high watermark and every voter's progress, as the active controller
//! sees them.
//!
//! Offsets are metadata log offsets: entry `i` of the Raft log is at offset
//! `i`, so a log whose last entry is `i` has log end offset `i + 1`, and the
//! high watermark is one past the last committed entry. A voter's
//! `last_fetch_timestamp` is when it last answered the leader's
//! AppendEntries (heartbeats included) successfully; its
//! `last_caught_up_timestamp` is the last such answer at which it held
//! the leader's whole log. Both are milliseconds since the Unix epoch, −1
//! when never seen.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::raft_types::ControllerNode;

/// Unknown timestamp or offset, as Kafka reports it.
pub const UNKNOWN: i64 = -1;

/// One replica of the metadata log, as the leader sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaProgress {
    /// Node id.
    pub replica_id: i32,
    /// Offset after its last entry.
    pub log_end_offset: i64,
    /// When it last answered the leader (ms since the epoch).
    pub last_fetch_timestamp_ms: i64,
    /// When it last held the leader's whole log (ms since the epoch).
    pub last_caught_up_timestamp_ms: i64,
}

/// The quorum as its leader describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumDescription {
    /// The leader (the active controller).
    pub leader_id: i32,
    /// Its epoch: the Raft term.
    pub leader_epoch: i32,
    /// One past the last committed entry.
    pub high_watermark: i64,
    /// Every voter, the leader first.
    pub voters: Vec<ReplicaProgress>,
    /// Replicas that follow without voting.
    pub observers: Vec<ReplicaProgress>,
    /// Each voter's controller endpoint, where it has one.
    pub voter_endpoints: Vec<(i32, ControllerNode)>,
}

pub use strom_runtime::clock::now_ms;

/// What the leader heard from one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PeerContact {
    last_ack_ms: i64,
    /// The last entry the peer acknowledged holding.
    acked_through: Option<u64>,
    last_caught_up_ms: i64,
}

/// Answers from peers, recorded by the Raft network clients and read when
/// describing the quorum. Shared by every client of one node.
#[derive(Debug, Clone, Default)]
pub struct PeerContacts {
    contacts: Arc<parking_lot::Mutex<HashMap<u64, PeerContact>>>,
}

impl PeerContacts {
    /// `peer` answered an AppendEntries successfully, holding every entry
    /// through `acked_through`.
    pub fn acknowledged(&self, peer: u64, acked_through: Option<u64>) {
        let now = now_ms();
        let mut contacts = self.contacts.lock();
        let contact = contacts.entry(peer).or_insert(PeerContact {
            last_ack_ms: UNKNOWN,
            acked_through: None,
            last_caught_up_ms: UNKNOWN,
        });
        contact.last_ack_ms = now;
        if acked_through.is_some() {
            contact.acked_through = contact.acked_through.max(acked_through);
        }
    }

    /// The leader's log ends at `last_index`: peers that acknowledged it
    /// all are caught up as of their last answer.
    pub fn leader_log_ends_at(&self, last_index: Option<u64>) {
        for contact in self.contacts.lock().values_mut() {
            if contact.acked_through >= last_index {
                contact.last_caught_up_ms = contact.last_ack_ms;
            }
        }
    }

    /// Forgets everything (a new term: acknowledgements were to another
    /// leader's log).
    pub fn clear(&self) {
        self.contacts.lock().clear();
    }

    fn get(&self, peer: u64) -> Option<PeerContact> {
        self.contacts.lock().get(&peer).copied()
    }
}

/// Offset after entry `index`.
fn end_offset(index: Option<u64>) -> i64 {
    index.map_or(0, |i| {
        i64::try_from(i).unwrap_or(i64::MAX).saturating_add(1)
    })
}

/// The leader's view of the quorum.
pub struct LeaderView<'a> {
    /// This node.
    pub leader_id: u64,
    /// The term.
    pub term: u64,
    /// The leader's last log index.
    pub last_log_index: Option<u64>,
    /// The last committed (applied) index.
    pub committed_index: Option<u64>,
    /// The voters with their endpoints.
    pub voters: &'a BTreeMap<u64, ControllerNode>,
    /// The observers (learners) with their endpoints.
    pub observers: &'a BTreeMap<u64, ControllerNode>,
    /// The last entry each follower is known to hold.
    pub matched: &'a BTreeMap<u64, Option<u64>>,
    /// What the followers answered.
    pub contacts: &'a PeerContacts,
    /// Now, ms since the epoch.
    pub now_ms: i64,
}

/// Builds the description.
pub fn describe(view: &LeaderView<'_>) -> QuorumDescription {
    let id = |n: u64| i32::try_from(n).unwrap_or(i32::MAX);
    let leader = ReplicaProgress {
        replica_id: id(view.leader_id),
        log_end_offset: end_offset(view.last_log_index),
        last_fetch_timestamp_ms: view.now_ms,
        last_caught_up_timestamp_ms: view.now_ms,
    };
    let progress = |v: &u64| {
        let contact = view.contacts.get(*v);
        let matched = view.matched.get(v).copied().flatten();
        let acked = contact.and_then(|c| c.acked_through);
        let log_end = matched.max(acked);
        ReplicaProgress {
            replica_id: id(*v),
            log_end_offset: if matched.is_none() && contact.is_none() {
                UNKNOWN
            } else {
                end_offset(log_end)
            },
            last_fetch_timestamp_ms: contact.map_or(UNKNOWN, |c| c.last_ack_ms),
            last_caught_up_timestamp_ms: contact.map_or(UNKNOWN, |c| {
                if c.acked_through >= view.last_log_index {
                    c.last_ack_ms
                } else {
                    c.last_caught_up_ms
                }
            }),
        }
    };
    let followers = view
        .voters
        .keys()
        .filter(|v| **v != view.leader_id)
        .map(progress);
    QuorumDescription {
        leader_id: id(view.leader_id),
        leader_epoch: i32::try_from(view.term).unwrap_or(i32::MAX),
        high_watermark: end_offset(view.committed_index),
        voters: std::iter::once(leader).chain(followers).collect(),
        observers: view.observers.keys().map(progress).collect(),
        voter_endpoints: view
            .voters
            .iter()
            .filter(|(_, node)| !node.host.is_empty())
            .map(|(v, node)| (id(*v), node.clone()))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn voters() -> BTreeMap<u64, ControllerNode> {
        (1..=3)
            .map(|i| {
                (
                    i,
                    ControllerNode {
                        host: format!("127.0.0.{}", i + 1),
                        port: 9093,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn reports_the_leader_first_and_each_followers_progress() {
        let voters = voters();
        let contacts = PeerContacts::default();
        contacts.acknowledged(1, Some(9));
        contacts.acknowledged(3, Some(4));
        contacts.acknowledged(4, Some(9));
        let matched: BTreeMap<u64, Option<u64>> = [(1, Some(9)), (3, Some(4)), (4, Some(9))].into();
        let observers: BTreeMap<u64, ControllerNode> = [(4, ControllerNode::default())].into();
        let d = describe(&LeaderView {
            leader_id: 2,
            term: 7,
            last_log_index: Some(9),
            committed_index: Some(9),
            voters: &voters,
            observers: &observers,
            matched: &matched,
            contacts: &contacts,
            now_ms: 1_000,
        });
        assert_eq!((d.leader_id, d.leader_epoch, d.high_watermark), (2, 7, 10));
        let ids: Vec<i32> = d.voters.iter().map(|v| v.replica_id).collect();
        assert_eq!(ids, vec![2, 1, 3]);
        assert_eq!(d.voters[0].log_end_offset, 10);
        assert_eq!(d.voters[0].last_fetch_timestamp_ms, 1_000);
        // Follower 1 holds everything: caught up at its last answer.
        assert_eq!(d.voters[1].log_end_offset, 10);
        assert!(d.voters[1].last_fetch_timestamp_ms > 0);
        assert_eq!(
            d.voters[1].last_caught_up_timestamp_ms,
            d.voters[1].last_fetch_timestamp_ms
        );
        // Follower 3 lags and was never caught up.
        assert_eq!(d.voters[2].log_end_offset, 5);
        assert_eq!(d.voters[2].last_caught_up_timestamp_ms, UNKNOWN);
        assert_eq!(d.voter_endpoints.len(), 3);
        // An observer (a broker-only node) is listed apart from the voters.
        assert_eq!(d.observers.len(), 1);
        assert_eq!(d.observers[0].replica_id, 4);
        assert_eq!(d.observers[0].log_end_offset, 10);
    }

    #[test]
    fn a_follower_never_heard_from_is_unknown() {
        let voters = voters();
        let d = describe(&LeaderView {
            leader_id: 1,
            term: 1,
            last_log_index: None,
            committed_index: None,
            voters: &voters,
            observers: &BTreeMap::new(),
            matched: &BTreeMap::new(),
            contacts: &PeerContacts::default(),
            now_ms: 5,
        });
        assert_eq!(d.high_watermark, 0);
        assert_eq!(d.voters[0].log_end_offset, 0);
        for v in &d.voters[1..] {
            assert_eq!(v.log_end_offset, UNKNOWN);
            assert_eq!(v.last_fetch_timestamp_ms, UNKNOWN);
            assert_eq!(v.last_caught_up_timestamp_ms, UNKNOWN);
        }
    }

    #[test]
    fn caught_up_time_is_kept_while_a_follower_falls_behind() {
        let contacts = PeerContacts::default();
        contacts.acknowledged(2, Some(3));
        contacts.leader_log_ends_at(Some(3));
        let caught_up = contacts.get(2).unwrap().last_caught_up_ms;
        assert!(caught_up > 0);
        contacts.leader_log_ends_at(Some(8));
        contacts.acknowledged(2, Some(5));
        let c = contacts.get(2).unwrap();
        assert_eq!(c.last_caught_up_ms, caught_up);
        assert_eq!(c.acked_through, Some(5));
        contacts.clear();
        assert!(contacts.get(2).is_none());
    }
}
