//! The member-facing group APIs, Kafka's GroupCoordinator: JoinGroup (new,
//! known, pending and static members, KIP-345 replacement of a static
//! member, `group.max.size`), SyncGroup, Heartbeat, LeaveGroup,
//! DescribeGroups and ListGroups. The phase changes they cause are in
//! [`super::rebalance`].

use std::time::Duration;

use bytes::Bytes;
use strom_protocol::ErrorCode;
use tokio::sync::oneshot;
use tokio::time::Instant;
use uuid::Uuid;

use super::deadlines::{deadline_after, Timer};
use super::rebalance::joined_members;
use super::{now_ms, write_error, Shard};
use crate::group::{Group, GroupState, Member};
use crate::offsets_topic::{OffsetsRecord, MAX_RECORD_STRING_BYTES};
use crate::outcome::{
    GroupDescription, GroupListing, HeartbeatParams, JoinOutcome, JoinParams, LeavingMember,
    MemberDescription, SyncOutcome, SyncParams,
};

/// A new member id: client id (or instance id) and a UUID, as Kafka makes
/// them; the prefix is cut so the id fits the record format.
pub(super) fn new_member_id(client_id: &str, group_instance_id: Option<&str>) -> String {
    let prefix = group_instance_id.unwrap_or(client_id);
    let mut cut = prefix
        .len()
        .min(MAX_RECORD_STRING_BYTES - MEMBER_ID_SUFFIX_BYTES);
    while !prefix.is_char_boundary(cut) {
        cut -= 1;
    }
    format!(
        "{}-{}",
        prefix.get(..cut).unwrap_or_default(),
        Uuid::new_v4()
    )
}

/// How long a new member's first JoinGroup may wait for the join phase to
/// end (Kafka's `classicGroupNewMemberJoinTimeoutMs`).
const NEW_MEMBER_JOIN_TIMEOUT: Duration = Duration::from_secs(300);

/// `-` and a hyphenated UUID.
const MEMBER_ID_SUFFIX_BYTES: usize = 37;

/// Kafka's `group.max.size` rule: an Empty group takes anyone; while
/// members rejoin, those already waiting are kept and new ones are taken
/// while fewer than the maximum are waiting; otherwise members are kept
/// and new ones taken while the group is below the maximum. (Unlike Kafka,
/// a restarting static member replacing itself is always taken: it does
/// not grow the group.)
fn accepts_joining_member(group: &Group, p: &JoinParams, max_size: usize) -> bool {
    let existing = group.members.get(&p.member_id);
    let replacing_static = p.member_id.is_empty()
        && p.group_instance_id
            .as_ref()
            .is_some_and(|i| group.static_members.contains_key(i));
    match group.state {
        _ if replacing_static => true,
        GroupState::Empty | GroupState::Dead => true,
        GroupState::PreparingRebalance => {
            existing.is_some_and(|m| m.join_waiter.is_some())
                || group
                    .members
                    .values()
                    .filter(|m| m.join_waiter.is_some())
                    .count()
                    < max_size
        }
        GroupState::CompletingRebalance | GroupState::Stable => {
            existing.is_some() || group.members.len() < max_size
        }
    }
}

/// Whether a JoinGroup carries a string the group record cannot hold.
fn has_overlong_string(p: &JoinParams) -> bool {
    let too_long = |s: &str| s.len() > MAX_RECORD_STRING_BYTES;
    too_long(&p.member_id)
        || p.group_instance_id.as_deref().is_some_and(too_long)
        || too_long(&p.client_id)
        || too_long(&p.client_host)
        || too_long(&p.protocol_type)
        || p.protocols.iter().any(|(name, _)| too_long(name))
}

impl Shard {
    // ----- JoinGroup ---------------------------------------------------------

