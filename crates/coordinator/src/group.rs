//! A classic consumer group: its members, generation, chosen protocol and
//! committed offsets, and Kafka's rules for choosing a protocol and a
//! leader.
//!
//! # States (Kafka's `GroupState` of the classic protocol)
//!
//! ```text
//! Empty ──join──▶ PreparingRebalance ──all joined / timeout──▶ CompletingRebalance
//!   ▲                    ▲      │                                      │
//!   │                    │      └── no members left ──▶ Empty          │ leader's SyncGroup
//!   │                    └──── member joins, leaves, expires ◀── Stable ◀──┘
//!   └── last member leaves or expires (from any state)
//! Dead: deleted (DeleteGroups, or every offset expired while Empty).
//! ```
//!
//! JoinGroup moves a group to PreparingRebalance; the join phase ends when
//! every known member has rejoined (or the rebalance timeout passes; a new
//! group first waits `group.initial.rebalance.delay.ms`). Then the
//! generation increases, the protocol every member supports that most
//! members prefer is chosen, the leader receives all members' metadata and
//! the group waits for the leader's SyncGroup with the assignment.
//!
//! # Generations
//!
//! A group's generation comes from `__consumer_offsets`, so it may be any
//! `i32` a record carries. Kafka's `generationId += 1` wraps a Java int
//! from `i32::MAX` to a negative value, which clients and OffsetCommit read
//! as "no generation"; here the generation after `i32::MAX` (or after a
//! negative one, which only a crafted record holds) is 1, the generation of
//! a group's first completed rebalance ([`next_generation`]). Either way a
//! member of the old generation gets ILLEGAL_GENERATION, and no arithmetic
//! on a stored value can overflow.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use kafka_protocol::messages::ConsumerProtocolSubscription;
use kafka_protocol::protocol::Decodable;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::offsets_topic::{GroupMetadataValue, MemberMetadataValue, OffsetCommitValue};
use crate::outcome::{JoinOutcome, SyncOutcome};

/// Newest `ConsumerProtocolSubscription` version this broker decodes.
const CONSUMER_SUBSCRIPTION_MAX_VERSION: i16 = 3;

/// The generation after `generation`: one more, or 1 after `i32::MAX` or
/// a negative generation (see the module docs).
pub fn next_generation(generation: i32) -> i32 {
    match generation.checked_add(1) {
        Some(next) if generation >= 0 => next,
        _ => 1,
    }
}

/// A classic group's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    /// No members (offsets may remain).
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Waiting for the leader's assignment.
    CompletingRebalance,
    /// Members have their assignments.
    Stable,
    /// Deleted.
    Dead,
}

impl GroupState {
    /// The name Kafka reports in ListGroups and DescribeGroups.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// One member.
#[derive(Debug)]
pub struct Member {
    /// Member id.
    pub member_id: String,
    /// Static membership instance id (KIP-345).
    pub group_instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// Session timeout.
    pub session_timeout_ms: i32,
    /// Protocols in preference order, with the member's metadata for each.
    pub protocols: Vec<(String, Bytes)>,
    /// Current assignment.
    pub assignment: Bytes,
    /// A JoinGroup waiting for the join phase to end.
    pub join_waiter: Option<oneshot::Sender<JoinOutcome>>,
    /// A SyncGroup waiting for the leader's assignment.
    pub sync_waiter: Option<oneshot::Sender<SyncOutcome>>,
    /// When the session expires unless the member heartbeats.
    pub session_deadline: Instant,
    /// Joined for the first time in the current rebalance.
    pub is_new: bool,
}

impl Member {
    /// Whether the member's protocols equal `protocols`.
    pub fn matches(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }

    /// The member's metadata for `protocol`.
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

/// A committed offset with its metadata.
pub type CommittedOffset = OffsetCommitValue;

/// A classic group.
#[derive(Debug)]
pub struct Group {
    /// Group id.
    pub group_id: String,
    /// State.
    pub state: GroupState,
    /// Protocol type, set by the first member.
    pub protocol_type: Option<String>,
    /// Protocol chosen for the current generation.
    pub protocol_name: Option<String>,
    /// Generation.
    pub generation_id: i32,
    /// Leader member id.
    pub leader_id: Option<String>,
    /// Members by id.
    pub members: HashMap<String, Member>,
    /// Member ids in the order they joined (the first is leader by default).
    pub join_order: Vec<String>,
    /// Member ids handed out by MEMBER_ID_REQUIRED, not yet joined, with
    /// the deadline to join.
    pub pending_members: HashMap<String, Instant>,
    /// Static members: instance id → member id.
    pub static_members: HashMap<String, String>,
    /// Members that sent SyncGroup in the current generation.
    pub synced: HashSet<String>,
    /// Committed offsets by (topic, partition).
    pub offsets: HashMap<(String, i32), CommittedOffset>,
    /// End of the current join phase.
    pub join_deadline: Option<Instant>,
    /// The initial rebalance delay: budget left, and whether members joined
    /// during the current delay.
    pub initial_delay: Option<InitialDelay>,
    /// End of the current sync phase.
    pub sync_deadline: Option<Instant>,
    /// When the group entered its state (ms), for offset expiration.
    pub state_timestamp_ms: i64,
}

/// Kafka's `InitialDelayedJoin`: the first rebalance of an empty group
/// waits `group.initial.rebalance.delay.ms`, again while members keep
/// arriving, up to the rebalance timeout.
#[derive(Debug, Clone, Copy)]
pub struct InitialDelay {
    /// Delay per round.
    pub delay_ms: u64,
    /// Time left before the rebalance timeout.
    pub remaining_ms: u64,
    /// A member joined in the current round.
    pub joined_in_round: bool,
}

impl Group {
    /// A new, empty group.
    pub fn new(group_id: String, now_ms: i64) -> Self {
        Self {
            group_id,
            state: GroupState::Empty,
            protocol_type: None,
            protocol_name: None,
            generation_id: 0,
            leader_id: None,
            members: HashMap::new(),
            join_order: Vec::new(),
            pending_members: HashMap::new(),
            static_members: HashMap::new(),
            synced: HashSet::new(),
            offsets: HashMap::new(),
            join_deadline: None,
            initial_delay: None,
            sync_deadline: None,
            state_timestamp_ms: now_ms,
        }
    }

