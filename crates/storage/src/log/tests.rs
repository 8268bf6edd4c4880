//! Unit tests of the log across its parts (appends, loading, truncation,
//! leader epochs, going offline); `crates/storage/tests` has the
//! model-based and corruption tests.

use bytes::BytesMut;
use strom_protocol::batch_builder::BatchBuilder;

use super::*;

fn batch() -> BytesMut {
    BytesMut::from(&BatchBuilder::of_values(0, &[b"v"]).build()[..])
}

#[test]
fn each_segment_draws_its_jitter_below_segment_ms_and_segment_jitter_ms() {
    let mut config = TopicConfig::kafka_defaults();
    assert_eq!(random_segment_jitter_ms(&config), 0, "no jitter by default");
    config.segment_ms = 1_000;
    config.segment_jitter_ms = 250;
    let draws: Vec<i64> = (0..64).map(|_| random_segment_jitter_ms(&config)).collect();
    assert!(draws.iter().all(|j| (0..250).contains(j)), "{draws:?}");
    assert!(draws.iter().any(|j| *j != draws[0]), "{draws:?}");
    // Never more than segment.ms.
    config.segment_jitter_ms = i64::MAX;
    assert!((0..64).all(|_| (0..1_000).contains(&random_segment_jitter_ms(&config))));
}

#[test]
fn an_io_error_takes_the_log_offline_until_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(TopicConfig::kafka_defaults());
    let log = Log::create(
        dir.path().join("t-0"),
        TopicPartition::new("t", 0),
        Uuid::new_v4(),
        config,
        0,
    )
    .unwrap();
    log.append_as_leader(batch(), 0, 0).unwrap();
    crate::segment::tests_fault::FAIL_NEXT_WRITE.store(true, std::sync::atomic::Ordering::SeqCst);
    let e = log.append_as_leader(batch(), 0, 0).unwrap_err();
    assert_eq!(e.error_code(), strom_protocol::ErrorCode::KafkaStorageError);
    // Later appends and reads are refused, not silently accepted.
    assert!(matches!(
        log.append_as_leader(batch(), 0, 0),
        Err(StorageError::LogOffline { .. })
    ));
    assert!(matches!(
        log.read(0, 100, ReadBound::LogEnd, true),
        Err(StorageError::LogOffline { .. })
    ));
    assert_eq!(log.offsets().log_end_offset, 1);
}

fn load_options(had_clean_shutdown: bool) -> LoadOptions {
    LoadOptions {
        had_clean_shutdown,
        recovery_point: 0,
        log_start_offset: 0,
        high_watermark: None,
        now_ms: 0,
        topic_id: Uuid::nil(),
    }
}

#[test]
fn leader_epochs_follow_appends_truncation_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    let config = Arc::new(TopicConfig::kafka_defaults());
    let tp = TopicPartition::new("t", 0);
    let log = Log::create(
        path.clone(),
        tp.clone(),
        Uuid::new_v4(),
        Arc::clone(&config),
        0,
    )
    .unwrap();
    for epoch in [0, 0, 2, 2, 2, 5] {
        log.append_as_leader(batch(), epoch, 0).unwrap();
    }
    assert_eq!(log.leader_epochs(), vec![(0, 0), (2, 2), (5, 5)]);
    assert_eq!(log.end_offset_for_epoch(2), (2, 5));
    assert_eq!(log.end_offset_for_epoch(5), (5, 6));
    assert_eq!(log.end_offset_for_epoch(3), (2, 5));
    // A divergent tail goes, and its epoch with it.
    log.truncate_to(4, 0).unwrap();
    assert_eq!(log.leader_epochs(), vec![(0, 0), (2, 2)]);
    log.append_as_leader(batch(), 6, 0).unwrap();
    assert_eq!(log.leader_epochs(), vec![(0, 0), (2, 2), (6, 4)]);
    log.close(0).unwrap();
    // A clean restart reads the checkpoint.
    let (log, _) = Log::load(
        path.clone(),
        tp.clone(),
        Arc::clone(&config),
        load_options(true),
    )
    .unwrap();
    assert_eq!(log.leader_epochs(), vec![(0, 0), (2, 2), (6, 4)]);
    log.mark_closed();
    drop(log);
    // A corrupt or missing checkpoint is rebuilt from the batches.
    for damage in ["0\n9\n", ""] {
        let file = path.join(crate::leader_epoch::LEADER_EPOCH_CHECKPOINT_FILE);
        if damage.is_empty() {
            std::fs::remove_file(&file).unwrap();
        } else {
            std::fs::write(&file, damage).unwrap();
        }
        let (log, _) = Log::load(
            path.clone(),
            tp.clone(),
            Arc::clone(&config),
            load_options(false),
        )
        .unwrap();
        assert_eq!(
            log.leader_epochs(),
            vec![(0, 0), (2, 2), (6, 4)],
            "{damage:?}"
        );
        log.mark_closed();
    }
    // Moving the log start trims the oldest epochs.
    let (log, _) = Log::load(path.clone(), tp, Arc::clone(&config), load_options(true)).unwrap();
    log.update_high_watermark(5);
    log.increment_log_start_offset(3, 0).unwrap();
    assert_eq!(log.leader_epochs(), vec![(2, 3), (6, 4)]);
    log.truncate_fully_and_start_at(10, 0).unwrap();
    assert!(log.leader_epochs().is_empty());
}