    /// Refused or repeated joins are answered at once; otherwise the reply
    /// waits with the member until the join phase ends.
    pub(super) async fn join(&mut self, p: JoinParams, reply: oneshot::Sender<JoinOutcome>) {
        let refuse = |reply: oneshot::Sender<JoinOutcome>, member: &str, code: ErrorCode| {
            let _ = reply.send(JoinOutcome::error(member, code));
        };
        if p.group_id.is_empty() || p.group_id.len() > MAX_RECORD_STRING_BYTES {
            return refuse(reply, &p.member_id, ErrorCode::InvalidGroupId);
        }
        if has_overlong_string(&p) {
            return refuse(reply, "", ErrorCode::InvalidRequest);
        }
        if p.session_timeout_ms < self.config.group_min_session_timeout_ms
            || p.session_timeout_ms > self.config.group_max_session_timeout_ms
        {
            return refuse(reply, &p.member_id, ErrorCode::InvalidSessionTimeout);
        }
        let now = Instant::now();
        let wall = now_ms();
        if !self.groups.contains_key(&p.group_id) {
            if !p.member_id.is_empty() {
                return refuse(reply, &p.member_id, ErrorCode::UnknownMemberId);
            }
            // Refused joins leave no group behind.
            if p.protocol_type.is_empty() || p.protocols.is_empty() {
                return refuse(reply, "", ErrorCode::InconsistentGroupProtocol);
            }
            self.groups
                .insert(p.group_id.clone(), Group::new(p.group_id.clone(), wall));
        }
        let Some(group) = self.groups.get_mut(&p.group_id) else {
            return;
        };
        if group.state == GroupState::Dead {
            return refuse(reply, &p.member_id, ErrorCode::CoordinatorNotAvailable);
        }
        if !group.supports_protocols(&p.protocol_type, &p.protocols) {
            return refuse(reply, &p.member_id, ErrorCode::InconsistentGroupProtocol);
        }
        if !accepts_joining_member(group, &p, self.config.group_max_size) {
            // Kafka's rule; an existing member turned away leaves the group.
            if let Some(m) = group.remove_member(&p.member_id) {
                fail_waiters(m, ErrorCode::GroupMaxSizeReached);
                tracing::info!(group = %p.group_id, member = %p.member_id, "member removed: group.max.size reached");
                let group_id = p.group_id.clone();
                refuse(reply, "", ErrorCode::GroupMaxSizeReached);
                return self.after_member_removed(&group_id).await;
            }
            return refuse(reply, "", ErrorCode::GroupMaxSizeReached);
        }
        if p.member_id.is_empty() {
            let member_id = new_member_id(&p.client_id, p.group_instance_id.as_deref());
            if let Some(instance) = p.group_instance_id.clone() {
                if let Some(old) = group.static_members.get(&instance).cloned() {
                    return self.replace_static_member(p, old, member_id, reply).await;
                }
                return self.add_member_and_rebalance(p, member_id, reply).await;
            }
            if p.require_known_member_id {
                let deadline = deadline_after(now, p.session_timeout_ms);
                group.pending_members.insert(member_id.clone(), deadline);
                self.arm(Timer::pending(&p.group_id, &member_id), deadline);
                return refuse(reply, &member_id, ErrorCode::MemberIdRequired);
            }
            return self.add_member_and_rebalance(p, member_id, reply).await;
        }
        if group.pending_members.remove(&p.member_id).is_some() {
            let member_id = p.member_id.clone();
            return self.add_member_and_rebalance(p, member_id, reply).await;
        }
        if let Some(instance) = &p.group_instance_id {
            if group
                .static_members
                .get(instance)
                .is_some_and(|m| *m != p.member_id)
            {
                return refuse(reply, &p.member_id, ErrorCode::FencedInstanceId);
            }
        }
        if !group.members.contains_key(&p.member_id) {
            return refuse(reply, &p.member_id, ErrorCode::UnknownMemberId);
        }
        let is_leader = group.leader_id.as_deref() == Some(p.member_id.as_str());
        let matches = group
            .members
            .get(&p.member_id)
            .is_some_and(|m| m.matches(&p.protocols));
        match group.state {
            GroupState::PreparingRebalance => self.update_member_and_rebalance(p, reply).await,
            GroupState::CompletingRebalance if matches => {
                // A repeated JoinGroup (lost response): answer with the
                // current generation again.
                let outcome = current_join_outcome(group, &p.member_id, is_leader);
                let _ = reply.send(outcome);
            }
            GroupState::Stable if !is_leader && matches => {
                let outcome = current_join_outcome(group, &p.member_id, false);
                let _ = reply.send(outcome);
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.update_member_and_rebalance(p, reply).await
            }
            GroupState::Empty | GroupState::Dead => {
                refuse(reply, &p.member_id, ErrorCode::UnknownMemberId)
            }
        }
    }

