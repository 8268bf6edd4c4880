//! Retention and rolling against a real broker: segments past
//! `retention.ms` or beyond `retention.bytes` are deleted by the periodic
//! check, the log start offset moves, and consumers see it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use strom_protocol::batch_builder::BatchBuilder;
use strom_protocol::ErrorCode;
use strom_test_utils::wait_until;

fn segment_files(b: &strom_test_utils::BrokerProcess, dir: &str) -> usize {
    std::fs::read_dir(b.data_dir.join(dir))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
        .count()
}

#[test]
fn retention_by_size_deletes_old_segments_and_moves_the_log_start() {
    let b = broker(&["log.retention.check.interval.ms=100"]);
    let mut c = connect(&b);
    create_topic(
        &mut c,
        "bysize",
        1,
        &[("segment.bytes", "2000"), ("retention.bytes", "6000")],
    );
    for i in 0..60 {
        let v = format!("record-{i:03}-{}", "x".repeat(100));
        assert_eq!(produce(&mut c, "bysize", 0, &[v.as_bytes()]).0, 0);
    }
    assert!(
        wait_until(Duration::from_secs(20), || list_offset(
            &mut c, 7, "bysize", 0, -2
        )
        .offset
            > 0),
        "log start offset never moved"
    );
    let start = list_offset(&mut c, 7, "bysize", 0, -2).offset;
    assert_eq!(list_offset(&mut c, 7, "bysize", 0, -1).offset, 60);
    // What is left is at most retention.bytes plus the active segment.
    let dir = b.data_dir.join("bysize-0");
    let bytes: u64 = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(bytes <= 6000 + 2000, "{bytes} bytes kept");
    // Reading below the log start is out of range; at it, records follow.
    assert_eq!(
        fetch(&mut c, "bysize", 0, start - 1, 1 << 20).error_code,
        ErrorCode::OffsetOutOfRange.code()
    );
    let recs = decode_records(
        fetch(&mut c, "bysize", 0, start, 1 << 20)
            .records
            .as_ref()
            .unwrap(),
    );
    assert_eq!(recs[0].0, start);
}

#[test]
fn retention_by_time_deletes_expired_segments() {
    let b = broker(&["log.retention.check.interval.ms=100"]);
    let mut c = connect(&b);
    create_topic(
        &mut c,
        "bytime",
        1,
        &[("segment.bytes", "1000"), ("retention.ms", "60000")],
    );
    // Records two hours old expire at once; recent ones stay.
    let old = now_ms() - 7_200_000;
    for i in 0..20 {
        let batch =
            BatchBuilder::of_values(old, &[format!("old-{i}-{}", "o".repeat(80)).as_bytes()]);
        let r = produce_raw(&mut c, 9, "bytime", 0, Bytes::from(batch.build()), -1);
        assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    }
    for i in 0..5 {
        produce(&mut c, "bytime", 0, &[format!("new-{i}").as_bytes()]);
    }
    // Whole segments go: the one holding both old and new records stays.
    assert!(
        wait_until(Duration::from_secs(20), || list_offset(
            &mut c, 7, "bytime", 0, -2
        )
        .offset
            >= 12),
        "expired segments were not deleted"
    );
    let start = list_offset(&mut c, 7, "bytime", 0, -2).offset;
    assert!(
        start <= 20,
        "a segment with unexpired records was deleted (log start {start})"
    );
    let recs = decode_records(
        fetch(&mut c, "bytime", 0, start, 1 << 20)
            .records
            .as_ref()
            .unwrap(),
    );
    assert!(recs.iter().all(|(o, _)| *o >= start));
    assert!(segment_files(&b, "bytime-0") <= 3);
}

#[test]
fn segments_roll_by_age() {
    let b = broker(&[]);
    let mut c = connect(&b);
    create_topic(&mut c, "rolling", 1, &[("segment.ms", "200")]);
    produce(&mut c, "rolling", 0, &[b"first"]);
    std::thread::sleep(Duration::from_millis(400));
    produce(&mut c, "rolling", 0, &[b"second"]);
    assert_eq!(segment_files(&b, "rolling-0"), 2);
    let recs = decode_records(
        fetch(&mut c, "rolling", 0, 1, 1 << 20)
            .records
            .as_ref()
            .unwrap(),
    );
    assert_eq!(recs, vec![(1, b"second".to_vec())]);
}
