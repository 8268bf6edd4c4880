//! Durability and start-up against real processes: clean restarts keep
//! topics, configs and data byte for byte; SIGKILL with flush.messages=1
//! loses nothing acknowledged; a simulated power loss (the log directory on
//! `tests/faults/faultfuse.py`, which forgets whatever was not fsynced)
//! loses nothing acknowledged with flush.messages=1 and does lose
//! acknowledged records without it; a torn tail is cut off; bad
//! configuration stops start-up with a message naming the key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use strom_test_utils::{BrokerProcess, KafkaConnection};

/// Every record of a partition as raw fetched bytes (all batches).
fn fetch_all(c: &mut KafkaConnection, topic: &str, partition: i32) -> Bytes {
    let end = list_offset(c, 7, topic, partition, -1).offset;
    let mut out = Vec::new();
    let mut next = 0;
    while next < end {
        let p = fetch(c, topic, partition, next, 1 << 20);
        assert_eq!(p.error_code, 0);
        let records = p.records.unwrap();
        let decoded = decode_records(&records);
        assert!(!decoded.is_empty());
        next = decoded.last().unwrap().0 + 1;
        out.extend_from_slice(&records);
    }
    Bytes::from(out)
}

fn topic_id(c: &mut KafkaConnection, topic: &str) -> uuid::Uuid {
    topic_metadata(c, topic).topics[0].topic_id
}

fn retention_ms(c: &mut KafkaConnection, topic: &str) -> Option<String> {
    let req = DescribeConfigsRequest::default().with_resources(vec![
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_string(topic.into()))
            .with_configuration_keys(Some(vec![StrBytes::from_static_str("retention.ms")])),
    ]);
    let r = c.send(ApiKey::DescribeConfigs, 4, &req).unwrap();
    r.results[0]
        .configs
        .first()
        .and_then(|c| c.value.as_ref().map(|v| v.to_string()))
}

fn fill(c: &mut KafkaConnection, topic: &str, partitions: i32, batches: usize) {
    for i in 0..batches {
        let v1 = format!("{topic}-{i}-a");
        let v2 = format!("{topic}-{i}-b-{}", "z".repeat(i % 50));
        let (code, _) = produce(
            c,
            topic,
            (i as i32) % partitions,
            &[v1.as_bytes(), v2.as_bytes()],
        );
        assert_eq!(code, 0);
    }
}

#[test]
fn clean_restart_keeps_topics_configs_and_data_byte_for_byte() {
    let mut b = broker(&["log.segment.bytes=4096"]);
    let mut c = connect(&b);
    create_topic(&mut c, "keep", 3, &[("retention.ms", "86400000")]);
    fill(&mut c, "keep", 3, 200);
    let id = topic_id(&mut c, "keep");
    let before: Vec<Bytes> = (0..3).map(|p| fetch_all(&mut c, "keep", p)).collect();
    drop(c);
    assert_eq!(b.terminate().unwrap(), Some(0), "clean exit on SIGTERM");
    assert!(b.data_dir.join(".kafka_cleanshutdown").exists());
    b.spawn().unwrap();
    assert!(b.log().contains("had_clean_shutdown=true"));
    let mut c = connect(&b);
    assert_eq!(topic_id(&mut c, "keep"), id);
    assert_eq!(retention_ms(&mut c, "keep").as_deref(), Some("86400000"));
    for (p, bytes) in before.iter().enumerate() {
        assert_eq!(
            &fetch_all(&mut c, "keep", p as i32),
            bytes,
            "partition {p} differs after restart"
        );
    }
    let end = list_offset(&mut c, 7, "keep", 0, -1).offset;
    assert_eq!(produce(&mut c, "keep", 0, &[b"after"]), (0, end));
}

#[test]
fn sigkill_with_flush_messages_1_loses_no_acknowledged_write() {
    let mut b = broker(&["log.flush.interval.messages=1", "log.segment.bytes=8192"]);
    let mut c = connect(&b);
    create_topic(&mut c, "safe", 2, &[]);
    fill(&mut c, "safe", 2, 300);
    let before: Vec<Bytes> = (0..2).map(|p| fetch_all(&mut c, "safe", p)).collect();
    b.kill();
    assert!(!b.data_dir.join(".kafka_cleanshutdown").exists());
    b.spawn().unwrap();
    assert!(b.log().contains("had_clean_shutdown=false"));
    let mut c = connect(&b);
    for (p, bytes) in before.iter().enumerate() {
        assert_eq!(
            &fetch_all(&mut c, "safe", p as i32),
            bytes,
            "partition {p} lost data after SIGKILL"
        );
    }
}

