//! Segments roll by record time, as in Kafka: `segment.ms` is compared with
//! how far the incoming batch's max timestamp is past the segment's first
//! batch's, so batches with old timestamps (replays, backfills, MirrorMaker)
//! fill segments like any others, while current timestamps still roll them
//! every `segment.ms`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::sync::Arc;

use bytes::BytesMut;
use common::*;
use strom_config::{MessageTimestampType, TopicConfig};
use strom_protocol::batch_builder::BatchBuilder;
use strom_storage::log::Log;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// Appends one batch of one record with `timestamp`, as leader, at `now_ms`.
fn append_at(log: &Log, i: usize, timestamp: i64, now_ms: i64) -> i64 {
    let refs: [&[u8]; 1] = [&value(i)];
    let batch = BytesMut::from(&BatchBuilder::of_values(timestamp, &refs).build()[..]);
    let info = log.append_as_leader(batch, 0, now_ms).unwrap();
    log.update_high_watermark(info.last_offset + 1);
    info.base_offset
}

#[test]
fn batches_with_old_timestamps_fill_one_segment() {
    for timestamp in [0, NOW - 30 * DAY_MS] {
        let dir = tempfile::tempdir().unwrap();
        let log = create(dir.path(), Arc::new(TopicConfig::kafka_defaults()));
        for i in 0..300 {
            assert_eq!(append_at(&log, i, timestamp, NOW + i as i64), i as i64);
        }
        assert_eq!(
            log.segment_base_offsets(),
            vec![0],
            "300 batches timestamped {timestamp} must share one segment"
        );
        let records = read_all(&log, 0);
        assert_eq!(records.len(), 300);
        assert_eq!(records[299], (299, value(299)));
    }
}

#[test]
fn segment_ms_rolls_segments_by_record_time() {
    let mut config = TopicConfig::kafka_defaults();
    config.segment_ms = 60_000;
    let dir = tempfile::tempdir().unwrap();
    let log = create(dir.path(), Arc::new(config));
    append_at(&log, 0, NOW, NOW);
    // Exactly segment.ms after the first batch: not yet.
    append_at(&log, 1, NOW + 60_000, NOW + 60_000);
    assert_eq!(log.segment_base_offsets(), vec![0]);
    // Past it: the batch starts a new segment.
    append_at(&log, 2, NOW + 60_001, NOW + 60_001);
    assert_eq!(log.segment_base_offsets(), vec![0, 2]);
    // Record time, not the wall clock: a day later, records stamped within
    // segment.ms of the segment's first stay in it.
    append_at(&log, 3, NOW + 90_000, NOW + DAY_MS);
    append_at(&log, 4, NOW, NOW + DAY_MS);
    assert_eq!(log.segment_base_offsets(), vec![0, 2]);
    append_at(&log, 5, NOW + 120_002, NOW + DAY_MS);
    assert_eq!(log.segment_base_offsets(), vec![0, 2, 5]);
    let offsets: Vec<i64> = read_all(&log, 0).iter().map(|(o, _)| *o).collect();
    assert_eq!(offsets, vec![0, 1, 2, 3, 4, 5]);
}

#[test]
fn log_append_time_segments_roll_every_segment_ms() {
    let mut config = TopicConfig::kafka_defaults();
    config.segment_ms = 60_000;
    config.message_timestamp_type = MessageTimestampType::LogAppendTime;
    let dir = tempfile::tempdir().unwrap();
    let log = create(dir.path(), Arc::new(config));
    // The producer's timestamps do not matter: the broker's append time does.
    append_at(&log, 0, 0, NOW);
    append_at(&log, 1, 0, NOW + 30_000);
    assert_eq!(log.segment_base_offsets(), vec![0]);
    append_at(&log, 2, 0, NOW + 60_001);
    assert_eq!(log.segment_base_offsets(), vec![0, 2]);
}

#[test]
fn segments_without_timestamps_roll_by_their_age() {
    let mut config = TopicConfig::kafka_defaults();
    config.segment_ms = 60_000;
    let dir = tempfile::tempdir().unwrap();
    // Created at NOW.
    let log = create(dir.path(), Arc::new(config));
    let untimed = || {
        let mut b = BatchBuilder::of_values(-1, &[b"v"]);
        b.max_timestamp = Some(-1);
        BytesMut::from(&b.build()[..])
    };
    log.append_as_leader(untimed(), 0, NOW).unwrap();
    log.append_as_leader(untimed(), 0, NOW + 60_000).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0]);
    log.append_as_leader(untimed(), 0, NOW + 60_001).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 2]);
}
