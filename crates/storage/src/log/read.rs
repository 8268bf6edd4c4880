//! Reading the log: whole batches from an offset for Fetch (bounded by
//! the high watermark or the log end), and the lookups of ListOffsets (by
//! timestamp, the largest timestamp, v0's segment offsets). The mutex is
//! held only to plan a read; the files are read through
//! [`SegmentReader`] snapshots after it is released.

use bytes::Bytes;
use strom_protocol::batch::BatchIter;

use super::{Log, LogOffsets};
use crate::error::{Result, StorageError};
use crate::segment::{FoundRecord, LogSegment, SegmentReader};

/// How far a read may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadBound {
    /// Up to the high watermark (consumers).
    HighWatermark,
    /// Up to the log end offset (replicas).
    LogEnd,
}

/// The result of a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogReadInfo {
    /// Whole batches, starting with the batch that holds the requested
    /// offset.
    pub records: Bytes,
    /// High watermark when the read started.
    pub high_watermark: i64,
    /// Log start offset when the read started.
    pub log_start_offset: i64,
    /// Log end offset when the read started.
    pub log_end_offset: i64,
}

impl Log {
    /// Reads whole batches starting with the one holding `start_offset`, up
    /// to `max_bytes` (or one whole batch when `min_one_batch` and the first
    /// batch is larger), never past `bound`.
    pub fn read(
        &self,
        start_offset: i64,
        max_bytes: usize,
        bound: ReadBound,
        min_one_batch: bool,
    ) -> Result<LogReadInfo> {
        self.read_within(start_offset, max_bytes, bound, min_one_batch, |_, most| {
            Some(most)
        })
    }

    /// [`Log::read`], with the bytes to copy granted first: once the read
    /// is planned and before anything is copied, `grant(least, most)` is
    /// called with the first batch's size and the bytes the read would
    /// copy, and answers how many to copy (between the two; fewer means
    /// fewer batches) or `None` to copy nothing (the read returns no
    /// records). It is not called when there is nothing to read. Lets a
    /// caller hold the copy against a memory budget.
    pub fn read_within(
        &self,
        start_offset: i64,
        max_bytes: usize,
        bound: ReadBound,
        min_one_batch: bool,
        grant: impl FnOnce(usize, usize) -> Option<usize>,
    ) -> Result<LogReadInfo> {
        struct Plan {
            readers: Vec<(SegmentReader, u64)>,
            limit: Option<(i64, SegmentReader, u64)>,
        }
        let (plan, offsets) = {
            let s = self.state.lock();
            s.check_online(&self.topic_partition)?;
            let offsets = LogOffsets {
                log_start_offset: s.log_start_offset,
                log_end_offset: s.log_end_offset,
                high_watermark: s.high_watermark,
                recovery_point: s.recovery_point,
            };
            if start_offset < s.log_start_offset || start_offset > s.log_end_offset {
                return Err(StorageError::OffsetOutOfRange {
                    offset: start_offset,
                    log_start_offset: s.log_start_offset,
                    log_end_offset: s.log_end_offset,
                });
            }
            let max_offset = match bound {
                ReadBound::HighWatermark => s.high_watermark,
                ReadBound::LogEnd => s.log_end_offset,
            };
            if start_offset >= max_offset {
                (None, offsets)
            } else {
                let first = s
                    .segments
                    .range(..=start_offset)
                    .next_back()
                    .map_or(i64::MIN, |(b, _)| *b);
                let readers: Vec<(SegmentReader, u64)> = s
                    .segments
                    .range(first..)
                    .map(|(_, seg)| {
                        let pos = if seg.base_offset() == first {
                            u64::from(seg.index_lookup(start_offset).position)
                        } else {
                            0
                        };
                        (seg.reader(), pos)
                    })
                    .collect();
                let limit = (max_offset < s.log_end_offset)
                    .then(|| {
                        s.segments.range(..=max_offset).next_back().map(|(_, seg)| {
                            (
                                max_offset,
                                seg.reader(),
                                u64::from(seg.index_lookup(max_offset).position),
                            )
                        })
                    })
                    .flatten();
                (Some(Plan { readers, limit }), offsets)
            }
        };
        let empty = LogReadInfo {
            records: Bytes::new(),
            high_watermark: offsets.high_watermark,
            log_start_offset: offsets.log_start_offset,
            log_end_offset: offsets.log_end_offset,
        };
        let Some(plan) = plan else {
            return Ok(empty);
        };
        for (reader, from) in plan.readers {
            let Some((position, header)) = reader.find_batch(start_offset, from)? else {
                continue;
            };
            let end = match &plan.limit {
                Some((max_offset, lim_reader, lim_from))
                    if lim_reader.base_offset == reader.base_offset =>
                {
                    lim_reader
                        .position_of_offset(*max_offset, *lim_from)?
                        .min(reader.size)
                }
                _ => reader.size,
            };
            if position >= end
                || header.base_offset >= plan.limit.as_ref().map_or(i64::MAX, |l| l.0)
            {
                return Ok(empty);
            }
            let available = (end - position) as usize;
            let first_batch = header.size_bytes();
            let want = if min_one_batch && first_batch > max_bytes {
                first_batch
            } else {
                max_bytes
            };
            let len = want.min(available);
            if len < first_batch {
                return Ok(empty);
            }
            let Some(granted) = grant(first_batch, len) else {
                return Ok(empty);
            };
            let len = granted.clamp(first_batch, len);
            let bytes = reader.read(position, len)?;
            let whole = whole_batches_len(&bytes);
            return Ok(LogReadInfo {
                records: bytes.slice(..whole),
                ..empty
            });
        }
        Ok(empty)
    }