#[test]
fn torn_tail_after_a_crash_is_cut_and_the_log_continues() {
    let mut b = broker(&[]);
    let mut c = connect(&b);
    create_topic(&mut c, "torn", 1, &[]);
    fill(&mut c, "torn", 1, 20);
    let before = fetch_all(&mut c, "torn", 0);
    b.kill();
    // Half a batch at the end of the active segment, as a crash mid-write leaves.
    let seg = b.data_dir.join("torn-0").join("00000000000000000000.log");
    let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(&before[..before.len().min(50)]).unwrap();
    drop(f);
    b.spawn().unwrap();
    let mut c = connect(&b);
    assert_eq!(fetch_all(&mut c, "torn", 0), before);
    assert_eq!(produce(&mut c, "torn", 0, &[b"next"]), (0, 40));
}

#[test]
fn invalid_configuration_stops_start_up_naming_the_key() {
    for (args, key) in [
        (vec!["--override", "num.partitions=zero"], "num.partitions"),
        (vec!["--override", "listeners=nonsense"], "listeners"),
        (
            vec!["--override", "log.retention.ms=-5"],
            "log.retention.ms",
        ),
        (
            vec!["--override", "auto.create.topics.enable=yes"],
            "auto.create.topics.enable",
        ),
    ] {
        let out = Command::new(BIN).arg("serve").args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(key), "{args:?}: {stderr}");
    }
    let out = Command::new(BIN)
        .args(["--config", "/nonexistent/server.properties"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/server.properties"));
}

#[test]
fn config_file_env_and_overrides_apply_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("server.properties");
    std::fs::write(&file, "num.partitions=2\ndefault.replication.factor=1\n").unwrap();
    let port = strom_test_utils::free_port();
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&file)
        .args([
            "--override",
            &format!("listeners=PLAINTEXT://127.0.0.1:{port}"),
        ])
        .args([
            "--override",
            &format!("log.dirs={}", dir.path().join("data").display()),
        ])
        .args(["--override", "http.listener="])
        .env("STROM_CFG_NUM_PARTITIONS", "5")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}");
    assert!(strom_test_utils::wait_until(
        std::time::Duration::from_secs(20),
        || KafkaConnection::connect(&addr).is_ok()
    ));
    let mut c = KafkaConnection::connect(&addr).unwrap();
    let req = MetadataRequest::default()
        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
        )
        .with_name(Some(name("envtopic")))]))
        .with_allow_auto_topic_creation(true);
    let r = c.send(ApiKey::Metadata, 12, &req).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        r.topics[0].partitions.len(),
        5,
        "STROM_CFG_NUM_PARTITIONS beats the file"
    );
}

#[test]
fn a_data_directory_is_used_by_one_broker_only() {
    let b = broker(&[]);
    let out = Command::new(BIN)
        .args([
            "serve",
            "--override",
            "listeners=PLAINTEXT://127.0.0.1:0",
            "--override",
            "http.listener=",
        ])
        .arg("--override")
        .arg(format!("log.dirs={}", b.data_dir.display()))
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("lock"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // And one of another node id is refused.
    let mut other: BrokerProcess = broker(&[]);
    other.kill();
    let out = Command::new(BIN)
        .args([
            "serve",
            "--override",
            "node.id=7",
            "--override",
            "http.listener=",
        ])
        .arg("--override")
        .arg(format!(
            "listeners=PLAINTEXT://127.0.0.1:{}",
            strom_test_utils::free_port()
        ))
        .arg("--override")
        .arg(format!("log.dirs={}", other.data_dir.display()))
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("node.id=1"));
}

