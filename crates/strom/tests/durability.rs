//! Durability and start-up against real processes: clean restarts keep
//! topics, configs and data byte for byte; SIGKILL with flush.messages=1
//! loses nothing acknowledged; a torn tail is cut off; bad configuration
//! stops start-up with a message naming the key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::io::Write;
use std::process::Command;

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