    /// The first record with timestamp `≥ timestamp` (at or after the log
    /// start offset).
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<FoundRecord>> {
        let candidates: Vec<(SegmentReader, u64, i64)> = {
            let s = self.state.lock();
            s.check_online(&self.topic_partition)?;
            let log_start = s.log_start_offset;
            s.segments
                .values()
                .filter(|seg| seg.next_offset() > log_start && seg.max_timestamp() >= timestamp)
                .map(|seg| {
                    let min_offset = log_start.max(seg.base_offset());
                    let entry = seg.time_index_lookup(timestamp);
                    let pos = seg.index_lookup(entry.offset.max(min_offset)).position;
                    (seg.reader(), u64::from(pos), min_offset)
                })
                .collect()
        };
        for (reader, position, min_offset) in candidates {
            if let Some(found) = reader.find_timestamp(timestamp, min_offset, position)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// The record with the largest timestamp (the first such record).
    pub fn max_timestamp_record(&self) -> Result<Option<FoundRecord>> {
        let target = {
            let s = self.state.lock();
            s.check_online(&self.topic_partition)?;
            let mut best: Option<&LogSegment> = None;
            for seg in s.segments.values() {
                if seg.max_timestamp() >= 0
                    && best.is_none_or(|b| seg.max_timestamp() > b.max_timestamp())
                {
                    best = Some(seg);
                }
            }
            best.map(|seg| {
                let pos = seg.index_lookup(seg.offset_of_max_timestamp()).position;
                (
                    seg.reader(),
                    u64::from(pos),
                    seg.max_timestamp(),
                    s.log_start_offset,
                )
            })
        };
        let Some((reader, mut position, max_ts, log_start)) = target else {
            return Ok(None);
        };
        while position < reader.size {
            let header = reader.header_at(position)?;
            if header.max_timestamp == max_ts && header.last_offset() >= log_start {
                if let Some(found) = reader.scan_records(position, &header, |off, ts| {
                    ts == max_ts && off >= log_start
                })? {
                    return Ok(Some(FoundRecord {
                        timestamp: max_ts,
                        ..found
                    }));
                }
            }
            position += header.size_bytes() as u64;
        }
        Ok(None)
    }

    /// ListOffsets v0's answer: up to `max_offsets` offsets, in descending
    /// order, of segment starts (and the log end) whose segment was last
    /// modified at or before `timestamp` (−1: start from the log end, −2:
    /// only the log start), as Kafka's `fetchOffsetsBefore` computes them.
    pub fn offsets_before(&self, timestamp: i64, max_offsets: usize, now_ms: i64) -> Vec<i64> {
        let mut points: Vec<(i64, i64)> = {
            let s = self.state.lock();
            let mut points: Vec<(i64, i64)> = s
                .segments
                .values()
                .map(|seg| {
                    (
                        seg.base_offset().max(s.log_start_offset),
                        seg.last_modified_ms(),
                    )
                })
                .collect();
            if s.segments
                .values()
                .next_back()
                .is_some_and(|seg| seg.size() > 0)
            {
                points.push((s.log_end_offset, now_ms));
            }
            points
        };
        let start = match timestamp {
            -1 => points.len().checked_sub(1),
            -2 => (!points.is_empty()).then_some(0),
            t => points.iter().rposition(|(_, modified)| *modified <= t),
        };
        let Some(start) = start else {
            return Vec::new();
        };
        points.truncate(start + 1);
        let mut out: Vec<i64> = points
            .iter()
            .rev()
            .take(max_offsets)
            .map(|(o, _)| *o)
            .collect();
        out.sort_unstable_by(|a, b| b.cmp(a));
        out
    }
}

/// Bytes of the leading whole batches in `bytes`.
fn whole_batches_len(bytes: &[u8]) -> usize {
    let mut end = 0;
    for item in BatchIter::new(bytes) {
        match item {
            Ok((pos, header)) => end = pos + header.size_bytes(),
            Err(_) => break,
        }
    }
    end
}
