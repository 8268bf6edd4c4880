//! Committed offsets, the GroupMetadataManager side of a shard (Kafka's
//! name): OffsetCommit, OffsetFetch, OffsetDelete and DeleteGroups, and
//! the periodic expiry of offsets past `offsets.retention.minutes`. Each
//! change is written to the partition first and applied only once the
//! write is committed, so a failed write changes nothing.

use strom_protocol::ErrorCode;
use tokio::time::Instant;

use super::membership::validate_member;
use super::{now_ms, write_error, Shard};
use crate::group::{Group, GroupState};
use crate::offsets_topic::{OffsetCommitValue, OffsetsRecord, MAX_RECORD_STRING_BYTES};
use crate::outcome::{CommitParams, FetchedOffset};

impl Shard {
    /// With a member id or generation the commit must come from a member
    /// of the current generation, and not while the group waits for its
    /// assignment; without either it is taken only by a group without
    /// members (a consumer that assigns itself partitions). The offsets go
    /// in one batch; one whose metadata is too long is refused alone.
    pub(super) async fn commit(
        &mut self,
        p: CommitParams,
    ) -> Result<Vec<Option<ErrorCode>>, ErrorCode> {
        let wall = now_ms();
        let now = Instant::now();
        if !self.groups.contains_key(&p.group_id) {
            if p.generation_id >= 0 {
                // OffsetCommit v9+ says so; older versions turn this into
                // ILLEGAL_GENERATION.
                return Err(ErrorCode::GroupIdNotFound);
            }
            self.groups
                .insert(p.group_id.clone(), Group::new(p.group_id.clone(), wall));
        }
        let Some(group) = self.groups.get(&p.group_id) else {
            return Err(ErrorCode::CoordinatorNotAvailable);
        };
        let member_given = !p.member_id.is_empty() || p.group_instance_id.is_some();
        match group.state {
            GroupState::Dead => return Err(ErrorCode::CoordinatorNotAvailable),
            GroupState::Empty if p.generation_id < 0 => {}
            _ if p.generation_id >= 0 || member_given => {
                validate_member(group, &p.member_id, p.group_instance_id.as_deref())?;
                if p.generation_id != group.generation_id {
                    return Err(ErrorCode::IllegalGeneration);
                }
                if group.state == GroupState::CompletingRebalance {
                    return Err(ErrorCode::RebalanceInProgress);
                }
            }
            _ => return Err(ErrorCode::UnknownMemberId),
        }
        let mut results = Vec::with_capacity(p.offsets.len());
        let mut records = Vec::new();
        for o in &p.offsets {
            if o.metadata.len()
                > self
                    .config
                    .offset_metadata_max_bytes
                    .min(MAX_RECORD_STRING_BYTES)
            {
                results.push(Some(ErrorCode::OffsetMetadataTooLarge));
                continue;
            }
            results.push(None);
            records.push(OffsetsRecord::Offset {
                group: p.group_id.clone(),
                topic: o.topic.clone(),
                partition: o.partition,
                value: Some(OffsetCommitValue {
                    offset: o.offset,
                    leader_epoch: o.leader_epoch,
                    metadata: o.metadata.clone(),
                    commit_timestamp: wall,
                }),
            });
        }
        if records.is_empty() {
            return Ok(results);
        }
        if let Err(code) = self.writer.append(records.clone()).await {
            let code = write_error(code);
            return Ok(results.into_iter().map(|r| r.or(Some(code))).collect());
        }
        if let Some(group) = self.groups.get_mut(&p.group_id) {
            for r in records {
                if let OffsetsRecord::Offset {
                    topic,
                    partition,
                    value: Some(v),
                    ..
                } = r
                {
                    group.offsets.insert((topic, partition), v);
                }
            }
        }
        if member_given {
            self.refresh_session(&p.group_id, &p.member_id, now);
        }
        Ok(results)
    }

    /// The listed partitions (offset -1 where nothing is committed), or
    /// every committed offset of the group in topic-partition order.
    pub(super) fn fetch_offsets(
        &self,
        group_id: &str,
        partitions: Option<Vec<(String, i32)>>,
    ) -> Vec<FetchedOffset> {
        let group = self.groups.get(group_id);
        let fetched = |topic: &str, partition: i32, v: Option<&OffsetCommitValue>| FetchedOffset {
            topic: topic.to_string(),
            partition,
            offset: v.map_or(-1, |v| v.offset),
            leader_epoch: v.map_or(-1, |v| v.leader_epoch),
            metadata: v.map(|v| v.metadata.clone()).unwrap_or_default(),
        };
        match partitions {
            Some(list) => list
                .iter()
                .map(|(t, p)| fetched(t, *p, group.and_then(|g| g.offsets.get(&(t.clone(), *p)))))
                .collect(),
            None => {
                let mut all: Vec<FetchedOffset> = group
                    .map(|g| {
                        g.offsets
                            .iter()
                            .map(|((t, p), v)| fetched(t, *p, Some(v)))
                            .collect()
                    })
                    .unwrap_or_default();
                all.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
                all
            }
        }
    }