    /// Moves to `state`, noting when.
    pub fn transition(&mut self, state: GroupState, now_ms: i64) {
        self.state = state;
        self.state_timestamp_ms = now_ms;
    }

    /// Whether every member is waiting in JoinGroup and no member id handed
    /// out is still unused.
    pub fn all_members_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.join_waiter.is_some())
    }

    /// Whether a member with these protocols can join: a new group needs a
    /// protocol type and at least one protocol; an existing one the same
    /// type and a protocol every member also supports.
    pub fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        let candidates = self.candidate_protocols();
        protocols.iter().any(|(p, _)| candidates.contains(p))
    }

    /// Protocols every member supports.
    fn candidate_protocols(&self) -> HashSet<String> {
        let mut members = self.members.values();
        let Some(first) = members.next() else {
            return HashSet::new();
        };
        let mut set: HashSet<String> = first.protocols.iter().map(|(p, _)| p.clone()).collect();
        for m in members {
            let theirs: HashSet<&String> = m.protocols.iter().map(|(p, _)| p).collect();
            set.retain(|p| theirs.contains(p));
        }
        set
    }

    /// Kafka's protocol vote: each member votes for its most preferred
    /// protocol among those all support; the most votes win (ties go to the
    /// earliest joined member's preference).
    pub fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes: HashMap<&str, usize> = HashMap::new();
        for m in self.members.values() {
            if let Some((p, _)) = m.protocols.iter().find(|(p, _)| candidates.contains(p)) {
                *votes.entry(p.as_str()).or_default() += 1;
            }
        }
        let best = votes.values().copied().max()?;
        let first = self.join_order.first().and_then(|id| self.members.get(id));
        let preference: Vec<&str> = first
            .map(|m| m.protocols.iter().map(|(p, _)| p.as_str()).collect())
            .unwrap_or_default();
        preference
            .into_iter()
            .find(|p| votes.get(p) == Some(&best))
            .or_else(|| votes.iter().find(|(_, v)| **v == best).map(|(p, _)| *p))
            .map(String::from)
    }

    /// The largest rebalance timeout of the members.
    pub fn rebalance_timeout_ms(&self) -> i32 {
        self.members
            .values()
            .map(|m| m.rebalance_timeout_ms)
            .max()
            .unwrap_or(0)
    }

    /// Adds a member (last in join order).
    pub fn add_member(&mut self, member: Member) {
        if let Some(instance) = &member.group_instance_id {
            self.static_members
                .insert(instance.clone(), member.member_id.clone());
        }
        self.join_order.push(member.member_id.clone());
        self.members.insert(member.member_id.clone(), member);
    }

    /// Removes a member; returns it.
    pub fn remove_member(&mut self, member_id: &str) -> Option<Member> {
        let member = self.members.remove(member_id)?;
        self.join_order.retain(|m| m != member_id);
        if let Some(instance) = &member.group_instance_id {
            if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                self.static_members.remove(instance);
            }
        }
        self.synced.remove(member_id);
        if self.leader_id.as_deref() == Some(member_id) {
            self.leader_id = self.join_order.first().cloned();
        }
        Some(member)
    }

    /// The topics the members subscribe to, when the group uses the
    /// consumer protocol and every subscription decodes (versions newer
    /// than this broker knows are read as the newest it knows, as Kafka's
    /// `ConsumerProtocol` does).
    pub fn subscribed_topics(&self) -> Option<HashSet<String>> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = HashSet::new();
        for m in self.members.values() {
            let mut data = m.metadata(protocol);
            let version: [u8; 2] = data.get(..2)?.try_into().ok()?;
            let _ = bytes::Buf::get_i16(&mut data);
            let version = i16::from_be_bytes(version).min(CONSUMER_SUBSCRIPTION_MAX_VERSION);
            let sub = ConsumerProtocolSubscription::decode(&mut data, version).ok()?;
            topics.extend(sub.topics.into_iter().map(|t| t.to_string()));
        }
        Some(topics)
    }

    /// The group as a `__consumer_offsets` group metadata value.
    pub fn metadata_value(&self, now_ms: i64) -> GroupMetadataValue {
        let protocol = self.protocol_name.clone();
        GroupMetadataValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation_id,
            protocol: protocol.clone(),
            leader: self.leader_id.clone(),
            current_state_timestamp: now_ms,
            members: self
                .join_order
                .iter()
                .filter_map(|id| self.members.get(id))
                .map(|m| MemberMetadataValue {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: protocol
                        .as_deref()
                        .map(|p| m.metadata(p))
                        .unwrap_or_default(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }
}