#[test]
fn unknown_or_unreadable_logs_are_set_aside_never_deleted() {
    let mut b = broker(&[]);
    let mut c = connect(&b);
    create_topic(&mut c, "keepme", 2, &[]);
    fill(&mut c, "keepme", 2, 20);
    let before = fetch_all(&mut c, "keepme", 0);
    drop(c);
    assert_eq!(b.terminate().unwrap(), Some(0));
    // Partition 0 lost its partition.metadata (as a log copied from an old
    // Kafka); partition 1's is garbled; a log of a topic nobody knows.
    std::fs::remove_file(b.data_dir.join("keepme-0/partition.metadata")).unwrap();
    std::fs::write(
        b.data_dir.join("keepme-1/partition.metadata"),
        "version: 0\ntopic_id: ###\n",
    )
    .unwrap();
    std::fs::create_dir(b.data_dir.join("ghost-0")).unwrap();
    std::fs::write(
        b.data_dir.join("ghost-0/00000000000000000000.log"),
        b"precious",
    )
    .unwrap();
    b.spawn().unwrap();
    let mut c = connect(&b);
    // The missing id is adopted from the metadata and the data served.
    assert_eq!(fetch_all(&mut c, "keepme", 0), before);
    assert!(
        std::fs::read_to_string(b.data_dir.join("keepme-0/partition.metadata"))
            .unwrap()
            .contains("topic_id: ")
    );
    // The others were set aside with their contents.
    let names: Vec<String> = std::fs::read_dir(&b.data_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let ghost = names
        .iter()
        .find(|n| n.starts_with("ghost-0.") && n.ends_with("-stray"))
        .expect("ghost set aside");
    assert_eq!(
        std::fs::read(b.data_dir.join(ghost).join("00000000000000000000.log")).unwrap(),
        b"precious"
    );
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("keepme-1.") && n.ends_with("-stray")),
        "{names:?}"
    );
    // The partition whose log was set aside starts empty, still writable.
    assert_eq!(produce(&mut c, "keepme", 1, &[b"again"]), (0, 0));
}

// --- Power loss: the log directory on a layer that forgets unsynced writes.
//
// SIGKILL keeps the page cache, so it cannot tell an fsynced write from one
// that is not. `tests/faults/faultfuse.py` can: a FUSE passthrough that,
// on a simulated power loss, puts every file back to what it held at its
// last fsync and every directory to the names it held at its last fsync.

/// Debian's interpreter, which has `python3-fusepy` (tests/run installs it
/// with `fuse3`).
const FAULTFUSE_PYTHON: &str = "/usr/bin/python3";