    async fn add_member_and_rebalance(
        &mut self,
        p: JoinParams,
        member_id: String,
        reply: oneshot::Sender<JoinOutcome>,
    ) {
        let now = Instant::now();
        let Some(group) = self.groups.get_mut(&p.group_id) else {
            return;
        };
        if group.members.is_empty() {
            group.protocol_type = Some(p.protocol_type.clone());
        }
        // A new member cannot heartbeat while its JoinGroup waits, and the
        // others may take up to their rebalance timeout to rejoin: Kafka
        // gives it this long instead of its session timeout.
        let session_deadline = now + NEW_MEMBER_JOIN_TIMEOUT;
        group.add_member(Member {
            member_id: member_id.clone(),
            group_instance_id: p.group_instance_id.clone(),
            client_id: p.client_id,
            client_host: p.client_host,
            rebalance_timeout_ms: p.rebalance_timeout_ms,
            session_timeout_ms: p.session_timeout_ms,
            protocols: p.protocols,
            assignment: Bytes::new(),
            join_waiter: Some(reply),
            sync_waiter: None,
            session_deadline,
            is_new: true,
        });
        if let Some(d) = group.initial_delay.as_mut() {
            d.joined_in_round = true;
        }
        self.arm(Timer::session(&p.group_id, &member_id), session_deadline);
        self.maybe_prepare_rebalance(&p.group_id).await;
    }

    async fn update_member_and_rebalance(
        &mut self,
        p: JoinParams,
        reply: oneshot::Sender<JoinOutcome>,
    ) {
        let Some(group) = self.groups.get_mut(&p.group_id) else {
            return;
        };
        if let Some(m) = group.members.get_mut(&p.member_id) {
            if let Some(old) = m.join_waiter.take() {
                let _ = old.send(JoinOutcome::error(
                    p.member_id.clone(),
                    ErrorCode::UnknownMemberId,
                ));
            }
            m.protocols = p.protocols;
            m.rebalance_timeout_ms = p.rebalance_timeout_ms;
            m.session_timeout_ms = p.session_timeout_ms;
            m.join_waiter = Some(reply);
        }
        self.maybe_prepare_rebalance(&p.group_id).await;
    }

