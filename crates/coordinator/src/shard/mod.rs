//! One `__consumer_offsets` partition's groups, owned by one task.
//!
//! Every operation on the groups of a partition runs on that partition's
//! task, one at a time, so a group's state changes in a single order. A
//! request that must wait (a JoinGroup until the join phase ends, a
//! SyncGroup until the leader's assignment) leaves its reply channel with
//! the member and is answered later by whatever completes it. Changes that
//! must survive a restart (group metadata, committed offsets) are appended
//! to the partition before they take effect or are acknowledged.
//!
//! This file holds the shard itself: its task loop, the commands it
//! serves, and the replay that rebuilds its groups from the partition when
//! leadership arrives. The rest follows Kafka's classes:
//!
//! - [`membership`]: JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//!   DescribeGroups and ListGroups (Kafka's `GroupCoordinator`);
//! - [`rebalance`]: the join and sync phases that move a group from one
//!   generation to the next;
//! - [`deadlines`]: sessions, phases and pending member ids running out,
//!   one keyed timer each ([`crate::timers`]);
//! - [`offsets`]: committed offsets, their expiry, and deleting groups
//!   (Kafka's `GroupMetadataManager`).

mod deadlines;
mod membership;
mod offsets;
mod rebalance;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use strom_protocol::ErrorCode;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::group::{Group, GroupState, Member};
use crate::offsets_topic::OffsetsRecord;
use crate::outcome::*;
use crate::timers::KeyedTimers;
use deadlines::{deadline_after, Timer};
use strom_config::GroupKeys as GroupConfig;
use strom_runtime::clock::now_ms;

/// Appends records to this shard's `__consumer_offsets` partition and
/// waits until they are committed.
pub trait OffsetsWriter: Send + Sync {
    /// Appends `records` as one batch.
    fn append(
        &self,
        records: Vec<OffsetsRecord>,
    ) -> Pin<Box<dyn Future<Output = Result<(), ErrorCode>> + Send + '_>>;
}

/// A request to a shard, with the channel its answer goes back on.
pub(crate) enum Command {
    Join(JoinParams, oneshot::Sender<JoinOutcome>),
    Sync(SyncParams, oneshot::Sender<SyncOutcome>),
    Heartbeat(HeartbeatParams, oneshot::Sender<Option<ErrorCode>>),
    Leave(
        String,
        Vec<LeavingMember>,
        oneshot::Sender<Result<Vec<Option<ErrorCode>>, ErrorCode>>,
    ),
    Commit(
        CommitParams,
        oneshot::Sender<Result<Vec<Option<ErrorCode>>, ErrorCode>>,
    ),
    FetchOffsets(
        String,
        Option<Vec<(String, i32)>>,
        oneshot::Sender<Vec<FetchedOffset>>,
    ),
    Describe(String, oneshot::Sender<Option<GroupDescription>>),
    List(oneshot::Sender<Vec<GroupListing>>),
    Delete(String, oneshot::Sender<Option<ErrorCode>>),
    DeleteOffsets(
        String,
        Vec<(String, i32)>,
        oneshot::Sender<Result<Vec<Option<ErrorCode>>, ErrorCode>>,
    ),
}

/// Kafka's mapping of append failures to what group clients expect.
fn write_error(code: ErrorCode) -> ErrorCode {
    match code {
        ErrorCode::UnknownTopicOrPartition
        | ErrorCode::NotEnoughReplicas
        | ErrorCode::NotEnoughReplicasAfterAppend
        | ErrorCode::RequestTimedOut => ErrorCode::CoordinatorNotAvailable,
        ErrorCode::NotLeaderOrFollower | ErrorCode::KafkaStorageError => ErrorCode::NotCoordinator,
        ErrorCode::MessageTooLarge
        | ErrorCode::RecordListTooLarge
        | ErrorCode::InvalidFetchSize => ErrorCode::UnknownServerError,
        other => other,
    }
}

/// The groups of one partition. Only the partition's task touches them, so
/// nothing here is locked.
pub(crate) struct Shard {
    groups: HashMap<String, Group>,
    timers: KeyedTimers<Timer>,
    config: Arc<GroupConfig>,
    writer: Arc<dyn OffsetsWriter>,
}

impl Shard {
    /// An empty shard. Loading it: [`Shard::replay`] every record of the
    /// partition in order, then [`Shard::start_sessions`].
    pub(crate) fn new(config: Arc<GroupConfig>, writer: Arc<dyn OffsetsWriter>) -> Self {
        Self {
            groups: HashMap::new(),
            timers: KeyedTimers::default(),
            config,
            writer,
        }
    }

    /// Starts the session timers of the members the records named: each
    /// gets a full session from now to show it is still there.
    pub(crate) fn start_sessions(&mut self) {
        let sessions: Vec<(String, String, Instant)> = self
            .groups
            .values()
            .flat_map(|g| {
                g.members
                    .values()
                    .map(|m| (g.group_id.clone(), m.member_id.clone(), m.session_deadline))
            })
            .collect();
        for (group, member, deadline) in sessions {
            self.arm(Timer::Session { group, member }, deadline);
        }
    }

