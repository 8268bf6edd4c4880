//! When a voter of the metadata quorum calls an election, and how a leader
//! that stops cleanly hands leadership to another voter.
//!
//! openraft 0.9 draws a voter's election timeout once, when the node
//! starts, and looks at it only on a tick of one and a half heartbeat
//! intervals. Voters started at the same moment (a StatefulSet with
//! Parallel pod management starts them so) tick in phase, and two whose
//! timeouts fall in the same tick call every election together, each
//! voting for itself, term after term. Strom therefore switches
//! openraft's own election timer off and decides itself when to call an
//! election, by these rules:
//!
//! - **Leader contact.** An AppendEntries or InstallSnapshot from a leader
//!   that this node accepts, and a vote it grants, count as hearing from a
//!   leader ([`ElectionClock::heard_from_leader`]).
//! - **Election timeout.** A voter that has heard from no leader, and made
//!   no attempt of its own, for an election timeout drawn afresh for every
//!   wait, to the microsecond, between `controller.quorum.election.timeout.ms`
//!   and twice that, tries to become leader. Won or lost, the next attempt
//!   waits a new random timeout (a randomised back-off), so two voters that
//!   once tried together drift apart.
//! - **Pre-vote** (the Raft thesis, section 9.6; KRaft's KIP-996). Before
//!   it raises its term, the voter asks the other voters whether they
//!   would vote for it. A voter says yes when it is not the leader, has
//!   not heard from a leader for at least the minimum election timeout,
//!   and the candidate's last log entry (term, then index) is at least as
//!   new as its own. Only with yes from a majority, itself included, does
//!   the real election start. A voter cut off from the others therefore
//!   never raises its term, and on rejoining never deposes a leader that
//!   was working. Terms play no part in the pre-vote: a candidate behind
//!   in term but not in log learns the newer term from the votes its
//!   election is refused with, and wins the next one.
//! - **Leader lease.** openraft refuses a real vote while the voter's own
//!   lease on the leader it knows runs (since that leader's last message);
//!   Strom sets that lease to the minimum election timeout, the same time
//!   a pre-vote waits, so a pre-vote that is won is an election that can
//!   be won.
//! - **Handover** (Raft's TimeoutNow). A leader that stops cleanly picks a
//!   voter whose log matches its own, tells it to call an election at once
//!   ([`ElectionPeers::elect_now`]), and waits, for at most the minimum
//!   election timeout, until leadership has moved. The old leader grants
//!   that vote (its own lease on itself ran out once it had led for the
//!   minimum election timeout; it waits out the rest), which with the
//!   candidate's own vote is a majority of three, so a rolling restart
//!   never waits out an election timeout. A voter accepts the request only
//!   from the leader it follows.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use openraft::storage::RaftLogStorage;
use openraft::{LogId, ServerState};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::quorum::MetadataQuorum;
use crate::raft_types::ControllerNode;

/// A voter asks whether it would get a vote (sent before it raises its
/// term).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreVoteRequest {
    /// The voter that would call the election.
    pub candidate: u64,
    /// The term it would call it in (for the log; not part of the rule).
    pub term: u64,
    /// Its last log entry.
    pub last_log_id: Option<LogId<u64>>,
}

/// The answer to a [`PreVoteRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreVoteResponse {
    /// Whether this voter would vote for the candidate now.
    pub granted: bool,
    /// This voter's current term.
    pub term: u64,
}

/// A future the election messages return.
pub type PeerFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How a voter reaches the other voters with the election messages that
/// openraft does not know: the controller RPC in a broker, an in-memory
/// network in the simulations. `None` / `false` when the peer could not be
/// reached or did not answer.
pub trait ElectionPeers: Send + Sync + 'static {
    /// Asks `target` for a pre-vote.
    fn pre_vote<'a>(
        &'a self,
        target: u64,
        node: &'a ControllerNode,
        request: PreVoteRequest,
    ) -> PeerFuture<'a, Option<PreVoteResponse>>;

    /// Tells `target` to call an election at once; whether it did.
    fn elect_now<'a>(&'a self, target: u64, node: &'a ControllerNode) -> PeerFuture<'a, bool>;
}

/// When this node last heard from a leader, and the timeouts the rules
/// above use.
#[derive(Debug)]
pub(crate) struct ElectionClock {
    /// The election timeout range: (minimum, maximum).
    timeout: (Duration, Duration),
    last_leader_contact: parking_lot::Mutex<Instant>,
}

impl ElectionClock {
    /// A clock that last heard from a leader now (a starting node gives
    /// the leader it may have a full timeout to show itself).
    pub(crate) fn new(timeout: (Duration, Duration)) -> Self {
        Self {
            timeout,
            last_leader_contact: parking_lot::Mutex::new(Instant::now()),
        }
    }