    /// KIP-345: a static member rejoining with a new member id takes the old
    /// member's place (the old id is fenced) and keeps its assignment; a
    /// Stable group whose protocol does not change is not rebalanced.
    async fn replace_static_member(
        &mut self,
        p: JoinParams,
        old_id: String,
        new_id: String,
        reply: oneshot::Sender<JoinOutcome>,
    ) {
        let now = Instant::now();
        let Some(group) = self.groups.get_mut(&p.group_id) else {
            return;
        };
        let Some(mut member) = group.members.remove(&old_id) else {
            return;
        };
        if let Some(w) = member.join_waiter.take() {
            let _ = w.send(JoinOutcome::error(
                old_id.clone(),
                ErrorCode::FencedInstanceId,
            ));
        }
        if let Some(w) = member.sync_waiter.take() {
            let _ = w.send(SyncOutcome::error(ErrorCode::FencedInstanceId));
        }
        let old_protocols = std::mem::replace(&mut member.protocols, p.protocols.clone());
        let old_client = (
            member.client_id.clone(),
            member.client_host.clone(),
            member.session_timeout_ms,
            member.rebalance_timeout_ms,
        );
        member.member_id = new_id.clone();
        member.client_id = p.client_id.clone();
        member.client_host = p.client_host.clone();
        member.session_timeout_ms = p.session_timeout_ms;
        member.rebalance_timeout_ms = p.rebalance_timeout_ms;
        member.session_deadline = deadline_after(now, p.session_timeout_ms);
        for id in group.join_order.iter_mut().filter(|id| **id == old_id) {
            *id = new_id.clone();
        }
        if let Some(instance) = &p.group_instance_id {
            group
                .static_members
                .insert(instance.clone(), new_id.clone());
        }
        let was_leader = group.leader_id.as_deref() == Some(old_id.as_str());
        if was_leader {
            group.leader_id = Some(new_id.clone());
        }
        group.synced.remove(&old_id);
        let deadline = member.session_deadline;
        group.members.insert(new_id.clone(), member);
        self.arm(Timer::session(&p.group_id, &new_id), deadline);
        let Some(group) = self.groups.get_mut(&p.group_id) else {
            return;
        };
        match group.state {
            GroupState::Stable if group.select_protocol() == group.protocol_name => {
                let value = group.metadata_value(now_ms());
                let group_id = p.group_id.clone();
                let result = self
                    .writer
                    .append(vec![OffsetsRecord::Group {
                        group: group_id.clone(),
                        value: Some(value),
                    }])
                    .await;
                let Some(group) = self.groups.get_mut(&group_id) else {
                    return;
                };
                match result {
                    Err(code) => {
                        // Put the old member back.
                        if let Some(mut m) = group.members.remove(&new_id) {
                            m.member_id = old_id.clone();
                            m.protocols = old_protocols;
                            (
                                m.client_id,
                                m.client_host,
                                m.session_timeout_ms,
                                m.rebalance_timeout_ms,
                            ) = old_client;
                            m.session_deadline = deadline_after(now, m.session_timeout_ms);
                            for id in group.join_order.iter_mut().filter(|id| **id == new_id) {
                                *id = old_id.clone();
                            }
                            if let Some(instance) = &p.group_instance_id {
                                group
                                    .static_members
                                    .insert(instance.clone(), old_id.clone());
                            }
                            if was_leader {
                                group.leader_id = Some(old_id.clone());
                            }
                            let deadline = m.session_deadline;
                            group.members.insert(old_id.clone(), m);
                            self.arm(Timer::session(&group_id, &old_id), deadline);
                        }
                        let _ = reply.send(JoinOutcome::error("", write_error(code)));
                    }
                    Ok(()) => {
                        let skip = was_leader && p.supports_skip_assignment;
                        let mut outcome = current_join_outcome(group, &new_id, skip);
                        // Unless told to skip, the current leader must not
                        // reassign a Stable group: keep the old leader id in
                        // the answer so nobody believes it leads.
                        if !skip {
                            outcome.leader = if was_leader {
                                old_id
                            } else {
                                group.leader_id.clone().unwrap_or_default()
                            };
                            outcome.members.clear();
                        }
                        outcome.skip_assignment = skip;
                        let _ = reply.send(outcome);
                    }
                }
            }
            GroupState::Stable | GroupState::CompletingRebalance => {
                if let Some(m) = group.members.get_mut(&new_id) {
                    m.join_waiter = Some(reply);
                }
                self.prepare_rebalance(&p.group_id);
                self.maybe_complete_join(&p.group_id).await;
            }
            GroupState::PreparingRebalance => {
                if let Some(m) = group.members.get_mut(&new_id) {
                    m.join_waiter = Some(reply);
                }
                self.maybe_complete_join(&p.group_id).await;
            }
            GroupState::Empty | GroupState::Dead => {
                let _ = reply.send(JoinOutcome::error(new_id, ErrorCode::UnknownMemberId));
            }
        }
    }

    // ----- SyncGroup ---------------------------------------------------------

