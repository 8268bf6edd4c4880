//! Idempotent producers across restarts: a retried batch is recognised
//! after a clean restart (snapshot) and after a crash (snapshot plus replay
//! of the batches after it), and gets its original offsets back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use bytes::BytesMut;
use common::*;
use strom_protocol::batch_builder::BatchBuilder;
use strom_storage::StorageError;

fn idempotent_batch(pid: i64, epoch: i16, seq: i32, n: usize) -> BytesMut {
    let values: Vec<Vec<u8>> = (0..n)
        .map(|i| format!("p{pid}-s{}", seq as usize + i).into_bytes())
        .collect();
    let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
    let mut b = BatchBuilder::of_values(NOW, &refs);
    b.producer_id = pid;
    b.producer_epoch = epoch;
    b.base_sequence = seq;
    BytesMut::from(&b.build()[..])
}

#[test]
fn retries_are_recognised_after_clean_and_unclean_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(500);
    let log = create(dir.path(), config.clone());
    let mut next_seq: std::collections::HashMap<i64, i32> = Default::default();
    let mut sent = Vec::new();
    for i in 0..30 {
        let pid = 100 + (i % 3) as i64;
        let n = 1 + i % 4;
        let s = *next_seq.get(&pid).unwrap_or(&0);
        next_seq.insert(pid, s + n as i32);
        let info = log
            .append_as_leader(idempotent_batch(pid, 0, s, n), 0, NOW)
            .unwrap();
        assert!(!info.duplicate);
        sent.push((pid, s, n, info.base_offset));
    }
    let end = log.offsets().log_end_offset;
    assert!(log.segment_count() > 3, "snapshots are taken at rolls");
    let check_retries = |log: &strom_storage::Log| {
        // The last five batches of each producer are recognised.
        for pid in 100..103 {
            for (p, s, n, offset) in sent.iter().filter(|b| b.0 == pid).rev().take(5) {
                let info = log
                    .append_as_leader(idempotent_batch(*p, 0, *s, *n), 0, NOW)
                    .unwrap();
                assert!(info.duplicate, "retry of pid {p} seq {s} appended again");
                assert_eq!(info.base_offset, *offset);
            }
        }
        assert_eq!(log.offsets().log_end_offset, end, "nothing appended");
    };
    check_retries(&log);
    log.close(NOW).unwrap();
    drop(log);
    let (log, _) = load(dir.path(), config.clone(), true, end);
    check_retries(&log);
    drop(log); // crash: no close, so the last snapshot is older than the end
    let (log, _) = load(dir.path(), config.clone(), false, 0);
    check_retries(&log);
    // A gap is refused; the next sequence is accepted.
    let next = sent
        .iter()
        .filter(|b| b.0 == 100)
        .map(|b| b.1 + b.2 as i32)
        .max()
        .unwrap();
    assert!(matches!(
        log.append_as_leader(idempotent_batch(100, 0, next + 1, 1), 0, NOW),
        Err(StorageError::OutOfOrderSequence { .. })
    ));
    assert!(
        !log.append_as_leader(idempotent_batch(100, 0, next, 1), 0, NOW)
            .unwrap()
            .duplicate
    );
    // An old epoch is fenced.
    assert!(matches!(
        log.append_as_leader(idempotent_batch(101, -1, 0, 1), 0, NOW),
        Err(StorageError::InvalidProducerEpoch { .. })
    ));
}
