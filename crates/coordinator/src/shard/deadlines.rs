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

/// `timeout_ms` from `now`; a negative timeout (only a crafted record
/// holds one) counts as zero.
pub(super) fn deadline_after(now: Instant, timeout_ms: i32) -> Instant {
    now + Duration::from_millis(timeout_ms.max(0) as u64)
}

/// A shard's timer key: at most one live timer each
/// ([`KeyedTimers`](crate::timers::KeyedTimers)).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum Timer {
    /// The member's `session_deadline`.
    Session { group: String, member: String },
    /// The deadline of a member id handed out with MEMBER_ID_REQUIRED.
    Pending { group: String, member: String },
    /// The group's `join_deadline`, while it prepares a rebalance.
    Join { group: String },
    /// The group's `sync_deadline` in this generation.
    Sync { group: String, generation: i32 },
}

impl Timer {
    pub(super) fn session(group: &str, member: &str) -> Self {
        Self::Session {
            group: group.to_string(),
            member: member.to_string(),
        }
    }

    pub(super) fn pending(group: &str, member: &str) -> Self {
        Self::Pending {
            group: group.to_string(),
            member: member.to_string(),
        }
    }

    pub(super) fn join(group: &str) -> Self {
        Self::Join {
            group: group.to_string(),
        }
    }

    pub(super) fn sync(group: &str, generation: i32) -> Self {
        Self::Sync {
            group: group.to_string(),
            generation,
        }
    }
}

impl Shard {
    /// Makes `timer` fire at `at`, unless it already fires earlier.
    pub(super) fn arm(&mut self, timer: Timer, at: Instant) {
        self.timers.arm(timer, at);
    }

    /// Gives a member a full session from `now`.
    pub(super) fn refresh_session(&mut self, group_id: &str, member_id: &str, now: Instant) {
        let Some(m) = self
            .groups
            .get_mut(group_id)
            .and_then(|g| g.members.get_mut(member_id))
        else {
            return;
        };
        m.session_deadline = deadline_after(now, m.session_timeout_ms);
        let deadline = m.session_deadline;
        self.arm(Timer::session(group_id, member_id), deadline);
    }

    /// Acts on every timer due at `now` whose deadline has really passed;
    /// one that fired early (the deadline moved later since it was armed)
    /// is armed again for the deadline, one whose member or phase is gone
    /// is dropped.
    pub(super) async fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some(timer) = self.timers.pop_due(now) {
            match self.deadline_of(&timer) {
                None => {}
                Some(deadline) if deadline > now => self.arm(timer, deadline),
                Some(_) => self.on_deadline(timer, now).await,
            }
        }
    }

    /// The deadline `timer` stands for in the groups' state, if it still
    /// applies.
    fn deadline_of(&self, timer: &Timer) -> Option<Instant> {
        match timer {
            Timer::Session { group, member } => self
                .groups
                .get(group)?
                .members
                .get(member)
                .map(|m| m.session_deadline),
            Timer::Pending { group, member } => {
                self.groups.get(group)?.pending_members.get(member).copied()
            }
            Timer::Join { group } => {
                self.groups
                    .get(group)
                    .filter(|g| g.state == GroupState::PreparingRebalance)?
                    .join_deadline
            }
            Timer::Sync { group, generation } => {
                self.groups
                    .get(group)
                    .filter(|g| {
                        matches!(
                            g.state,
                            GroupState::CompletingRebalance | GroupState::Stable
                        ) && g.generation_id == *generation
                    })?
                    .sync_deadline
            }
        }
    }

    async fn on_deadline(&mut self, timer: Timer, now: Instant) {
        match timer {
            Timer::Session { group, member } => {
                self.on_session_deadline(&group, &member, now).await
            }
            Timer::Pending { group, member } => {
                if let Some(g) = self.groups.get_mut(&group) {
                    g.pending_members.remove(&member);
                }
                self.maybe_complete_join(&group).await;
            }
            Timer::Join { group } => self.on_join_deadline(&group, now).await,
            Timer::Sync { group, generation } => self.on_sync_deadline(&group, generation).await,
        }
    }

    /// A member that let its session pass is removed, unless it waits in
    /// JoinGroup or SyncGroup: that shows it is alive (a new member only up
    /// to its rebalance timeout), so it gets another session.
    async fn on_session_deadline(&mut self, group_id: &str, member_id: &str, now: Instant) {
        let Some(group) = self.groups.get_mut(group_id) else {
            return;
        };
        let Some(m) = group.members.get(member_id) else {
            return;
        };
        if m.sync_waiter.is_some() || (m.join_waiter.is_some() && !m.is_new) {
            return self.refresh_session(group_id, member_id, now);
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

    /// The join phase ends, unless the initial rebalance delay takes
    /// another step because a member joined during the last one.
    async fn on_join_deadline(&mut self, group_id: &str, now: Instant) {
        let Some(group) = self.groups.get_mut(group_id) else {
            return;
        };
        if let Some(delay) = group.initial_delay.as_mut() {
            if delay.joined_in_round && delay.remaining_ms > 0 {
                let next = delay.delay_ms.min(delay.remaining_ms);
                delay.remaining_ms -= next;
                delay.joined_in_round = false;
                let deadline = now + Duration::from_millis(next);
                group.join_deadline = Some(deadline);
                self.arm(Timer::join(group_id), deadline);
                return;
            }
            group.initial_delay = None;
        }
        self.complete_join(group_id).await;
    }

    /// The sync phase ended: if the leader did not send the assignment, or
    /// some members never asked for theirs, the members that did not sync
    /// are removed and the group rebalances (Kafka's pending-sync expiry).
    async fn on_sync_deadline(&mut self, group_id: &str, generation: i32) {
        let Some(group) = self.groups.get_mut(group_id) else {
            return;
        };
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
