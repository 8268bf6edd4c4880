//! Disk faults are errors, not crashes. On a full disk (a small tmpfs;
//! mounting it needs root, as the end-to-end fault tests do) every write
//! of a log fails with an I/O error that clients see as
//! KAFKA_STORAGE_ERROR, never SIGBUS from a store into an index page
//! that has no disk block, and recovery on a full disk loads what is
//! there. A log that fails to load takes only its partition offline, and
//! shutdown after an error closes everything else.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use common::*;
use strom_config::TopicConfig;
use strom_protocol::ErrorCode;
use strom_storage::checkpoint::{read_checkpoint, RECOVERY_POINT_CHECKPOINT_FILE};
use strom_storage::log::{LoadOptions, Log};
use strom_storage::log_manager::CLEAN_SHUTDOWN_FILE;
use strom_storage::{LogManager, StorageError, TopicPartition};
use uuid::Uuid;

/// A tmpfs mounted for the length of a test, unmounted on drop.
struct Tmpfs {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mnt");
        std::fs::create_dir(&path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mount a tmpfs at {} (this test needs root): {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { _dir: dir, path }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Writes a file until the filesystem is full.
fn fill_up(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    let page = [7u8; 4096];
    loop {
        match f.write_all(&page) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(28) => return,
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
}

fn load_unclean(dir: &Path, config: Arc<TopicConfig>) -> Log {
    let options = LoadOptions {
        had_clean_shutdown: false,
        recovery_point: 0,
        log_start_offset: 0,
        high_watermark: None,
        now_ms: NOW,
        topic_id: Uuid::new_v4(),
    };
    let (log, report) = Log::load(dir.join("t-0"), tp(), config, options).unwrap();
    assert_eq!(report.truncated_bytes, 0);
    log
}

#[test]
fn a_full_disk_fails_appends_and_lets_recovery_load_without_a_fault() {
    let fs = Tmpfs::mount("1m");
    // An index entry after every batch, so each append below stores into
    // the indexes' mappings.
    let mut config = TopicConfig::kafka_defaults();
    config.index_interval_bytes = 0;
    let config = Arc::new(config);
    let log = create(&fs.path, Arc::clone(&config));
    let mut acknowledged = Vec::new();
    append(&log, &[value(0)], NOW);
    acknowledged.push((0, value(0)));

    // Nothing left on the disk but the slack of the pages the segment has.
    // The batches that still fit there each need an index entry: on pages
    // of the index files that had never been written, the stores used to
    // kill the process with SIGBUS.
    fill_up(&fs.path.join("filler"));
    let mut refused = None;
    for i in 1..10_000 {
        match log.append_as_leader(batch(&[value(i)], NOW), 0, NOW) {
            Ok(info) => {
                assert_eq!(info.base_offset, i as i64);
                acknowledged.push((info.base_offset, value(i)));
            }
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let refused = refused.expect("the disk never filled");
    assert_eq!(
        refused.error_code(),
        ErrorCode::KafkaStorageError,
        "{refused}"
    );
    assert!(
        acknowledged.len() > 2,
        "batches with index entries fitted after the disk filled: {}",
        acknowledged.len()
    );
    // The log stays offline: appends and reads are refused, nothing
    // half-written is acknowledged.
    assert!(matches!(
        log.append_as_leader(batch(&[b"more".to_vec()], NOW), 0, NOW),
        Err(StorageError::LogOffline { .. })
    ));
    assert_eq!(log.offsets().log_end_offset, acknowledged.len() as i64);
    drop(log); // a crash: no close

    // Recovery with the disk still full re-reads and re-indexes everything
    // without needing a byte more: it loads, and every acknowledged record
    // is there.
    let log = load_unclean(&fs.path, Arc::clone(&config));
    assert_eq!(read_all(&log, 0), acknowledged);
    let still_full = log
        .append_as_leader(batch(&[b"more".to_vec()], NOW), 0, NOW)
        .unwrap_err();
    assert_eq!(still_full.error_code(), ErrorCode::KafkaStorageError);
    drop(log);

    // Room again: after a restart the log goes on from its end.
    std::fs::remove_file(fs.path.join("filler")).unwrap();
    let log = load_unclean(&fs.path, config);
    assert_eq!(read_all(&log, 0), acknowledged);
    let next = acknowledged.len() as i64;
    assert_eq!(append(&log, &[b"after".to_vec()], NOW), next);
    log.close(NOW).unwrap();
}

#[test]
fn a_log_that_fails_to_load_takes_only_its_partition_offline() {
    let dir = tempfile::tempdir().unwrap();
    let dirs = [dir.path().to_path_buf()];
    let config = Arc::new(TopicConfig::kafka_defaults());
    let (good, bad) = (
        TopicPartition::new("good", 0),
        TopicPartition::new("bad", 0),
    );
    let ids = [Uuid::new_v4(), Uuid::new_v4()];
    let manager = LogManager::open(&dirs, 1, "cluster").unwrap();
    for (tp, id) in [(&good, ids[0]), (&bad, ids[1])] {
        let log = manager
            .get_or_create(tp, id, Arc::clone(&config), NOW)
            .unwrap();
        for i in 0..3 {
            log.append_as_leader(batch(&[value(i)], NOW), 0, NOW)
                .unwrap();
        }
        log.update_high_watermark(3);
    }
    manager.shutdown(NOW).unwrap();
    drop(manager);

    // A segment of `bad` that cannot be opened (a directory where its
    // file should be): an I/O error while loading.
    let bad_dir = dir.path().join("bad-0");
    let blocker = bad_dir.join("00000000000000000100.log");
    std::fs::create_dir(&blocker).unwrap();
    let load = |manager: &LogManager| {
        manager
            .load_logs(NOW, |tp, _| {
                let id = if tp.topic == "good" { ids[0] } else { ids[1] };
                Some((Arc::clone(&config), id))
            })
            .unwrap()
    };
    let manager = LogManager::open(&dirs, 1, "cluster").unwrap();
    let summary = load(&manager);
    assert_eq!((summary.logs, summary.offline_logs), (1, 1));

    // The broker goes on: the good partition reads and takes appends...
    let good_log = manager.get(&good).unwrap();
    assert_eq!(read_all(&good_log, 0).len(), 3);
    assert_eq!(append(&good_log, &[b"more".to_vec()], NOW), 3);
    // ...the bad one answers KAFKA_STORAGE_ERROR to everything...
    let bad_log = manager.get(&bad).unwrap();
    for e in [
        bad_log
            .append_as_leader(batch(&[b"x".to_vec()], NOW), 0, NOW)
            .unwrap_err(),
        bad_log
            .read(0, 1 << 20, strom_storage::ReadBound::LogEnd, true)
            .unwrap_err(),
        bad_log.offset_for_timestamp(0).unwrap_err(),
        bad_log.check_online().unwrap_err(),
    ] {
        assert_eq!(e.error_code(), ErrorCode::KafkaStorageError, "{e}");
    }
    // ...and its data is never mistaken for a stray and replaced by an
    // empty log, nor its checkpointed offsets forgotten.
    let again = manager
        .get_or_create(&bad, ids[1], Arc::clone(&config), NOW)
        .unwrap();
    assert!(Arc::ptr_eq(&again, &bad_log));
    assert!(bad_dir.join("00000000000000000000.log").exists());
    manager.checkpoint().unwrap();
    let recovery = read_checkpoint(&dir.path().join(RECOVERY_POINT_CHECKPOINT_FILE)).unwrap();
    assert_eq!(recovery.get(&bad), Some(&3));

    // Shutdown does not stop at the offline log: the good one is closed
    // and checkpointed, and no clean shutdown is recorded, so the next
    // start recovers.
    let err = manager.shutdown(NOW).unwrap_err();
    assert_eq!(err.error_code(), ErrorCode::KafkaStorageError, "{err}");
    assert!(matches!(
        good_log.append_as_leader(batch(&[b"late".to_vec()], NOW), 0, NOW),
        Err(StorageError::Closed(_))
    ));
    let recovery = read_checkpoint(&dir.path().join(RECOVERY_POINT_CHECKPOINT_FILE)).unwrap();
    assert_eq!(recovery.get(&good), Some(&4));
    assert!(!dir.path().join(CLEAN_SHUTDOWN_FILE).exists());
    drop((manager, good_log, bad_log, again));

    // Once the fault is gone, the next start loads both.
    std::fs::remove_dir(&blocker).unwrap();
    let manager = LogManager::open(&dirs, 1, "cluster").unwrap();
    assert!(!manager.had_clean_shutdown());
    let summary = load(&manager);
    assert_eq!((summary.logs, summary.offline_logs), (2, 0));
    assert_eq!(read_all(&manager.get(&good).unwrap(), 0).len(), 4);
    assert_eq!(read_all(&manager.get(&bad).unwrap(), 0).len(), 3);
    manager.shutdown(NOW).unwrap();
}

#[test]
fn a_failed_log_directory_takes_only_its_partitions_offline() {
    let root = tempfile::tempdir().unwrap();
    let dirs = [root.path().join("one"), root.path().join("two")];
    let config = Arc::new(TopicConfig::kafka_defaults());
    let (first, second, new) = (
        TopicPartition::new("first", 0),
        TopicPartition::new("second", 0),
        TopicPartition::new("new", 0),
    );
    let ids = [Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()];
    let manager = LogManager::open(&dirs, 1, "cluster").unwrap();
    // One log in each directory (new logs go to the least used one).
    for (tp, id) in [(&first, ids[0]), (&second, ids[1])] {
        let log = manager
            .get_or_create(tp, id, Arc::clone(&config), NOW)
            .unwrap();
        for i in 0..3 {
            log.append_as_leader(batch(&[value(i)], NOW), 0, NOW)
                .unwrap();
        }
        log.update_high_watermark(3);
    }
    assert!(dirs[1].join("second-0").is_dir());
    manager.shutdown(NOW).unwrap();
    drop(manager);

    // The second directory fails: where it was, the broker finds
    // something it cannot use as a directory.
    let moved = root.path().join("two.moved");
    std::fs::rename(&dirs[1], &moved).unwrap();
    std::fs::write(&dirs[1], b"not a directory").unwrap();

    let manager = LogManager::open(&dirs, 1, "cluster").unwrap();
    assert_eq!(manager.offline_dirs(), vec![dirs[1].clone()]);
    let summary = manager
        .load_logs(NOW, |tp, _| {
            let id = if tp.topic == "first" { ids[0] } else { ids[1] };
            Some((Arc::clone(&config), id))
        })
        .unwrap();
    assert_eq!(summary.logs, 1);
    // The metadata places both partitions here: the one not found is held
    // offline, never created empty.
    let assigned = vec![
        (first.clone(), ids[0], Arc::clone(&config)),
        (second.clone(), ids[1], Arc::clone(&config)),
    ];
    assert_eq!(manager.hold_missing_logs_offline(assigned, NOW), 1);
    let second_log = manager
        .get_or_create(&second, ids[1], Arc::clone(&config), NOW)
        .unwrap();
    assert!(second_log.is_offline());
    assert_eq!(
        second_log.check_online().unwrap_err().error_code(),
        ErrorCode::KafkaStorageError
    );
    // The other directory serves on, and takes the new logs.
    let first_log = manager.get(&first).unwrap();
    assert_eq!(read_all(&first_log, 0).len(), 3);
    assert_eq!(append(&first_log, &[b"more".to_vec()], NOW), 3);
    let new_log = manager
        .get_or_create(&new, ids[2], Arc::clone(&config), NOW)
        .unwrap();
    assert!(new_log.dir().starts_with(&dirs[0]));
    manager.checkpoint().unwrap();
    let _ = manager.shutdown(NOW);
    drop((manager, first_log, second_log, new_log));

    // Once the directory is back, its partition loads with its records.
    std::fs::remove_file(&dirs[1]).unwrap();
    std::fs::rename(&moved, &dirs[1]).unwrap();
    let manager = LogManager::open(&dirs, 1, "cluster").unwrap();
    assert!(manager.offline_dirs().is_empty());
    let summary = manager
        .load_logs(NOW, |tp, _| {
            let id = match tp.topic.as_str() {
                "first" => ids[0],
                "second" => ids[1],
                _ => ids[2],
            };
            Some((Arc::clone(&config), id))
        })
        .unwrap();
    assert_eq!((summary.logs, summary.offline_logs), (3, 0));
    assert_eq!(read_all(&manager.get(&second).unwrap(), 0).len(), 3);
    assert_eq!(read_all(&manager.get(&first).unwrap(), 0).len(), 4);
    manager.shutdown(NOW).unwrap();

    // The first directory holds the metadata log: its failure stops
    // start-up.
    std::fs::rename(&dirs[0], root.path().join("one.moved")).unwrap();
    std::fs::write(&dirs[0], b"not a directory").unwrap();
    assert!(LogManager::open(&dirs, 1, "cluster").is_err());
}