    /// Applies one record read from the partition.
    pub(crate) fn replay(&mut self, record: OffsetsRecord) {
        let (now, wall) = (Instant::now(), now_ms());
        match record {
            OffsetsRecord::Offset {
                group,
                topic,
                partition,
                value,
            } => {
                let g = self
                    .groups
                    .entry(group.clone())
                    .or_insert_with(|| Group::new(group, wall));
                match value {
                    Some(v) => {
                        g.offsets.insert((topic, partition), v);
                    }
                    None => {
                        g.offsets.remove(&(topic, partition));
                    }
                }
            }
            OffsetsRecord::Group { group, value: None } => {
                self.groups.remove(&group);
            }
            OffsetsRecord::Group {
                group,
                value: Some(v),
            } => {
                let offsets = self
                    .groups
                    .remove(&group)
                    .map(|g| g.offsets)
                    .unwrap_or_default();
                let mut g = Group::new(group, v.current_state_timestamp.max(0));
                g.offsets = offsets;
                g.protocol_type = (!v.protocol_type.is_empty()).then_some(v.protocol_type);
                g.protocol_name = v.protocol.clone();
                g.generation_id = v.generation;
                g.leader_id = v.leader;
                for m in v.members {
                    g.add_member(Member {
                        member_id: m.member_id,
                        group_instance_id: m.group_instance_id,
                        client_id: m.client_id,
                        client_host: m.client_host,
                        rebalance_timeout_ms: m.rebalance_timeout_ms,
                        session_timeout_ms: m.session_timeout_ms,
                        protocols: v
                            .protocol
                            .clone()
                            .map(|p| vec![(p, m.subscription)])
                            .unwrap_or_default(),
                        assignment: m.assignment,
                        join_waiter: None,
                        sync_waiter: None,
                        session_deadline: deadline_after(now, m.session_timeout_ms),
                        is_new: false,
                    });
                }
                g.state = if g.members.is_empty() {
                    GroupState::Empty
                } else {
                    GroupState::Stable
                };
                self.groups.insert(g.group_id.clone(), g);
            }
        }
    }

    /// Serves commands and timers until the channel closes (the partition
    /// moved away), then fails whatever still waits with NOT_COORDINATOR.
    pub(crate) async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut expiration = tokio::time::interval(Duration::from_millis(
            self.config.offsets_retention_check_interval_ms.max(1),
        ));
        expiration.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        expiration.reset();
        loop {
            let next = self.timers.next_deadline();
            tokio::select! {
                command = commands.recv() => match command {
                    Some(c) => self.handle(c).await,
                    None => break,
                },
                _ = sleep_until_opt(next) => {
                    // Requests that arrived before the deadlines passed
                    // (heartbeats queued behind a slow write) count first.
                    for _ in 0..commands.len() {
                        match commands.try_recv() {
                            Ok(c) => self.handle(c).await,
                            Err(_) => break,
                        }
                    }
                    self.fire_timers().await
                }
                _ = expiration.tick() => self.expire_offsets().await,
                _ = shutdown.changed() => if *shutdown.borrow() { break },
            }
        }
        for g in self.groups.values_mut() {
            for m in g.members.values_mut() {
                if let Some(w) = m.join_waiter.take() {
                    let _ = w.send(JoinOutcome::error(
                        m.member_id.clone(),
                        ErrorCode::NotCoordinator,
                    ));
                }
                if let Some(w) = m.sync_waiter.take() {
                    let _ = w.send(SyncOutcome::error(ErrorCode::NotCoordinator));
                }
            }
        }
    }

    async fn handle(&mut self, command: Command) {
        match command {
            Command::Join(p, reply) => self.join(p, reply).await,
            Command::Sync(p, reply) => self.sync(p, reply).await,
            Command::Heartbeat(p, reply) => {
                let _ = reply.send(self.heartbeat(&p));
            }
            Command::Leave(group, members, reply) => {
                let r = self.leave(&group, members).await;
                let _ = reply.send(r);
            }
            Command::Commit(p, reply) => {
                let r = self.commit(p).await;
                let _ = reply.send(r);
            }
            Command::FetchOffsets(group, partitions, reply) => {
                let _ = reply.send(self.fetch_offsets(&group, partitions));
            }
            Command::Describe(group, reply) => {
                let _ = reply.send(self.describe(&group));
            }
            Command::List(reply) => {
                let _ = reply.send(self.list());
            }
            Command::Delete(group, reply) => {
                let r = self.delete_group(&group).await;
                let _ = reply.send(r);
            }
            Command::DeleteOffsets(group, partitions, reply) => {
                let r = self.delete_offsets(&group, partitions).await;
                let _ = reply.send(r);
            }
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