/// How long the FUSE layer may take to mount, roll back or unmount.
const FAULTFUSE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a broker on the FUSE layer (slow: every operation crosses into
/// Python) may take to start or recover.
const SLOW_START: Duration = Duration::from_secs(120);

/// A directory on `tests/faults/faultfuse.py` (its docs state what counts
/// as durable). Unmounted on drop: declare it before the brokers using it,
/// so they are killed first.
struct FaultFs {
    _temp: tempfile::TempDir,
    /// The temporary directory's canonical path (as mountinfo shows it):
    /// `backing/`, `mnt/`, `ctl`, `faultfuse.log`.
    root: PathBuf,
    /// Control tokens of each mount (`lose-unsynced`, `tear-unsynced`).
    tokens: String,
    daemon: Option<Child>,
}

impl FaultFs {
    fn mount(tokens: &str) -> Self {
        let temp = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(temp.path()).unwrap();
        std::fs::create_dir(root.join("backing")).unwrap();
        std::fs::create_dir(root.join("mnt")).unwrap();
        let mut fs = FaultFs {
            _temp: temp,
            root,
            tokens: tokens.to_string(),
            daemon: None,
        };
        fs.start();
        fs
    }

    /// The mount point.
    fn path(&self) -> PathBuf {
        self.root.join("mnt")
    }

    fn ctl(&self) -> PathBuf {
        self.root.join("ctl")
    }

    fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.root.join("faultfuse.log")).unwrap_or_default()
    }

    /// Replaces the control file whole (the layer re-reads it when its
    /// modification time changes).
    fn write_ctl(&self, tokens: &str) {
        let tmp = self.root.join("ctl.tmp");
        std::fs::write(&tmp, format!("{tokens}\n")).unwrap();
        std::fs::rename(&tmp, self.ctl()).unwrap();
    }

    fn ctl_has(&self, token: &str) -> bool {
        std::fs::read_to_string(self.ctl())
            .unwrap_or_default()
            .split_whitespace()
            .any(|t| t == token)
    }

    fn is_mounted(&self) -> bool {
        let mount = self.path();
        let mount = mount.to_str().unwrap();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .any(|l| l.split(' ').nth(4) == Some(mount))
    }

    fn start(&mut self) {
        self.write_ctl(&self.tokens);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join("faultfuse.log"))
            .unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/faults/faultfuse.py");
        let daemon = Command::new(FAULTFUSE_PYTHON)
            .arg(script)
            .arg(self.root.join("backing"))
            .arg(self.path())
            .arg(self.ctl())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run {FAULTFUSE_PYTHON} (tests/run installs it): {e}")
            });
        self.daemon = Some(daemon);
        let deadline = std::time::Instant::now() + FAULTFUSE_TIMEOUT;
        while !self.is_mounted() {
            let exited = self.daemon.as_mut().unwrap().try_wait().unwrap();
            assert!(
                exited.is_none() && std::time::Instant::now() < deadline,
                "faultfuse did not mount (needs fuse3 and python3-fusepy; tests/run installs them); \
                 its output:\n{}",
                self.daemon_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A power cut: call it once the processes writing here are dead
    /// (SIGKILLed). Every file and directory goes back to its durable
    /// state, and the layer is mounted again with cold caches, as after a
    /// reboot.
    fn power_loss(&mut self) {
        self.write_ctl(&format!("{} crash", self.tokens));
        // The layer reads its control file when an operation reaches it.
        let rolled_back = strom_test_utils::wait_until(FAULTFUSE_TIMEOUT, || {
            let _ = std::fs::metadata(self.path());
            !self.ctl_has("crash")
        });
        assert!(
            rolled_back && !self.ctl_has("crash-failed"),
            "faultfuse did not roll back; its output:\n{}",
            self.daemon_log()
        );
        self.unmount();
        self.start();
    }

    fn unmount(&mut self) {
        if self.is_mounted() {
            let unmounted = Command::new("fusermount3")
                .arg("-u")
                .arg(self.path())
                .status()
                .is_ok_and(|s| s.success());
            if !unmounted {
                let _ = Command::new("umount").arg("-l").arg(self.path()).status();
            }
        }
        if let Some(mut daemon) = self.daemon.take() {
            let exited = strom_test_utils::wait_until(FAULTFUSE_TIMEOUT, || {
                daemon.try_wait().ok().flatten().is_some()
            });
            if !exited {
                let _ = daemon.kill();
                let _ = daemon.wait();
            }
        }
    }
}

impl Drop for FaultFs {
    fn drop(&mut self) {
        self.unmount();
    }
}

/// A broker whose log directory is on `fs`.
fn broker_on(fs: &FaultFs, overrides: &[&str]) -> BrokerProcess {
    let mut b =
        BrokerProcess::prepare(BIN, strom_test_utils::free_port(), overrides, "info").unwrap();
    b.data_dir = fs.path().join("data");
    restart(&mut b);
    b
}

fn restart(b: &mut BrokerProcess) {
    b.launch().unwrap();
    b.wait_ready(SLOW_START).unwrap();
}

/// A record the broker acknowledged.
#[derive(Debug, Clone)]
struct Acked {
    topic: String,
    partition: i32,
    offset: i64,
    value: Vec<u8>,
}

/// Produces one-record batches from `first` on, over `topics` × partitions
/// 0 and 1 in turn, with acks=all and acks=1 in turn, until the broker stops
/// answering; every acknowledged record goes to `acked`.
fn produce_until_killed(
    addr: String,
    topics: &[&str],
    first: usize,
    acked: Arc<Mutex<Vec<Acked>>>,
) -> std::thread::JoinHandle<()> {
    let topics: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
    std::thread::spawn(move || {
        let Ok(mut c) = KafkaConnection::connect(&addr) else {
            return;
        };
        c.set_read_timeout(Duration::from_secs(30));
        for i in first..first + 100_000 {
            let topic = &topics[i % topics.len()];
            let round = i / topics.len();
            let acks = if round.is_multiple_of(2) { -1 } else { 1 };
            let partition = (round / 2 % 2) as i32;
            let value = format!("{topic}-{i}-{}", "v".repeat(i % 61)).into_bytes();
            let req = ProduceRequest::default()
                .with_acks(acks)
                .with_timeout_ms(30_000)
                .with_topic_data(vec![produce_request::TopicProduceData::default()
                    .with_name(name(topic))
                    .with_partition_data(vec![
                        produce_request::PartitionProduceData::default()
                            .with_index(partition)
                            .with_records(Some(values_batch(&[&value]))),
                    ])]);
            let Ok(r) = c.send(ApiKey::Produce, 9, &req) else {
                return;
            };
            let p = &r.responses[0].partition_responses[0];
            if p.error_code != 0 {
                return;
            }
            acked.lock().unwrap().push(Acked {
                topic: topic.clone(),
                partition,
                offset: p.base_offset,
                value,
            });
        }
    })
}

/// Runs the producer until `count` more records are acknowledged, then
/// SIGKILLs the broker and cuts the power.
fn produce_then_power_loss(
    fs: &mut FaultFs,
    b: &mut BrokerProcess,
    topics: &[&str],
    first: usize,
    count: usize,
    acked: &Arc<Mutex<Vec<Acked>>>,
) {
    let target = acked.lock().unwrap().len() + count;
    let producer = produce_until_killed(b.bootstrap(), topics, first, Arc::clone(acked));
    assert!(
        strom_test_utils::wait_until(SLOW_START, || acked.lock().unwrap().len() >= target),
        "the producer stopped at {} acknowledged records; broker log:\n{}",
        acked.lock().unwrap().len(),
        b.log()
    );
    // Killed while the producer still writes: a batch may be half-way
    // between its write and its fsync.
    b.kill();
    fs.power_loss();
    producer.join().unwrap();
}

/// Reads a partition from offset 0 as a consumer does, until `end`
/// (exclusive; the high watermark must reach it): every batch's CRC
/// checked, offsets increasing. Offset → value.
fn consume(
    c: &mut KafkaConnection,
    topic: &str,
    partition: i32,
    end: i64,
) -> std::collections::BTreeMap<i64, Vec<u8>> {
    assert!(
        strom_test_utils::wait_until(Duration::from_secs(30), || {
            list_offset(c, 7, topic, partition, -1).offset >= end
        }),
        "{topic}-{partition}: the high watermark did not reach {end}"
    );
    let mut out = std::collections::BTreeMap::new();
    let mut next = 0;
    while next < end {
        let p = fetch(c, topic, partition, next, 1 << 20);
        assert_eq!(p.error_code, 0, "{topic}-{partition} at {next}");
        let decoded = decode_records(&p.records.unwrap_or_default());
        assert!(
            !decoded.is_empty(),
            "{topic}-{partition}: nothing to read at {next}, below {end}"
        );
        for (offset, value) in decoded {
            assert!(offset >= next, "{topic}-{partition}: offsets go back");
            next = offset + 1;
            out.insert(offset, value);
        }
    }
    out
}

/// After a restart: appends a marker to each partition of `topic` with
/// acks=all (its offset is the log end offset), consumes the partition from
/// 0 through the marker, and takes the records of `acked` that are not at
/// their offsets with their values out of it; returns how many. Without
/// `gaps`, offsets must run without holes. The markers join `acked`.
fn take_lost(c: &mut KafkaConnection, topic: &str, acked: &mut Vec<Acked>, gaps: bool) -> usize {
    let before = acked.len();
    for partition in 0..2 {
        let marker = format!("{topic}-{partition}-marker-{}", acked.len()).into_bytes();
        let (code, end) = produce(c, topic, partition, &[&marker]);
        assert_eq!(code, 0, "{topic}-{partition}: produce after recovery");
        let records = consume(c, topic, partition, end + 1);
        assert_eq!(records.get(&end), Some(&marker));
        if !gaps {
            assert!(
                records.keys().copied().eq(0..=end),
                "{topic}-{partition}: offsets with holes"
            );
            let last_acked = acked
                .iter()
                .filter(|a| a.topic == topic && a.partition == partition)
                .map(|a| a.offset)
                .max();
            assert!(
                last_acked.is_none_or(|last| end > last),
                "{topic}-{partition}: the log ends at {end}, below acknowledged offset {last_acked:?}"
            );
        }
        acked.retain(|a| {
            a.topic != topic || a.partition != partition || records.get(&a.offset) == Some(&a.value)
        });
        acked.push(Acked {
            topic: topic.to_string(),
            partition,
            offset: end,
            value: marker,
        });
    }
    before + 2 - acked.len()
}

#[test]
fn the_fault_layer_forgets_what_was_not_fsynced() {
    let mut fs = FaultFs::mount("lose-unsynced");
    let root = fs.path();
    let dir = root.join("d");
    let sync_dir = |p: &Path| std::fs::File::open(p).unwrap().sync_all().unwrap();
    let write_synced = |p: &Path, text: &str| {
        let mut f = std::fs::File::create(p).unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f.sync_all().unwrap();
    };
    std::fs::create_dir(&dir).unwrap();
    sync_dir(&root);
    write_synced(&dir.join("kept"), "synced");
    write_synced(&dir.join("replaced"), "old");
    sync_dir(&dir);
    // Not durable: an append without fsync, a file whose directory was not
    // fsynced, a rename without a directory fsync, a directory likewise.
    std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("kept"))
        .unwrap()
        .write_all(b" and not")
        .unwrap();
    write_synced(&dir.join("nameless"), "contents");
    write_synced(&dir.join("replaced.tmp"), "new");
    std::fs::rename(dir.join("replaced.tmp"), dir.join("replaced")).unwrap();
    std::fs::create_dir(root.join("e")).unwrap();
    fs.power_loss();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["kept", "replaced"]);
    assert_eq!(std::fs::read_to_string(dir.join("kept")).unwrap(), "synced");
    assert_eq!(
        std::fs::read_to_string(dir.join("replaced")).unwrap(),
        "old"
    );
    assert!(!root.join("e").exists());
}

