//! Property test of the partition log against an in-memory model: random
//! appends, reads, forced rolls, retention by size, clean and unclean
//! restarts; every read must return exactly the model's records.
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
                        for (o, v) in &got {
                            let idx = (o - start) as usize;
                            prop_assert_eq!(&model[idx].1, v);
                        }
                    }
                }
                Op::Roll => log.force_roll(NOW).unwrap(),
                Op::RetainDefaults => {
                    // Kafka's defaults (7 days, unlimited size) delete nothing new.
                    let outcome = log.enforce_retention(NOW).unwrap();
                    prop_assert_eq!(outcome.deleted_segments, 0);
                }
                Op::RetainBytes(limit) => {
                    let mut c = (*log.config()).clone();
                    c.retention_bytes = limit as i64;
                    log.set_config(std::sync::Arc::new(c));
                    log.enforce_retention(NOW).unwrap();
                    let new_start = log.offsets().log_start_offset;
                    prop_assert!(new_start >= start);
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