    /// The minimum election timeout: the leader lease, and how long a
    /// voter must have heard no leader before it grants a pre-vote.
    pub(crate) fn minimum(&self) -> Duration {
        self.timeout.0
    }

    /// Records leader contact (or a granted vote) now.
    pub(crate) fn heard_from_leader(&self) {
        *self.last_leader_contact.lock() = Instant::now();
    }

    fn last_leader_contact(&self) -> Instant {
        *self.last_leader_contact.lock()
    }

    /// A fresh election timeout, uniform in the range to the microsecond.
    fn draw(&self) -> Duration {
        let (min, max) = self.timeout;
        let spread = max.saturating_sub(min).as_micros().max(1);
        // A version 4 UUID is 122 random bits from the operating system.
        let random = uuid::Uuid::new_v4().as_u128();
        let offset = u64::try_from(random % spread).unwrap_or(0);
        min + Duration::from_micros(offset)
    }
}

/// The majority of `voters`.
fn majority(voters: usize) -> usize {
    voters / 2 + 1
}

impl MetadataQuorum {
    /// Calls elections by the rules above until `stopped` turns true (or
    /// its sender goes).
    pub(crate) async fn run_elections(
        self,
        peers: Arc<dyn ElectionPeers>,
        mut stopped: watch::Receiver<bool>,
    ) {
        let mut last_attempt = Instant::now();
        loop {
            let timeout = self.elections().draw();
            loop {
                let quiet_since = self.elections().last_leader_contact().max(last_attempt);
                let deadline = quiet_since + timeout;
                if Instant::now() >= deadline {
                    break;
                }
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => {}
                    changed = stopped.changed() => {
                        if changed.is_err() || *stopped.borrow() {
                            return;
                        }
                    }
                }
            }
            last_attempt = Instant::now();
            self.try_to_lead(&peers, timeout).await;
        }
    }

    /// One attempt: nothing while this node leads or does not vote; else a
    /// pre-vote, and an election when a majority would vote for it.
    async fn try_to_lead(&self, peers: &Arc<dyn ElectionPeers>, timeout: Duration) {
        let metrics = self.raft().metrics().borrow().clone();
        if matches!(metrics.state, ServerState::Leader | ServerState::Shutdown) {
            // A leader hears itself: once deposed, it waits a whole
            // timeout before it tries again.
            self.elections().heard_from_leader();
            return;
        }
        let membership = metrics.membership_config.membership();
        let voters: Vec<(u64, ControllerNode)> = membership
            .voter_ids()
            .filter_map(|id| membership.get_node(&id).map(|node| (id, node.clone())))
            .collect();
        if !voters.iter().any(|(id, _)| *id == self.node_id()) {
            return;
        }
        tracing::debug!(
            timeout_ms = timeout.as_millis() as u64,
            "no leader heard within the election timeout"
        );
        let request = PreVoteRequest {
            candidate: self.node_id(),
            term: metrics.current_term + 1,
            last_log_id: self.last_log_id().await,
        };
        // Every other voter is asked at once, each answer bounded by the
        // minimum election timeout.
        let mut asked = tokio::task::JoinSet::new();
        for (id, node) in voters.iter().filter(|(id, _)| *id != self.node_id()) {
            let (id, node, request) = (*id, node.clone(), request.clone());
            let peers = Arc::clone(peers);
            let within = self.elections().minimum();
            asked.spawn(async move {
                let answer = tokio::time::timeout(within, peers.pre_vote(id, &node, request)).await;
                (id, matches!(answer, Ok(Some(r)) if r.granted))
            });
        }
        let mut granted = 1;
        let mut refused = Vec::new();
        for (id, yes) in asked.join_all().await {
            if yes {
                granted += 1;
            } else {
                refused.push(id);
            }
        }
        if granted >= majority(voters.len()) {
            tracing::info!(
                term = request.term,
                granted,
                voters = voters.len(),
                "no leader heard within the election timeout and a majority would vote for this node: calling an election"
            );
            if let Err(e) = self.raft().trigger().elect().await {
                tracing::warn!(error = %e, "cannot call an election");
            }
        } else {
            tracing::debug!(
                term = request.term,
                granted,
                ?refused,
                "pre-vote lost; not calling an election"
            );
        }
    }

    /// Answers a pre-vote by the rule above.
    pub async fn pre_vote(&self, request: PreVoteRequest) -> PreVoteResponse {
        let (state, term) = {
            let metrics = self.raft().metrics();
            let m = metrics.borrow();
            (m.state, m.current_term)
        };
        let leader_heard = state == ServerState::Leader
            || self.elections().last_leader_contact().elapsed() < self.elections().minimum();
        let log_is_current = request.last_log_id >= self.last_log_id().await;
        let granted = !leader_heard && log_is_current;
        tracing::debug!(
            candidate = request.candidate,
            term = request.term,
            granted,
            leader_heard,
            log_is_current,
            "pre-vote"
        );
        PreVoteResponse { granted, term }
    }

    /// Answers a leader that hands leadership over: calls an election at
    /// once when `from` is the leader this node follows.
    pub async fn elect_now(&self, from: u64) -> bool {
        let (state, leader) = {
            let metrics = self.raft().metrics();
            let m = metrics.borrow();
            (m.state, m.current_leader)
        };
        if state == ServerState::Leader || leader != Some(from) {
            tracing::info!(
                from,
                ?leader,
                "refusing a leadership handover from a node that is not the leader"
            );
            return false;
        }
        tracing::info!(
            from,
            "the leader hands over leadership of the metadata quorum: calling an election"
        );
        self.raft().trigger().elect().await.is_ok()
    }

    /// As a leader that is about to stop: hands leadership to a voter whose
    /// log matches this one's, and waits until it leads, each step bounded
    /// by the minimum election timeout. Does nothing elsewhere or alone.
    pub(crate) async fn hand_over_leadership_through(&self, peers: &dyn ElectionPeers) {
        let bound = self.elections().minimum();
        let Some((target, node)) = self.handover_target(bound).await else {
            return;
        };
        // openraft refuses the vote while this leader's lease on itself
        // runs: the minimum election timeout from when it became leader.
        let became_leader = self
            .raft()
            .with_raft_state(|s| s.vote_last_modified())
            .await
            .ok()
            .flatten();
        if let Some(at) = became_leader {
            tokio::time::sleep_until(at + bound + Duration::from_millis(1)).await;
        }
        if !peers.elect_now(target, &node).await {
            tracing::warn!(
                target,
                "the leadership handover was refused; the voters will elect after the election timeout"
            );
            return;
        }
        let mut metrics = self.raft().metrics();
        let moved = tokio::time::timeout(bound, async {
            loop {
                {
                    // Moved once the new leader's first message arrived.
                    let m = metrics.borrow_and_update();
                    if m.state != ServerState::Leader
                        && m.current_leader.is_some_and(|l| l != self.node_id())
                    {
                        return;
                    }
                }
                if metrics.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
        match moved {
            Ok(()) => tracing::info!(target, "handed over leadership of the metadata quorum"),
            Err(_) => tracing::warn!(
                target,
                "leadership did not move within the election timeout; stopping anyway"
            ),
        }
    }

    /// The voter to hand leadership to: once one holds this leader's whole
    /// log, the one that does; `None` when this node does not lead, leads
    /// alone, or none catches up within `bound`.
    async fn handover_target(&self, bound: Duration) -> Option<(u64, ControllerNode)> {
        let mut metrics = self.raft().metrics();
        let found = tokio::time::timeout(bound, async {
            loop {
                {
                    let m = metrics.borrow_and_update();
                    if m.state != ServerState::Leader {
                        return None;
                    }
                    let membership = m.membership_config.membership();
                    let others: Vec<u64> = membership
                        .voter_ids()
                        .filter(|id| *id != self.node_id())
                        .collect();
                    if others.is_empty() {
                        return None;
                    }
                    let caught_up = m.replication.as_ref().and_then(|matched| {
                        others.iter().copied().find(|id| {
                            matched.get(id).copied().flatten().map(|l| l.index) == m.last_log_index
                        })
                    });
                    if let Some(id) = caught_up {
                        return membership.get_node(&id).map(|node| (id, node.clone()));
                    }
                }
                if metrics.changed().await.is_err() {
                    return None;
                }
            }
        })
        .await;
        match found {
            Ok(target) => target,
            Err(_) => {
                tracing::warn!(
                    "no voter caught up with this leader within the election timeout; stopping without a handover"
                );
                None
            }
        }
    }

    /// The last entry of this node's Raft log.
    async fn last_log_id(&self) -> Option<LogId<u64>> {
        let mut log = self.log_store().clone();
        log.get_log_state().await.ok().and_then(|s| s.last_log_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_drawn_afresh_within_the_range() {
        let clock = ElectionClock::new((Duration::from_millis(1000), Duration::from_millis(2000)));
        let drawn: std::collections::BTreeSet<Duration> = (0..200).map(|_| clock.draw()).collect();
        assert!(drawn
            .iter()
            .all(|d| *d >= Duration::from_millis(1000) && *d < Duration::from_millis(2000)));
        // Fine-grained: 200 draws from a million microseconds hardly repeat.
        assert!(drawn.len() > 190, "{} distinct of 200", drawn.len());
        // Not quantised to milliseconds, let alone to a tick.
        assert!(drawn.iter().any(|d| d.subsec_micros() % 1000 != 0));
    }

    #[test]
    fn majorities() {
        assert_eq!(majority(1), 1);
        assert_eq!(majority(2), 2);
        assert_eq!(majority(3), 2);
        assert_eq!(majority(5), 3);
    }
}