    /// Answered at once in a Stable group; while the group completes its
    /// rebalance the reply waits for the leader's assignment.
    pub(super) async fn sync(&mut self, p: SyncParams, reply: oneshot::Sender<SyncOutcome>) {
        let now = Instant::now();
        let Some(group) = self.groups.get_mut(&p.group_id) else {
            let _ = reply.send(SyncOutcome::error(ErrorCode::UnknownMemberId));
            return;
        };
        if let Err(code) = validate_member(group, &p.member_id, p.group_instance_id.as_deref()) {
            let _ = reply.send(SyncOutcome::error(code));
            return;
        }
        if p.generation_id != group.generation_id {
            let _ = reply.send(SyncOutcome::error(ErrorCode::IllegalGeneration));
            return;
        }
        let mismatch =
            |asked: &Option<String>, have: &Option<String>| asked.is_some() && asked != have;
        if mismatch(&p.protocol_type, &group.protocol_type)
            || mismatch(&p.protocol_name, &group.protocol_name)
        {
            let _ = reply.send(SyncOutcome::error(ErrorCode::InconsistentGroupProtocol));
            return;
        }
        match group.state {
            GroupState::Empty => {
                let _ = reply.send(SyncOutcome::error(ErrorCode::UnknownMemberId));
            }
            GroupState::Dead => {
                let _ = reply.send(SyncOutcome::error(ErrorCode::CoordinatorNotAvailable));
            }
            GroupState::PreparingRebalance => {
                let _ = reply.send(SyncOutcome::error(ErrorCode::RebalanceInProgress));
            }
            GroupState::Stable => {
                group.synced.insert(p.member_id.clone());
                if group.members.keys().all(|id| group.synced.contains(id)) {
                    group.sync_deadline = None;
                }
                let outcome = SyncOutcome {
                    error: None,
                    protocol_type: group.protocol_type.clone(),
                    protocol_name: group.protocol_name.clone(),
                    assignment: group
                        .members
                        .get(&p.member_id)
                        .map(|m| m.assignment.clone())
                        .unwrap_or_default(),
                };
                self.refresh_session(&p.group_id, &p.member_id, now);
                let _ = reply.send(outcome);
            }
            GroupState::CompletingRebalance => {
                if let Some(m) = group.members.get_mut(&p.member_id) {
                    if let Some(old) = m.sync_waiter.replace(reply) {
                        let _ = old.send(SyncOutcome::error(ErrorCode::RebalanceInProgress));
                    }
                }
                group.synced.insert(p.member_id.clone());
                let is_leader = group.leader_id.as_deref() == Some(p.member_id.as_str());
                self.refresh_session(&p.group_id, &p.member_id, now);
                if is_leader {
                    self.store_assignment(&p.group_id, p.generation_id, p.assignments)
                        .await;
                }
            }
        }
    }

    // ----- Heartbeat and LeaveGroup ------------------------------------------

    /// Refreshes the member's session; REBALANCE_IN_PROGRESS tells it to
    /// rejoin.
    pub(super) fn heartbeat(&mut self, p: &HeartbeatParams) -> Option<ErrorCode> {
        let now = Instant::now();
        let Some(group) = self.groups.get(&p.group_id) else {
            return Some(ErrorCode::UnknownMemberId);
        };
        match group.state {
            GroupState::Dead => return Some(ErrorCode::CoordinatorNotAvailable),
            GroupState::Empty => return Some(ErrorCode::UnknownMemberId),
            _ => {}
        }
        if let Err(code) = validate_member(group, &p.member_id, p.group_instance_id.as_deref()) {
            return Some(code);
        }
        if p.generation_id != group.generation_id {
            return Some(ErrorCode::IllegalGeneration);
        }
        let state = group.state;
        self.refresh_session(&p.group_id, &p.member_id, now);
        (state == GroupState::PreparingRebalance).then_some(ErrorCode::RebalanceInProgress)
    }

