//! A full disk under a single broker: produces that do not fit get
//! KAFKA_STORAGE_ERROR (the process neither dies of SIGBUS on an index
//! page nor exits), the broker keeps answering and serving the partitions
//! that did not fail, a restart while the disk is still full is refused
//! with an error (not a signal), and once there is room again every
//! acknowledged record is at its offset.
//!
//! The log directory is a small tmpfs (`mount -t tmpfs -o size=4m`; the
//! tests run as root), grown afterwards with `mount -o remount,size=64m`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use kafka_protocol::messages::*;
use strom_test_utils::{wait_until, BrokerProcess, KafkaConnection};

/// Kafka's KAFKA_STORAGE_ERROR.
const KAFKA_STORAGE_ERROR: i16 = 56;

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
        run(
            "mount",
            &["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"],
            &path,
        );
        Tmpfs { _dir: dir, path }
    }

    fn resize(&self, size: &str) {
        run(
            "mount",
            &["-o", &format!("remount,size={size}")],
            &self.path,
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

fn run(program: &str, args: &[&str], path: &Path) {
    let out = Command::new(program).args(args).arg(path).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?} {}: {} (these tests need root)",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A broker (not started) whose only log directory is on `fs`.
fn broker_on(fs: &Tmpfs, overrides: &[&str]) -> BrokerProcess {
    let mut b = BrokerProcess::prepare(
        BIN,
        strom_test_utils::free_port(),
        overrides,
        "info,strom_server=debug",
    )
    .unwrap();
    b.data_dir = fs.path.join("data");
    b
}

/// Produces one batch of `values` with `acks`: (error code, base offset).
fn produce_acks(
    c: &mut KafkaConnection,
    topic: &str,
    partition: i32,
    values: &[&[u8]],
    acks: i16,
) -> (i16, i64) {
    let r = produce_raw(c, 9, topic, partition, values_batch(values), acks);
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// Every record of a partition from offset 0 up to `end`.
fn read_all(c: &mut KafkaConnection, topic: &str, partition: i32, end: i64) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut next = 0;
    while next < end {
        let p = fetch(c, topic, partition, next, 1 << 20);
        assert_eq!(p.error_code, 0, "fetch {topic}-{partition} at {next}");
        let records = decode_records(&p.records.unwrap());
        assert!(
            !records.is_empty(),
            "{topic}-{partition}: nothing at {next}"
        );
        next = records.last().unwrap().0 + 1;
        out.extend(records);
    }
    out
}

/// The process is alive and answers ApiVersions and Metadata on a new
/// connection.
fn assert_answers(b: &mut BrokerProcess, topic: &str) {
    assert!(b.is_running(), "the broker died; log:\n{}", b.log());
    let mut c = KafkaConnection::connect(&b.bootstrap()).unwrap();
    let versions = c
        .send(
            ApiKey::ApiVersions,
            3,
            &strom_test_utils::api_versions_request(),
        )
        .unwrap();
    assert_eq!(versions.error_code, 0);
    let metadata = topic_metadata(&mut c, topic);
    assert_eq!(metadata.topics[0].error_code, 0);
}

#[test]
fn a_full_disk_fails_produces_with_storage_errors_and_loses_no_acknowledged_record() {
    let fs = Tmpfs::mount("4m");
    // Small segments: the disk fills across rolls, with index files
    // created (and their pages first touched) along the way.
    let mut b = broker_on(&fs, &["log.segment.bytes=262144"]);
    b.spawn().unwrap();
    let mut c = connect(&b);
    assert_eq!(create_topic(&mut c, "full", 3, &[]).topics[0].error_code, 0);

    // Partition 2 gets a few records now and no produce while the disk is
    // full: it must stay readable.
    let mut acknowledged: Vec<Vec<(i64, Vec<u8>)>> = vec![Vec::new(); 3];
    for i in 0..5 {
        let value = format!("bystander-{i}").into_bytes();
        let (code, offset) = produce_acks(&mut c, "full", 2, &[&value], -1);
        assert_eq!((code, offset), (0, i));
        acknowledged[2].push((offset, value));
    }

    // Partition 0 with acks=1, partition 1 with acks=all, until each has
    // refused a produce.
    let mut refused: [Option<i16>; 2] = [None, None];
    for i in 0..2_000 {
        if refused.iter().all(Option::is_some) {
            break;
        }
        for (partition, acks) in [(0usize, 1i16), (1, -1)] {
            if refused[partition].is_some() {
                continue;
            }
            let value = format!("{partition}-{i}-{}", "x".repeat(16_000)).into_bytes();
            let (code, offset) = produce_acks(&mut c, "full", partition as i32, &[&value], acks);
            if code == 0 {
                assert_eq!(offset, acknowledged[partition].len() as i64);
                acknowledged[partition].push((offset, value));
            } else {
                refused[partition] = Some(code);
            }
        }
    }
    assert!(
        b.is_running(),
        "the broker died filling the disk; log:\n{}",
        b.log()
    );
    assert_eq!(
        refused,
        [Some(KAFKA_STORAGE_ERROR), Some(KAFKA_STORAGE_ERROR)],
        "acks=1 and acks=all produces on a full disk; log:\n{}",
        b.log()
    );
    assert!(acknowledged[0].len() > 10 && acknowledged[1].len() > 10);

    // Still a broker: it answers, refuses more produces with the same
    // error on the same connection, reports the failed partitions as
    // failed to fetches, and serves the partition that did not fail.
    assert_answers(&mut b, "full");
    for partition in [0, 1] {
        assert_eq!(
            produce_acks(&mut c, "full", partition, &[b"more"], 1).0,
            KAFKA_STORAGE_ERROR
        );
        let p = fetch(&mut c, "full", partition, 0, 1 << 20);
        assert_eq!(p.error_code, KAFKA_STORAGE_ERROR);
    }
    assert_eq!(read_all(&mut c, "full", 2, 5), acknowledged[2]);
    // A metadata change with the disk full: whatever its answer, the
    // process lives on.
    let _ = create_topic(&mut c, "later", 1, &[]);
    assert_answers(&mut b, "full");
    drop(c);

    // A restart with the disk still full. Partition logs load without
    // writing, but a node of the metadata quorum must write to start (its
    // new term), so it may refuse to: with an error naming the full disk,
    // never killed by a signal (SIGBUS in index recovery, as it was).
    let _ = b.terminate().unwrap();
    match b.spawn() {
        Ok(()) => {
            assert_answers(&mut b, "full");
            let mut c = connect(&b);
            assert_eq!(read_all(&mut c, "full", 2, 5), acknowledged[2]);
        }
        Err(e) => {
            let e = e.to_string();
            assert!(!e.contains("exited with signal"), "{e}");
            assert!(e.contains("No space left on device"), "{e}");
        }
    }

    // Room again, and a restart: every acknowledged record is at its
    // offset, and each partition takes produces from where it ended.
    fs.resize("64m");
    let _ = b.terminate().unwrap();
    b.spawn().unwrap();
    let mut c = connect(&b);
    for (partition, records) in acknowledged.iter().enumerate() {
        let partition = partition as i32;
        let end = records.len() as i64;
        assert_eq!(
            list_offset(&mut c, 7, "full", partition, -1).offset,
            end,
            "log end offset of full-{partition}"
        );
        let read = read_all(&mut c, "full", partition, end);
        assert_eq!(read.len(), records.len());
        for (got, want) in read.iter().zip(records) {
            assert!(got == want, "full-{partition}: offset {} differs", want.0);
        }
        let deadline_ok = wait_until(Duration::from_secs(20), || {
            produce_acks(&mut c, "full", partition, &[b"after"], -1) == (0, end)
        });
        assert!(
            deadline_ok,
            "full-{partition} takes produces again at {end}"
        );
    }
}
