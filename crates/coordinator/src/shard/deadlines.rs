//! What a shard does when a deadline passes: a member's session ends (it
//! is removed and the group rebalances), a join phase ends, a sync phase
//! ends (members that did not sync are removed), an unused pending member
//! id lapses.
//!
//! Deadlines live in the group state; the shard's [`KeyedTimers`] holds
//! one timer per member or phase. A timer that fires only wakes the shard:
//! if the state's deadline has moved later the timer is armed again, if
//! the phase is over it is ignored, and only a deadline that has passed
//! acts.
//!
//! [`KeyedTimers`]: crate::timers::KeyedTimers

use std::time::Duration;

use strom_protocol::ErrorCode;
use tokio::time::Instant;

use super::membership::fail_waiters;
use super::Shard;
use crate::group::GroupState;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum Timer {
    Session { group: String, member: String },
    Pending { group: String, member: String },
    Join { group: String },
    Sync { group: String, generation: i32 },
}

impl Shard {
    pub(super) fn schedule(&mut self, at: Instant, timer: Timer) {
        self.timers.arm(timer, at);
    }

    pub(super) fn refresh_session(&mut self, group_id: &str, member_id: &str, now: Instant) {
        let Some(m) = self
            .groups
            .get_mut(group_id)
            .and_then(|g| g.members.get_mut(member_id))
        else {
            return;
        };
        m.session_deadline = now + Duration::from_millis(m.session_timeout_ms.max(0) as u64);
        let deadline = m.session_deadline;
        self.schedule(
            deadline,
            Timer::Session {
                group: group_id.to_string(),
                member: member_id.to_string(),
            },
        );
    }

    pub(super) async fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some(timer) = self.timers.pop_due(now) {
            match timer {
                Timer::Session { group, member } => {
                    self.on_session_timer(&group, &member, now).await
                }
                Timer::Pending { group, member } => {
                    let deadline = self
                        .groups
                        .get(&group)
                        .and_then(|g| g.pending_members.get(&member).copied());
                    match deadline {
                        Some(d) if d > now => self.schedule(d, Timer::Pending { group, member }),
                        Some(_) => {
                            if let Some(g) = self.groups.get_mut(&group) {
                                g.pending_members.remove(&member);
                            }
                            self.maybe_complete_join(&group).await;
                        }
                        None => {}
                    }
                }
                Timer::Join { group } => self.on_join_deadline(&group, now).await,
                Timer::Sync { group, generation } => {
                    self.on_sync_deadline(&group, generation, now).await
                }
            }
        }
    }

    async fn on_session_timer(&mut self, group_id: &str, member_id: &str, now: Instant) {
        let Some(group) = self.groups.get_mut(group_id) else {
            return;
        };
        let Some(m) = group.members.get(member_id) else {
            return;
        };
        if m.session_deadline > now {
            // Refreshed since this was armed.
            let deadline = m.session_deadline;
            self.schedule(
                deadline,
                Timer::Session {
                    group: group_id.to_string(),
                    member: member_id.to_string(),
                },
            );
            return;
        }
        // A member waiting in JoinGroup or SyncGroup is alive (a new member
        // only up to its rebalance timeout).
        let waiting = m.sync_waiter.is_some() || (m.join_waiter.is_some() && !m.is_new);
        if waiting {
            let deadline = now + Duration::from_millis(m.session_timeout_ms.max(0) as u64);
            if let Some(m) = group.members.get_mut(member_id) {
                m.session_deadline = deadline;
            }
            self.schedule(
                deadline,
                Timer::Session {
                    group: group_id.to_string(),
                    member: member_id.to_string(),
                },
            );
            return;
        }
        tracing::info!(
            group = group_id,
            member = member_id,
            "member session expired"
        );
        if let Some(m) = group.remove_member(member_id) {
            fail_waiters(m, ErrorCode::UnknownMemberId);
        }
        self.after_member_removed(group_id).await;
    }

    async fn on_join_deadline(&mut self, group_id: &str, now: Instant) {
        let Some(group) = self.groups.get_mut(group_id) else {
            return;
        };
        if group.state != GroupState::PreparingRebalance {
            return;
        }
        match group.join_deadline {
            None => return,
            Some(d) if d > now => {
                // A later round's deadline.
                return self.schedule(
                    d,
                    Timer::Join {
                        group: group_id.to_string(),
                    },
                );
            }
            Some(_) => {}
        }
        if let Some(delay) = group.initial_delay.as_mut() {
            if delay.joined_in_round && delay.remaining_ms > 0 {
                let next = delay.delay_ms.min(delay.remaining_ms);
                delay.remaining_ms -= next;
                delay.joined_in_round = false;
                let deadline = now + Duration::from_millis(next);
                group.join_deadline = Some(deadline);
                self.schedule(
                    deadline,
                    Timer::Join {
                        group: group_id.to_string(),
                    },
                );
                return;
            }
            group.initial_delay = None;
        }
        self.complete_join(group_id).await;
    }

    /// The sync phase ended: if the leader did not send the assignment, or
    /// some members never asked for theirs, the members that did not sync
    /// are removed and the group rebalances (Kafka's pending-sync expiry).
    async fn on_sync_deadline(&mut self, group_id: &str, generation: i32, now: Instant) {
        let Some(group) = self.groups.get_mut(group_id) else {
            return;
        };
        if !matches!(
            group.state,
            GroupState::CompletingRebalance | GroupState::Stable
        ) || group.generation_id != generation
        {
            return;
        }
        match group.sync_deadline {
            None => return,
            Some(d) if d > now => {
                return self.schedule(
                    d,
                    Timer::Sync {
                        group: group_id.to_string(),
                        generation,
                    },
                );
            }
            Some(_) => {}
        }
        let laggards: Vec<String> = group
            .members
            .keys()
            .filter(|id| !group.synced.contains(*id))
            .cloned()
            .collect();
        tracing::info!(
            group = group_id,
            generation,
            ?laggards,
            "sync phase timed out"
        );
        for id in laggards {
            if let Some(m) = group.remove_member(&id) {
                fail_waiters(m, ErrorCode::UnknownMemberId);
            }
        }
        self.prepare_rebalance(group_id);
        self.maybe_complete_join(group_id).await;
    }
}