    /// Removes each listed member (a static one by instance id, fenced if
    /// the member id is another's) or pending member id; the group
    /// rebalances once if anyone left.
    pub(super) async fn leave(
        &mut self,
        group_id: &str,
        members: Vec<LeavingMember>,
    ) -> Result<Vec<Option<ErrorCode>>, ErrorCode> {
        let Some(group) = self.groups.get_mut(group_id) else {
            return Ok(members
                .iter()
                .map(|_| Some(ErrorCode::UnknownMemberId))
                .collect());
        };
        if group.state == GroupState::Dead {
            return Err(ErrorCode::CoordinatorNotAvailable);
        }
        let mut results = Vec::with_capacity(members.len());
        let mut removed = false;
        for leaving in members {
            let target = match &leaving.group_instance_id {
                Some(instance) => match group.static_members.get(instance) {
                    Some(id) if leaving.member_id.is_empty() || *id == leaving.member_id => {
                        Ok(id.clone())
                    }
                    Some(_) => Err(ErrorCode::FencedInstanceId),
                    None => Err(ErrorCode::UnknownMemberId),
                },
                None if group.pending_members.remove(&leaving.member_id).is_some() => {
                    results.push(None);
                    removed = true;
                    continue;
                }
                None if group.members.contains_key(&leaving.member_id) => {
                    Ok(leaving.member_id.clone())
                }
                None => Err(ErrorCode::UnknownMemberId),
            };
            match target {
                Ok(id) => {
                    if let Some(m) = group.remove_member(&id) {
                        fail_waiters(m, ErrorCode::UnknownMemberId);
                    }
                    tracing::info!(group = group_id, member = %id, "member left the group");
                    removed = true;
                    results.push(None);
                }
                Err(code) => results.push(Some(code)),
            }
        }
        if removed {
            self.after_member_removed(group_id).await;
        }
        Ok(results)
    }

    // ----- DescribeGroups and ListGroups -------------------------------------

    /// Members in join order; protocol, metadata and assignments only once
    /// the group is Stable.
    pub(super) fn describe(&self, group_id: &str) -> Option<GroupDescription> {
        let g = self
            .groups
            .get(group_id)
            .filter(|g| g.state != GroupState::Dead)?;
        let stable = g.state == GroupState::Stable;
        let protocol = g.protocol_name.clone().unwrap_or_default();
        Some(GroupDescription {
            state: g.state.as_str(),
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: if stable {
                protocol.clone()
            } else {
                String::new()
            },
            members: g
                .join_order
                .iter()
                .filter_map(|id| g.members.get(id))
                .map(|m| MemberDescription {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata(&protocol)
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
        })
    }

    pub(super) fn list(&self) -> Vec<GroupListing> {
        let mut out: Vec<GroupListing> = self
            .groups
            .values()
            .filter(|g| g.state != GroupState::Dead)
            .map(|g| GroupListing {
                group_id: g.group_id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                state: g.state.as_str(),
            })
            .collect();
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }
}

/// Whether `member_id` (with `instance`, if static) is a member of the
/// group now: UNKNOWN_MEMBER_ID or FENCED_INSTANCE_ID if not.
pub(super) fn validate_member(
    group: &Group,
    member_id: &str,
    instance: Option<&str>,
) -> Result<(), ErrorCode> {
    if let Some(instance) = instance {
        match group.static_members.get(instance) {
            Some(id) if id != member_id => return Err(ErrorCode::FencedInstanceId),
            None if !group.members.contains_key(member_id) => {
                return Err(ErrorCode::UnknownMemberId)
            }
            _ => {}
        }
    }
    if !group.members.contains_key(member_id) {
        return Err(ErrorCode::UnknownMemberId);
    }
    Ok(())
}

/// Answers whatever JoinGroup or SyncGroup of a removed member still waits.
pub(super) fn fail_waiters(mut m: Member, code: ErrorCode) {
    if let Some(w) = m.join_waiter.take() {
        let _ = w.send(JoinOutcome::error(m.member_id.clone(), code));
    }
    if let Some(w) = m.sync_waiter.take() {
        let _ = w.send(SyncOutcome::error(code));
    }
}

/// A JoinGroup answer describing the current generation.
fn current_join_outcome(group: &Group, member_id: &str, with_members: bool) -> JoinOutcome {
    JoinOutcome {
        error: None,
        generation_id: group.generation_id,
        protocol_type: group.protocol_type.clone(),
        protocol_name: group.protocol_name.clone(),
        leader: group.leader_id.clone().unwrap_or_default(),
        skip_assignment: false,
        member_id: member_id.to_string(),
        members: if with_members {
            joined_members(group)
        } else {
            Vec::new()
        },
    }
}