/// Two power cuts under a single broker, with the producer running: the
/// first keeps half of every file's unsynced appended bytes (torn tails in
/// segments and indexes), the second none. `synced` has flush.messages=1:
/// every acknowledged record must survive both at its offset, and the log
/// continue without holes. `unsynced` has the defaults (acknowledged once in
/// the page cache): it must recover to a readable log, and it does lose
/// acknowledged records, which shows the layer really drops what was not
/// fsynced, so the first assertion means something.
#[test]
fn power_loss_loses_nothing_acknowledged_with_flush_messages_1() {
    let mut fs = FaultFs::mount("lose-unsynced tear-unsynced");
    let mut b = broker_on(
        &fs,
        &[
            "log.segment.bytes=2048",
            "log.index.size.max.bytes=4096",
            // Checkpoints are rewritten while the power goes.
            "log.flush.offset.checkpoint.interval.ms=20",
        ],
    );
    let mut c = connect(&b);
    for (topic, configs) in [
        ("synced", vec![("flush.messages", "1")]),
        ("unsynced", vec![]),
    ] {
        let r = create_topic(&mut c, topic, 2, &configs);
        assert_eq!(r.topics[0].error_code, 0, "{topic}");
    }
    drop(c);
    let topics = ["synced", "unsynced"];
    let acked = Arc::new(Mutex::new(Vec::new()));

    produce_then_power_loss(&mut fs, &mut b, &topics, 0, 200, &acked);
    restart(&mut b);
    assert!(b.log().contains("had_clean_shutdown=false"), "{}", b.log());
    assert!(
        b.log()
            .contains("truncated a torn or corrupt tail during recovery"),
        "no torn tail was recovered; broker log:\n{}",
        b.log()
    );
    let mut c = connect(&b);
    let mut all = acked.lock().unwrap().clone();
    let acked_synced = all.iter().filter(|a| a.topic == "synced").count();
    assert_eq!(take_lost(&mut c, "synced", &mut all, false), 0);
    let lost_unsynced = take_lost(&mut c, "unsynced", &mut all, true);
    assert!(
        lost_unsynced > 0,
        "without flush.messages the power loss took no acknowledged record: the layer kept unsynced writes"
    );
    eprintln!("first power loss: {acked_synced} acknowledged synced records kept, {lost_unsynced} acknowledged unsynced records lost");
    *acked.lock().unwrap() = all;
    drop(c);

    fs.tokens = "lose-unsynced".into();
    produce_then_power_loss(&mut fs, &mut b, &topics, 1_000_000, 100, &acked);
    restart(&mut b);
    let mut c = connect(&b);
    let mut all = acked.lock().unwrap().clone();
    assert_eq!(take_lost(&mut c, "synced", &mut all, false), 0);
    let lost_unsynced = take_lost(&mut c, "unsynced", &mut all, true);
    assert!(lost_unsynced > 0);
    eprintln!("second power loss: {lost_unsynced} acknowledged unsynced records lost");
    // And the broker goes on: a clean restart keeps everything.
    drop(c);
    assert_eq!(b.terminate().unwrap(), Some(0));
    restart(&mut b);
    let mut c = connect(&b);
    assert_eq!(take_lost(&mut c, "synced", &mut all, false), 0);
}
