//! The high watermark a log starts with after a restart: the checkpointed
//! one (`replication-offset-checkpoint`), or the log start offset when there
//! is none or it cannot be read, as in Kafka; never the log end offset. A
//! replica may hold records the in-sync replicas never had; only its leader,
//! from what the ISR has fetched, may move the high watermark over them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use strom_config::TopicConfig;
use strom_storage::checkpoint::HIGH_WATERMARK_CHECKPOINT_FILE;
use strom_storage::log::{LoadOptions, Log};
use strom_storage::{LogManager, ReadBound};
use uuid::Uuid;

/// A log of 5 records, one per batch, whose high watermark reached 2.
fn five_records_committed_to_2(dir: &Path) -> Log {
    let log = create(dir, Arc::new(TopicConfig::kafka_defaults()));
    for i in 0..5 {
        log.append_as_leader(batch(&[value(i)], NOW), 0, NOW)
            .unwrap();
    }
    log.update_high_watermark(2);
    log
}

fn load_with(dir: &Path, log_start_offset: i64, high_watermark: Option<i64>) -> Log {
    Log::load(
        dir.join("t-0"),
        tp(),
        Arc::new(TopicConfig::kafka_defaults()),
        LoadOptions {
            had_clean_shutdown: true,
            recovery_point: 5,
            log_start_offset,
            high_watermark,
            now_ms: NOW,
            topic_id: Uuid::new_v4(),
        },
    )
    .unwrap()
    .0
}

#[test]
fn a_loaded_log_starts_from_the_checkpoint_or_the_log_start_offset() {
    let dir = tempfile::tempdir().unwrap();
    five_records_committed_to_2(dir.path()).close(NOW).unwrap();
    for (log_start_offset, checkpoint, expected) in [
        (0, Some(2), 2),
        (0, None, 0),
        (1, None, 1),
        // A checkpoint outside the log is brought within it.
        (0, Some(9), 5),
        (3, Some(2), 3),
    ] {
        let log = load_with(dir.path(), log_start_offset, checkpoint);
        let o = log.offsets();
        assert_eq!(o.log_end_offset, 5);
        assert_eq!(
            o.high_watermark, expected,
            "log start {log_start_offset}, checkpoint {checkpoint:?}"
        );
        // Consumers see nothing past it.
        let read = log
            .read(log_start_offset, 1 << 20, ReadBound::HighWatermark, true)
            .unwrap();
        let offsets: Vec<i64> = decode(&read.records).iter().map(|(o, _)| *o).collect();
        assert_eq!(
            offsets,
            (log_start_offset..expected).collect::<Vec<_>>(),
            "log start {log_start_offset}, checkpoint {checkpoint:?}"
        );
        log.mark_closed();
    }
}

/// Opens the log manager of `dir` and loads its one log.
fn restart(dir: &Path) -> (LogManager, Arc<Log>) {
    let manager = LogManager::open(&[dir.to_path_buf()], 1, "cluster").unwrap();
    manager
        .load_logs(NOW, |_, id| {
            Some((Arc::new(TopicConfig::kafka_defaults()), id.unwrap()))
        })
        .unwrap();
    let log = manager.get(&tp()).unwrap();
    (manager, log)
}

#[test]
fn a_restarted_broker_takes_high_watermarks_from_the_checkpoint_only() {
    let dir = tempfile::tempdir().unwrap();
    let manager = LogManager::open(&[dir.path().to_path_buf()], 1, "cluster").unwrap();
    let log = manager
        .get_or_create(
            &tp(),
            Uuid::new_v4(),
            Arc::new(TopicConfig::kafka_defaults()),
            NOW,
        )
        .unwrap();
    for i in 0..5 {
        log.append_as_leader(batch(&[value(i)], NOW), 0, NOW)
            .unwrap();
    }
    log.update_high_watermark(2);
    manager.shutdown(NOW).unwrap();
    drop(log);
    drop(manager);

    // Clean restart: the checkpoint holds 2.
    let (manager, log) = restart(dir.path());
    assert_eq!(log.offsets().log_end_offset, 5);
    assert_eq!(log.offsets().high_watermark, 2);
    manager.shutdown(NOW).unwrap();
    drop((manager, log));

    // Without the checkpoint, or with one that cannot be read: the log
    // start offset, not the log end offset.
    let checkpoint = dir.path().join(HIGH_WATERMARK_CHECKPOINT_FILE);
    for damage in [None, Some("0\n1\nt 0\n")] {
        match damage {
            None => std::fs::remove_file(&checkpoint).unwrap(),
            Some(text) => std::fs::write(&checkpoint, text).unwrap(),
        }
        let (manager, log) = restart(dir.path());
        assert_eq!(log.offsets().log_end_offset, 5, "{damage:?}");
        assert_eq!(log.offsets().high_watermark, 0, "{damage:?}");
        let read = log
            .read(0, 1 << 20, ReadBound::HighWatermark, true)
            .unwrap();
        assert!(read.records.is_empty(), "{damage:?}");
        manager.shutdown(NOW).unwrap();
    }
}
