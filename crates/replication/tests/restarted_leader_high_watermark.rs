//! A restarted replica may hold records the in-sync replicas never had: it
//! starts from the checkpointed high watermark (or its log start offset),
//! and as leader moves it only as far as its ISR has fetched, as Kafka's
//! `Partition.makeLeader` does. Alone in the ISR, it commits its whole log
//! at once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::Path;
use std::sync::Arc;

use bytes::BytesMut;
use strom_config::TopicConfig;
use strom_protocol::batch_builder::BatchBuilder;
use strom_replication::{Partition, PartitionState};
use strom_runtime::clock::lag_clock_ms;
use strom_storage::log::{LoadOptions, Log};
use strom_storage::{ReadBound, TopicPartition};
use uuid::Uuid;

const NOW: i64 = 1_700_000_000_000;

/// Writes a log of 5 one-record batches (offsets 0 to 4) and closes it.
fn write_five_records(dir: &Path) {
    let log = Log::create(
        dir.join("t-0"),
        TopicPartition::new("t", 0),
        Uuid::new_v4(),
        Arc::new(TopicConfig::kafka_defaults()),
        NOW,
    )
    .unwrap();
    for i in 0..5 {
        let batch = BatchBuilder::of_values(NOW, &[format!("r{i}").as_bytes()]).build();
        log.append_as_leader(BytesMut::from(&batch[..]), 3, NOW)
            .unwrap();
    }
    log.close(NOW).unwrap();
}

/// Loads it as a restart would, with `checkpoint` as the checkpointed high
/// watermark.
fn restart(dir: &Path, checkpoint: Option<i64>) -> Arc<Log> {
    let (log, _) = Log::load(
        dir.join("t-0"),
        TopicPartition::new("t", 0),
        Arc::new(TopicConfig::kafka_defaults()),
        LoadOptions {
            had_clean_shutdown: true,
            recovery_point: 5,
            log_start_offset: 0,
            high_watermark: checkpoint,
            now_ms: NOW,
            topic_id: Uuid::new_v4(),
        },
    )
    .unwrap();
    Arc::new(log)
}

fn state(leader: i32, replicas: Vec<i32>, isr: Vec<i32>) -> PartitionState {
    PartitionState {
        leader,
        leader_epoch: 4,
        partition_epoch: 1,
        replicas,
        isr,
    }
}

/// Offsets a consumer can read.
fn committed(p: &Partition) -> Vec<i64> {
    let read = p.read(0, 1 << 20, ReadBound::HighWatermark, true).unwrap();
    strom_protocol::batch::BatchIter::new(&read.records)
        .map(|b| b.unwrap().1.base_offset)
        .collect()
}

#[test]
fn a_restarted_leader_commits_only_what_its_isr_has() {
    for (checkpoint, start) in [(Some(2), 2), (None, 0)] {
        let dir = tempfile::tempdir().unwrap();
        write_five_records(dir.path());
        // Broker 1 leads again with broker 2 in the ISR.
        let p = Partition::new(
            1,
            Uuid::new_v4(),
            restart(dir.path(), checkpoint),
            state(1, vec![1, 2], vec![1, 2]),
        );
        assert_eq!(p.log().offsets().log_end_offset, 5);
        assert_eq!(p.high_watermark(), start, "checkpoint {checkpoint:?}");
        assert_eq!(committed(&p), (0..start).collect::<Vec<_>>());
        // Broker 2 had up to offset 3: that much is committed.
        p.record_follower_fetch(2, 3, lag_clock_ms()).unwrap();
        assert_eq!(p.high_watermark(), 3);
        assert_eq!(committed(&p), vec![0, 1, 2]);
        p.record_follower_fetch(2, 5, lag_clock_ms()).unwrap();
        assert_eq!(p.high_watermark(), 5);
    }
}

#[test]
fn a_follower_that_becomes_leader_keeps_the_checkpoint_until_its_isr_fetches() {
    let dir = tempfile::tempdir().unwrap();
    write_five_records(dir.path());
    let p = Partition::new(
        1,
        Uuid::new_v4(),
        restart(dir.path(), None),
        state(2, vec![1, 2, 3], vec![1, 2, 3]),
    );
    assert_eq!(p.high_watermark(), 0, "as follower");
    p.update_state(state(1, vec![1, 2, 3], vec![1, 2, 3]));
    assert_eq!(p.high_watermark(), 0, "no follower fetched yet");
    p.record_follower_fetch(2, 4, lag_clock_ms()).unwrap();
    assert_eq!(p.high_watermark(), 0, "3 has not fetched");
    p.record_follower_fetch(3, 1, lag_clock_ms()).unwrap();
    assert_eq!(p.high_watermark(), 1);
    // The ISR shrinks to the leader: everything it has is committed.
    p.update_state(PartitionState {
        partition_epoch: 2,
        ..state(1, vec![1, 2, 3], vec![1])
    });
    assert_eq!(p.high_watermark(), 5);
}

#[test]
fn a_leader_alone_in_the_isr_commits_its_log_at_once() {
    for checkpoint in [Some(2), None] {
        let dir = tempfile::tempdir().unwrap();
        write_five_records(dir.path());
        let p = Partition::new(
            1,
            Uuid::new_v4(),
            restart(dir.path(), checkpoint),
            state(1, vec![1], vec![1]),
        );
        assert_eq!(p.high_watermark(), 5, "checkpoint {checkpoint:?}");
        assert_eq!(committed(&p), vec![0, 1, 2, 3, 4]);
        // Also when leadership arrives after start-up.
        let dir = tempfile::tempdir().unwrap();
        write_five_records(dir.path());
        let p = Partition::new(
            1,
            Uuid::new_v4(),
            restart(dir.path(), checkpoint),
            state(-1, vec![1], vec![1]),
        );
        assert_eq!(p.high_watermark(), checkpoint.unwrap_or(0), "as follower");
        p.update_state(state(1, vec![1], vec![1]));
        assert_eq!(p.high_watermark(), 5, "checkpoint {checkpoint:?}");
    }
}
