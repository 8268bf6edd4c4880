//! A classic group's rebalance (Kafka's `prepareRebalance`,
//! `onCompleteJoin` and the leader's SyncGroup): starting a join phase,
//! ending it (new generation, protocol and leader; every waiting JoinGroup
//! answered), storing the leader's assignment so the waiting SyncGroups
//! get theirs, and what losing a member does to the group.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use strom_protocol::ErrorCode;
use tokio::time::Instant;

use super::deadlines::{deadline_after, Timer};
use super::{now_ms, write_error, Shard};
use crate::group::{next_generation, Group, GroupState, InitialDelay};
use crate::offsets_topic::OffsetsRecord;
use crate::outcome::{JoinOutcome, JoinedMember, SyncOutcome};

impl Shard {
    /// Starts a rebalance unless one is under way, then completes the join
    /// phase if it can.
    pub(super) async fn maybe_prepare_rebalance(&mut self, group_id: &str) {
        let state = self.groups.get(group_id).map(|g| g.state);
        if matches!(
            state,
            Some(GroupState::Empty | GroupState::Stable | GroupState::CompletingRebalance)
        ) {
            self.prepare_rebalance(group_id);
        }
        self.maybe_complete_join(group_id).await;
    }

    /// Starts a join phase: waiting SyncGroups get REBALANCE_IN_PROGRESS,
    /// and the phase lasts the members' longest rebalance timeout (a group
    /// that was Empty first waits `group.initial.rebalance.delay.ms`, again
    /// while members keep joining).
    pub(super) fn prepare_rebalance(&mut self, group_id: &str) {
        let now = Instant::now();
        let wall = now_ms();
        let initial_delay_ms = self.config.group_initial_rebalance_delay_ms;
        let Some(group) = self.groups.get_mut(group_id) else {
            return;
        };
        let mut sessions = Vec::new();
        if group.state == GroupState::CompletingRebalance {
            for m in group.members.values_mut() {
                if let Some(w) = m.sync_waiter.take() {
                    let _ = w.send(SyncOutcome::error(ErrorCode::RebalanceInProgress));
                    // It was alive until now (its heartbeats queue behind the
                    // SyncGroup): a full session to rejoin.
                    let deadline = deadline_after(now, m.session_timeout_ms);
                    m.session_deadline = m.session_deadline.max(deadline);
                    sessions.push((m.member_id.clone(), m.session_deadline));
                }
            }
        }
        let was_empty = group.state == GroupState::Empty;
        group.transition(GroupState::PreparingRebalance, wall);
        group.sync_deadline = None;
        let rebalance_ms = group.rebalance_timeout_ms().max(0) as u64;
        let wait_ms = if was_empty && initial_delay_ms > 0 {
            let delay = initial_delay_ms.min(rebalance_ms.max(1));
            group.initial_delay = Some(InitialDelay {
                delay_ms: delay,
                remaining_ms: rebalance_ms.saturating_sub(delay),
                joined_in_round: false,
            });
            delay
        } else {
            group.initial_delay = None;
            rebalance_ms
        };
        let deadline = now + Duration::from_millis(wait_ms);
        group.join_deadline = Some(deadline);
        self.arm(Timer::join(group_id), deadline);
        for (member, at) in sessions {
            self.arm(Timer::session(group_id, &member), at);
        }
    }

    /// Ends the join phase once every member has rejoined, unless the
    /// initial delay still runs.
    pub(super) async fn maybe_complete_join(&mut self, group_id: &str) {
        let ready = self.groups.get(group_id).is_some_and(|g| {
            g.state == GroupState::PreparingRebalance
                && g.initial_delay.is_none()
                && g.all_members_joined()
        });
        if ready {
            self.complete_join(group_id).await;
        }
    }