#[test]
fn a_new_leaders_epoch_starts_at_the_log_end_until_truncated_there() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::create(
        dir.path().join("t-0"),
        TopicPartition::new("t", 0),
        Uuid::new_v4(),
        Arc::new(TopicConfig::kafka_defaults()),
        0,
    )
    .unwrap();
    log.append_as_leader(batch(), 3, 0).unwrap();
    log.append_as_leader(batch(), 3, 0).unwrap();
    // Leader in epoch 5, nothing appended yet: epoch 3 ended at 2.
    log.assign_epoch_start_offset(5).unwrap();
    assert_eq!(log.leader_epochs(), vec![(3, 0), (5, 2)]);
    assert_eq!(log.end_offset_for_epoch(4), (3, 2));
    // An older or the same epoch changes nothing.
    log.assign_epoch_start_offset(4).unwrap();
    log.assign_epoch_start_offset(5).unwrap();
    assert_eq!(log.leader_epochs(), vec![(3, 0), (5, 2)]);
    // Deposed before appending, told to truncate at its log end: no
    // record goes, the empty epoch does.
    assert_eq!(log.truncate_to(2, 0).unwrap(), 2);
    assert_eq!(log.leader_epochs(), vec![(3, 0)]);
    assert_eq!(log.latest_epoch(), Some(3));
}

#[test]
fn a_follower_appends_the_leaders_batches_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(TopicConfig::kafka_defaults());
    let make = |name: &str| {
        Log::create(
            dir.path().join(name),
            TopicPartition::new(name, 0),
            Uuid::new_v4(),
            Arc::clone(&config),
            0,
        )
        .unwrap()
    };
    let leader = make("leader");
    let follower = make("follower");
    for epoch in [1, 1, 4] {
        leader.append_as_leader(batch(), epoch, 0).unwrap();
    }
    let all = leader
        .read(0, 1 << 20, ReadBound::LogEnd, true)
        .unwrap()
        .records;
    // A fetch response may end in a partial batch: only whole ones go in.
    let cut = all.len() - 5;
    assert_eq!(follower.append_as_follower(&all[..cut], 0).unwrap(), 2);
    // The rest, from the follower's end.
    let rest = leader
        .read(2, 1 << 20, ReadBound::LogEnd, true)
        .unwrap()
        .records;
    assert_eq!(follower.append_as_follower(&rest, 0).unwrap(), 3);
    assert_eq!(follower.leader_epochs(), leader.leader_epochs());
    let copied = follower
        .read(0, 1 << 20, ReadBound::LogEnd, true)
        .unwrap()
        .records;
    assert_eq!(copied, all, "stored as received");
    // Batches that do not continue the log are refused whole.
    assert!(matches!(
        follower.append_as_follower(&all, 0),
        Err(StorageError::UnexpectedAppendOffset {
            expected: 3,
            got: 0
        })
    ));
    leader.append_as_leader(batch(), 4, 0).unwrap();
    let next = leader
        .read(3, 1 << 20, ReadBound::LogEnd, true)
        .unwrap()
        .records;
    let mut bad = next.to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    assert!(matches!(
        follower.append_as_follower(&bad, 0),
        Err(StorageError::CorruptBatch(_))
    ));
    assert_eq!(follower.offsets().log_end_offset, 3);
    assert_eq!(follower.append_as_follower(&next, 0).unwrap(), 4);
    // Nothing to append is no change.
    assert_eq!(follower.append_as_follower(&[], 0).unwrap(), 4);
}