    /// Only an Empty group is deleted: a tombstone for each of its offsets,
    /// then one for the group.
    pub(super) async fn delete_group(&mut self, group_id: &str) -> Option<ErrorCode> {
        let Some(group) = self.groups.get(group_id) else {
            return Some(ErrorCode::GroupIdNotFound);
        };
        match group.state {
            GroupState::Dead => return Some(ErrorCode::GroupIdNotFound),
            GroupState::Empty => {}
            _ => return Some(ErrorCode::NonEmptyGroup),
        }
        let mut records: Vec<OffsetsRecord> = group
            .offsets
            .keys()
            .map(|(t, p)| OffsetsRecord::Offset {
                group: group_id.to_string(),
                topic: t.clone(),
                partition: *p,
                value: None,
            })
            .collect();
        records.push(OffsetsRecord::Group {
            group: group_id.to_string(),
            value: None,
        });
        if let Err(code) = self.writer.append(records).await {
            return Some(write_error(code));
        }
        self.groups.remove(group_id);
        tracing::info!(group = group_id, "deleted group");
        None
    }

    /// A group with members loses offsets only if it is a consumer group,
    /// and only of topics none of its members subscribes to.
    pub(super) async fn delete_offsets(
        &mut self,
        group_id: &str,
        partitions: Vec<(String, i32)>,
    ) -> Result<Vec<Option<ErrorCode>>, ErrorCode> {
        let Some(group) = self.groups.get(group_id) else {
            return Err(ErrorCode::GroupIdNotFound);
        };
        let subscribed = match group.state {
            GroupState::Dead => return Err(ErrorCode::GroupIdNotFound),
            GroupState::Empty => None,
            _ if group.protocol_type.as_deref() == Some("consumer") => {
                Some(group.subscribed_topics())
            }
            _ => return Err(ErrorCode::NonEmptyGroup),
        };
        let results: Vec<Option<ErrorCode>> = partitions
            .iter()
            .map(|(t, _)| match &subscribed {
                Some(Some(topics)) if topics.contains(t) => Some(ErrorCode::GroupSubscribedToTopic),
                _ => None,
            })
            .collect();
        let doomed: Vec<(String, i32)> = partitions
            .into_iter()
            .zip(&results)
            .filter(|(tp, r)| r.is_none() && group.offsets.contains_key(tp))
            .map(|(tp, _)| tp)
            .collect();
        if doomed.is_empty() {
            return Ok(results);
        }
        let records = doomed
            .iter()
            .map(|(t, p)| OffsetsRecord::Offset {
                group: group_id.to_string(),
                topic: t.clone(),
                partition: *p,
                value: None,
            })
            .collect();
        self.writer.append(records).await.map_err(write_error)?;
        if let Some(group) = self.groups.get_mut(group_id) {
            for tp in doomed {
                group.offsets.remove(&tp);
            }
        }
        Ok(results)
    }

    /// Drops offsets past `offsets.retention.minutes`: all offsets of a
    /// consumer group that has been empty that long, and any offset of a
    /// group that only stores offsets, by commit time. A group left with
    /// nothing is deleted.
    pub(super) async fn expire_offsets(&mut self) {
        let wall = now_ms();
        let retention = self.config.offsets_retention_ms;
        let mut records = Vec::new();
        let mut emptied = Vec::new();
        for g in self.groups.values() {
            if g.state != GroupState::Empty {
                continue;
            }
            let simple = g.protocol_type.is_none();
            let expired: Vec<&(String, i32)> = g
                .offsets
                .iter()
                .filter(|(_, v)| {
                    let since = if simple {
                        v.commit_timestamp
                    } else {
                        g.state_timestamp_ms
                    };
                    wall.saturating_sub(since) >= retention
                })
                .map(|(k, _)| k)
                .collect();
            for (t, p) in &expired {
                records.push(OffsetsRecord::Offset {
                    group: g.group_id.clone(),
                    topic: t.clone(),
                    partition: *p,
                    value: None,
                });
            }
            if expired.len() == g.offsets.len() {
                records.push(OffsetsRecord::Group {
                    group: g.group_id.clone(),
                    value: None,
                });
                emptied.push(g.group_id.clone());
            }
        }
        if records.is_empty() {
            return;
        }
        if let Err(code) = self.writer.append(records.clone()).await {
            tracing::warn!(error = %code, "cannot write expired offsets");
            return;
        }
        for r in records {
            if let OffsetsRecord::Offset {
                group,
                topic,
                partition,
                ..
            } = r
            {
                if let Some(g) = self.groups.get_mut(&group) {
                    g.offsets.remove(&(topic, partition));
                }
            }
        }
        for id in emptied {
            tracing::info!(group = %id, "expired the offsets of an empty group");
            self.groups.remove(&id);
        }
    }
}