    /// Ends the join phase: members that did not rejoin (dynamic ones) are
    /// dropped, the generation advances, a protocol and a leader are
    /// chosen and every waiting JoinGroup is answered.
    pub(super) async fn complete_join(&mut self, group_id: &str) {
        let now = Instant::now();
        let wall = now_ms();
        let Some(group) = self.groups.get_mut(group_id) else {
            return;
        };
        let gone: Vec<String> = group
            .members
            .values()
            .filter(|m| m.join_waiter.is_none() && m.group_instance_id.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for id in gone {
            group.remove_member(&id);
        }
        if !group.members.is_empty() && group.members.values().all(|m| m.join_waiter.is_none()) {
            // Only static members that did not rejoin: wait another round.
            let deadline = deadline_after(now, group.rebalance_timeout_ms());
            group.join_deadline = Some(deadline);
            self.arm(Timer::join(group_id), deadline);
            return;
        }
        group.generation_id = next_generation(group.generation_id);
        group.join_deadline = None;
        group.initial_delay = None;
        if group.members.is_empty() {
            group.protocol_name = None;
            group.leader_id = None;
            group.transition(GroupState::Empty, wall);
            let value = group.metadata_value(wall);
            if let Err(code) = self
                .writer
                .append(vec![OffsetsRecord::Group {
                    group: group_id.to_string(),
                    value: Some(value),
                }])
                .await
            {
                tracing::warn!(group = group_id, error = %code, "cannot record an empty group");
            }
            return;
        }
        group.protocol_name = group.select_protocol();
        let leader_joined = group
            .leader_id
            .as_ref()
            .and_then(|l| group.members.get(l))
            .is_some_and(|m| m.join_waiter.is_some());
        if !leader_joined {
            group.leader_id = group
                .join_order
                .iter()
                .find(|id| {
                    group
                        .members
                        .get(*id)
                        .is_some_and(|m| m.join_waiter.is_some())
                })
                .cloned();
        }
        group.transition(GroupState::CompletingRebalance, wall);
        group.synced.clear();
        let sync_deadline = deadline_after(now, group.rebalance_timeout_ms());
        group.sync_deadline = Some(sync_deadline);
        let leader = group.leader_id.clone().unwrap_or_default();
        let everyone = joined_members(group);
        let mut sessions = Vec::new();
        for m in group.members.values_mut() {
            if let Some(w) = m.join_waiter.take() {
                let is_leader = m.member_id == leader;
                let _ = w.send(JoinOutcome {
                    error: None,
                    generation_id: group.generation_id,
                    protocol_type: group.protocol_type.clone(),
                    protocol_name: group.protocol_name.clone(),
                    leader: leader.clone(),
                    skip_assignment: false,
                    member_id: m.member_id.clone(),
                    members: if is_leader {
                        everyone.clone()
                    } else {
                        Vec::new()
                    },
                });
            }
            m.is_new = false;
            m.session_deadline = deadline_after(now, m.session_timeout_ms);
            sessions.push((m.member_id.clone(), m.session_deadline));
        }
        let generation = group.generation_id;
        tracing::info!(group = group_id, generation, members = sessions.len(), protocol = ?group.protocol_name, "group rebalanced");
        for (member, deadline) in sessions {
            self.arm(Timer::session(group_id, &member), deadline);
        }
        self.arm(Timer::sync(group_id, generation), sync_deadline);
    }

    /// Writes the leader's assignment and, once it is committed, completes
    /// every waiting SyncGroup and makes the group Stable.
    pub(super) async fn store_assignment(
        &mut self,
        group_id: &str,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
    ) {
        let wall = now_ms();
        let Some(group) = self.groups.get_mut(group_id) else {
            return;
        };
        let mut by_member: HashMap<String, Bytes> = assignments.into_iter().collect();
        for id in group.members.keys() {
            by_member.entry(id.clone()).or_default();
        }
        let mut value = group.metadata_value(wall);
        for m in &mut value.members {
            m.assignment = by_member.get(&m.member_id).cloned().unwrap_or_default();
        }
        let result = self
            .writer
            .append(vec![OffsetsRecord::Group {
                group: group_id.to_string(),
                value: Some(value),
            }])
            .await;
        let Some(group) = self.groups.get_mut(group_id) else {
            return;
        };
        if group.state != GroupState::CompletingRebalance || group.generation_id != generation {
            return;
        }
        match result {
            Ok(()) => {
                group.transition(GroupState::Stable, wall);
                // Members that have not sent SyncGroup yet still must, by the
                // same deadline.
                if group.members.keys().all(|id| group.synced.contains(id)) {
                    group.sync_deadline = None;
                }
                for m in group.members.values_mut() {
                    m.assignment = by_member.remove(&m.member_id).unwrap_or_default();
                    if let Some(w) = m.sync_waiter.take() {
                        let _ = w.send(SyncOutcome {
                            error: None,
                            protocol_type: group.protocol_type.clone(),
                            protocol_name: group.protocol_name.clone(),
                            assignment: m.assignment.clone(),
                        });
                    }
                }
            }
            Err(code) => {
                let code = write_error(code);
                for m in group.members.values_mut() {
                    m.assignment = Bytes::new();
                    if let Some(w) = m.sync_waiter.take() {
                        let _ = w.send(SyncOutcome::error(code));
                    }
                }
                self.maybe_prepare_rebalance(group_id).await;
            }
        }
    }

    /// What removing a member (leave or expiry) does to the group.
    pub(super) async fn after_member_removed(&mut self, group_id: &str) {
        match self.groups.get(group_id).map(|g| g.state) {
            Some(GroupState::Stable | GroupState::CompletingRebalance) => {
                self.prepare_rebalance(group_id);
                self.maybe_complete_join(group_id).await;
            }
            Some(GroupState::PreparingRebalance) => self.maybe_complete_join(group_id).await,
            _ => {}
        }
    }
}

/// Members in join order with their metadata for the chosen protocol.
pub(super) fn joined_members(group: &Group) -> Vec<JoinedMember> {
    let protocol = group.protocol_name.clone().unwrap_or_default();
    group
        .join_order
        .iter()
        .filter_map(|id| group.members.get(id))
        .map(|m| JoinedMember {
            member_id: m.member_id.clone(),
            group_instance_id: m.group_instance_id.clone(),
            metadata: m.metadata(&protocol),
        })
        .collect()
}
