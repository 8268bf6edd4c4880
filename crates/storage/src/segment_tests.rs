//! Unit tests of a segment (`segment.rs`): time rolls by record time and
//! the segment's jitter.

use super::*;
use strom_protocol::batch_builder::BatchBuilder;

/// A segment created at `created_ms` holding one batch whose records
/// are all stamped `timestamp`.
fn segment_with_first_batch(
    dir: &Path,
    timestamp: i64,
    created_ms: i64,
    roll_jitter_ms: i64,
) -> LogSegment {
    let mut segment = LogSegment::create(dir, 0, 4096, created_ms, roll_jitter_ms).unwrap();
    let mut builder = BatchBuilder::of_values(timestamp, &[b"v"]);
    builder.max_timestamp = Some(timestamp);
    let batch = builder.build();
    let header = BatchHeader::parse(&batch).unwrap();
    segment.append(&batch, &header, 4096).unwrap();
    segment
}

#[test]
fn the_time_roll_compares_record_timestamps_minus_the_segments_jitter() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let roll = |s: &LogSegment, max_timestamp: i64, now_ms: i64| {
        s.should_roll(10, 1, max_timestamp, i32::MAX, 1_000, now_ms)
    };
    // The wall clock does not matter, the records' timestamps do.
    let plain = segment_with_first_batch(a.path(), 10_000, 0, 0);
    assert!(!roll(&plain, 11_000, i64::MAX));
    assert!(roll(&plain, 11_001, 0));
    // 400 ms of jitter: rolls after 600 ms of record time.
    let jittered = segment_with_first_batch(b.path(), 10_000, 0, 400);
    assert_eq!(jittered.roll_jitter_ms(), 400);
    assert!(!roll(&jittered, 10_600, i64::MAX));
    assert!(roll(&jittered, 10_601, 0));
    // Older records never roll it by time.
    assert!(!roll(&jittered, 0, i64::MAX));
}

#[test]
fn a_segment_without_record_timestamps_ages_from_its_creation() {
    let dir = tempfile::tempdir().unwrap();
    let s = segment_with_first_batch(dir.path(), -1, 5_000, 100);
    assert!(!s.should_roll(10, 1, -1, i32::MAX, 1_000, 5_900));
    assert!(s.should_roll(10, 1, -1, i32::MAX, 1_000, 5_901));
    // An empty segment never rolls.
    let empty = tempfile::tempdir().unwrap();
    let e = LogSegment::create(empty.path(), 0, 4096, 0, 0).unwrap();
    assert!(!e.should_roll(10, 1, 0, 0, 0, i64::MAX));
}
