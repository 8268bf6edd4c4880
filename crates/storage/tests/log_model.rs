//! Property test of the partition log against an in-memory model: random
//! appends, reads, forced rolls, retention by size, truncation, log start
//! offset increments, clean and unclean restarts; every read must return
//! exactly the model's records.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;
use proptest::prelude::*;
use strom_storage::ReadBound;

#[derive(Debug, Clone)]
enum Op {
    Append(usize),
    Read(usize),
    Roll,
    RetainBytes(u64),
    RetainDefaults,
    RestartClean,
    RestartCrash,
    Truncate(usize),
    DeleteBefore(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..20).prop_map(Op::Append),
        3 => (0usize..1000).prop_map(Op::Read),
        1 => Just(Op::Roll),
        1 => (0u64..4000).prop_map(Op::RetainBytes),
        1 => Just(Op::RetainDefaults),
        1 => Just(Op::RestartClean),
        1 => Just(Op::RestartCrash),
        1 => (0usize..1000).prop_map(Op::Truncate),
        1 => (0usize..1000).prop_map(Op::DeleteBefore),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_model(ops in proptest::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let config = small_config(700);
        let mut log = create(dir.path(), config.clone());
        let mut model: Vec<(i64, Vec<u8>)> = Vec::new();
        let mut start = 0i64;
        let mut counter = 0usize;
        for op in ops {
            match op {
                Op::Append(n) => {
                    let values: Vec<Vec<u8>> = (0..n).map(|_| { counter += 1; value(counter) }).collect();
                    let base = append(&log, &values, NOW);
                    prop_assert_eq!(base, model.last().map_or(start, |(o, _)| o + 1));
                    for (i, v) in values.into_iter().enumerate() {
                        model.push((base + i as i64, v));
                    }
                }
                Op::Read(k) => {
                    let end = log.offsets().log_end_offset;
                    let offset = start + (k as i64) % (end - start + 1);
                    let r = log.read(offset, 300, ReadBound::LogEnd, true).unwrap();
                    let got = decode(&r.records);
                    if offset == end {
                        prop_assert!(got.is_empty());
                    } else {
                        // The first batch holds `offset`; all records are the model's.
                        prop_assert!(!got.is_empty());
                        prop_assert!(got[0].0 <= offset);
                        // The first batch may begin below the log start
                        // offset (moved into its middle); those records
                        // are not the log's any more.
                        for (o, v) in got.iter().filter(|(o, _)| *o >= start) {
                            let idx = (o - start) as usize;
                            prop_assert_eq!(&model[idx].1, v);
                        }
                    }
                }
                Op::Roll => log.force_roll(NOW).unwrap(),
                Op::Truncate(k) => {
                    let end = log.offsets().log_end_offset;
                    let offset = start + (k as i64) % (end - start + 1);
                    let new_end = log.truncate_to(offset, NOW).unwrap();
                    // The whole batch holding `offset` goes, nothing before it
                    // (so the log may now end below a start moved into that
                    // batch).
                    prop_assert!(new_end <= offset);
                    model.retain(|(o, _)| *o < new_end);
                    if model.is_empty() {
                        start = new_end;
                    }
                    prop_assert_eq!(log.offsets().log_start_offset.max(start), start);
                    let o = log.offsets();
                    prop_assert!(o.high_watermark <= new_end);
                    prop_assert!(o.recovery_point <= new_end);
                }
                Op::DeleteBefore(k) => {
                    let o = log.offsets();
                    let offset = start + (k as i64) % (o.log_end_offset - start + 1);
                    let new_start = log.increment_log_start_offset(offset, NOW).unwrap().max(start);
                    prop_assert_eq!(new_start, offset.min(o.high_watermark).max(start));
                    model.retain(|(o, _)| *o >= new_start);
                    start = new_start;
                }
                Op::RetainDefaults => {
                    // Kafka's defaults (7 days, unlimited size) delete only
                    // segments wholly below the log start offset.
                    log.enforce_retention(NOW).unwrap();
                    prop_assert!(log.offsets().log_start_offset <= start);
                }
                Op::RetainBytes(limit) => {
                    let mut c = (*log.config()).clone();
                    c.retention_bytes = limit as i64;
                    log.set_config(std::sync::Arc::new(c));
                    log.enforce_retention(NOW).unwrap();
                    // (After a restart the log's own start may be below the
                    // test's: only a checkpoint would carry it.)
                    let new_start = log.offsets().log_start_offset.max(start);
                    model.retain(|(o, _)| *o >= new_start);
                    start = new_start;
                    log.set_config(config.clone());
                }
                Op::RestartClean => {
                    log.close(NOW).unwrap();
                    let o = log.offsets();
                    drop(log);
                    let (l, report) = load(dir.path(), config.clone(), true, o.recovery_point);
                    prop_assert_eq!(report.recovered_segments, 0);
                    log = l;
                    // A clean restart keeps the log start offset only via the
                    // checkpoint; the test's log start is the first segment.
                    start = log.offsets().log_start_offset.max(start);
                }
                Op::RestartCrash => {
                    drop(log);
                    let (l, report) = load(dir.path(), config.clone(), false, 0);
                    prop_assert_eq!(report.truncated_bytes, 0);
                    log = l;
                    start = log.offsets().log_start_offset.max(start);
                }
            }
            let o = log.offsets();
            prop_assert_eq!(o.log_end_offset, model.last().map_or(start, |(x, _)| x + 1));
        }
        let all = read_all(&log, start);
        prop_assert_eq!(all, model);
    }
}

#[test]
fn flush_ms_moves_the_recovery_point_only_when_due() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = (*small_config(1 << 20)).clone();
    config.flush_ms = 1000;
    let log = create(dir.path(), std::sync::Arc::new(config));
    append(&log, &[b"a".to_vec(), b"b".to_vec()], NOW);
    assert_eq!(log.offsets().recovery_point, 0);
    log.flush_if_due(NOW + 10).unwrap();
    assert_eq!(log.offsets().recovery_point, 0, "not due yet");
    log.flush_if_due(NOW + 1000).unwrap();
    assert_eq!(log.offsets().recovery_point, 2);
}

#[test]
fn flush_messages_fsyncs_before_the_append_returns() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = (*small_config(1 << 20)).clone();
    config.flush_messages = 3;
    let log = create(dir.path(), std::sync::Arc::new(config));
    append(&log, &[b"a".to_vec(), b"b".to_vec()], NOW);
    assert_eq!(log.offsets().recovery_point, 0);
    append(&log, &[b"c".to_vec()], NOW);
    assert_eq!(log.offsets().recovery_point, 3);
}
