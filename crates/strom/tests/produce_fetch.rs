//! Produce, Fetch and ListOffsets semantics against a real broker: offsets
//! count records, fetches return whole batches (the one holding the
//! requested offset first, at least one even when over the limits), long
//! polls wait for data, validation errors carry Kafka's codes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use kafka_protocol::messages::*;
use strom_protocol::batch_builder::BatchBuilder;
use strom_protocol::ErrorCode;
use strom_test_utils::KafkaConnection;

#[test]
fn offsets_count_records_and_fetch_returns_the_batch_holding_the_offset() {
    let b = broker(&[]);
    let mut c = connect(&b);
    create_topic(&mut c, "t", 1, &[]);
    assert_eq!(produce(&mut c, "t", 0, &[b"a", b"b", b"c"]), (0, 0));
    assert_eq!(produce(&mut c, "t", 0, &[b"d", b"e"]), (0, 3));
    let latest = list_offset(&mut c, 7, "t", 0, -1);
    assert_eq!(
        (latest.error_code, latest.offset),
        (0, 5),
        "log end = last offset + 1"
    );
    // Offset 4 sits inside the second batch: that whole batch comes back.
    let p = fetch(&mut c, "t", 0, 4, 1 << 20);
    assert_eq!(p.high_watermark, 5);
    assert_eq!(p.log_start_offset, 0);
    let recs = decode_records(p.records.as_ref().unwrap());
    assert_eq!(recs, vec![(3, b"d".to_vec()), (4, b"e".to_vec())]);
    // At the log end: nothing, no error.
    let p = fetch(&mut c, "t", 0, 5, 1 << 20);
    assert_eq!(p.error_code, 0);
    assert!(p.records.as_ref().unwrap().is_empty());
    // Past the end and before the start: OFFSET_OUT_OF_RANGE.
    assert_eq!(
        fetch(&mut c, "t", 0, 6, 1 << 20).error_code,
        ErrorCode::OffsetOutOfRange.code()
    );
    assert_eq!(
        fetch(&mut c, "t", 0, -1, 1 << 20).error_code,
        ErrorCode::OffsetOutOfRange.code()
    );
}

#[test]
fn fetch_returns_one_whole_batch_over_the_limits_only_for_the_first_partition() {
    let b = broker(&[]);
    let mut c = connect(&b);
    create_topic(&mut c, "big", 2, &[]);
    let large = vec![b'x'; 10_000];
    produce(&mut c, "big", 0, &[&large]);
    produce(&mut c, "big", 1, &[&large]);
    use fetch_request::{FetchPartition, FetchTopic};
    let req = fetch_request("big", 0, 0, 100).with_topics(vec![FetchTopic::default()
        .with_topic(name("big"))
        .with_partitions(vec![
            FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(100),
            FetchPartition::default()
                .with_partition(1)
                .with_fetch_offset(0)
                .with_partition_max_bytes(100),
        ])]);
    let r = c.send(ApiKey::Fetch, 12, &req).unwrap();
    let parts = &r.responses[0].partitions;
    let first = decode_records(parts[0].records.as_ref().unwrap());
    assert_eq!(
        first.len(),
        1,
        "KIP-74: the first partition returns its whole batch"
    );
    assert_eq!(first[0].1.len(), 10_000);
    assert!(
        parts[1].records.as_ref().unwrap().is_empty(),
        "later partitions keep their limit"
    );
    // The response-wide max_bytes also bounds everything after the first.
    let req = req.with_max_bytes(10);
    let r = c.send(ApiKey::Fetch, 12, &req).unwrap();
    assert_eq!(
        decode_records(r.responses[0].partitions[0].records.as_ref().unwrap()).len(),
        1
    );
}

#[test]
fn long_poll_waits_for_data_and_for_max_wait() {
    let b = broker(&[]);
    let mut c = connect(&b);
    create_topic(&mut c, "poll", 1, &[]);
    // Nothing arrives: the fetch answers after max_wait_ms, not before.
    let started = Instant::now();
    let r = c
        .send(
            ApiKey::Fetch,
            12,
            &fetch_request("poll", 0, 0, 1 << 20)
                .with_max_wait_ms(700)
                .with_min_bytes(1),
        )
        .unwrap();
    let waited = started.elapsed();
    assert!(r.responses[0].partitions[0]
        .records
        .as_ref()
        .unwrap()
        .is_empty());
    assert!(
        waited >= Duration::from_millis(650),
        "answered after {waited:?}"
    );
    // Data produced from another connection wakes a waiting fetch early.
    let addr = b.bootstrap();
    let producer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        let mut p = strom_test_utils::KafkaConnection::connect(&addr).unwrap();
        produce(&mut p, "poll", 0, &[b"wake"]);
    });
    let started = Instant::now();
    let r = c
        .send(
            ApiKey::Fetch,
            12,
            &fetch_request("poll", 0, 0, 1 << 20)
                .with_max_wait_ms(20_000)
                .with_min_bytes(1),
        )
        .unwrap();
    let waited = started.elapsed();
    producer.join().unwrap();
    assert_eq!(
        decode_records(r.responses[0].partitions[0].records.as_ref().unwrap()),
        vec![(0, b"wake".to_vec())]
    );
    assert!(
        waited < Duration::from_secs(10),
        "fetch waited {waited:?} despite new data"
    );
}

#[test]
fn produce_validation_errors() {
    let b = broker(&[]);
    let mut c = connect(&b);
    create_topic(&mut c, "v", 1, &[("max.message.bytes", "2000")]);
    let code = |r: ProduceResponse| r.responses[0].partition_responses[0].error_code;
    let good = values_batch(&[b"ok"]);
    // Truncated batch.
    let r = produce_raw(&mut c, 9, "v", 0, good.slice(..good.len() - 3), -1);
    assert_eq!(code(r), ErrorCode::InvalidRecord.code());
    // Bad CRC.
    let mut bad = good.to_vec();
    let n = bad.len();
    bad[n - 1] ^= 0x55;
    assert_eq!(
        code(produce_raw(&mut c, 9, "v", 0, Bytes::from(bad), -1)),
        ErrorCode::CorruptMessage.code()
    );
    // Legacy magic.
    let mut legacy = good.to_vec();
    legacy[16] = 1;
    assert_eq!(
        code(produce_raw(&mut c, 9, "v", 0, Bytes::from(legacy), -1)),
        ErrorCode::InvalidRecord.code()
    );
    // Larger than max.message.bytes.
    let big = values_batch(&[&[7u8; 3000]]);
    assert_eq!(
        code(produce_raw(&mut c, 9, "v", 0, big, -1)),
        ErrorCode::MessageTooLarge.code()
    );
    // Invalid acks.
    assert_eq!(
        code(produce_raw(&mut c, 9, "v", 0, good.clone(), 2)),
        ErrorCode::InvalidRequiredAcks.code()
    );
    // Unknown topic and partition (produce never auto-creates).
    assert_eq!(
        code(produce_raw(&mut c, 9, "nope", 0, good.clone(), -1)),
        ErrorCode::UnknownTopicOrPartition.code()
    );
    assert_eq!(
        code(produce_raw(&mut c, 9, "v", 7, good.clone(), -1)),
        ErrorCode::UnknownTopicOrPartition.code()
    );
    // A timestamp a day in the future (message.timestamp.after.max.ms is 1 h).
    let mut future = BatchBuilder::of_values(now_ms() + 86_400_000, &[b"later"]);
    future.max_timestamp = None;
    assert_eq!(
        code(produce_raw(
            &mut c,
            9,
            "v",
            0,
            Bytes::from(future.build()),
            -1
        )),
        ErrorCode::InvalidTimestamp.code()
    );
    // Nothing of the above reached the log.
    assert_eq!(list_offset(&mut c, 7, "v", 0, -1).offset, 0);
    // And the good batch still goes in, with acks 1 and 0 too.
    assert_eq!(code(produce_raw(&mut c, 9, "v", 0, good.clone(), 1)), 0);
    let (cid, frame) = c
        .encode_request(ApiKey::Produce, 9, &{
            use produce_request::{PartitionProduceData, TopicProduceData};
            ProduceRequest::default()
                .with_acks(0)
                .with_timeout_ms(1000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(name("v"))
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(good.clone()))])])
        })
        .unwrap();
    let _ = cid;
    c.send_raw(&frame).unwrap();
    // acks=0 gets no response; the next request's response is the next frame.
    assert_eq!(list_offset(&mut c, 7, "v", 0, -1).offset, 2);
}

#[test]
fn acks_zero_failure_closes_the_connection() {
    let b = broker(&[]);
    let mut c = connect(&b);
    use produce_request::{PartitionProduceData, TopicProduceData};
    let req = ProduceRequest::default()
        .with_acks(0)
        .with_timeout_ms(1000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name("missing"))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(values_batch(&[b"x"])))])]);
    let (_, frame) = c.encode_request(ApiKey::Produce, 9, &req).unwrap();
    c.send_raw(&frame).unwrap();
    assert!(c.is_closed_by_peer());
}

#[test]
fn list_offsets_by_timestamp_and_special_values() {
    let b = broker(&[]);
    let mut c = connect(&b);
    create_topic(&mut c, "ts", 1, &[]);
    let base = now_ms() - 100_000;
    for (i, ts) in [base, base + 1000, base + 5000, base + 3000]
        .iter()
        .enumerate()
    {
        let mut batch = BatchBuilder::of_values(*ts, &[format!("r{i}").as_bytes(), b"second"]);
        batch.records[1].timestamp_delta = 10;
        let r = produce_raw(&mut c, 9, "ts", 0, Bytes::from(batch.build()), -1);
        assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    }
    // Records: 0@base 1@base+10 2@base+1000 3@base+1010 4@base+5000 5@base+5010 6@base+3000 7@base+3010
    let at = |c: &mut strom_test_utils::KafkaConnection, ts: i64| {
        let p = list_offset(c, 8, "ts", 0, ts);
        (p.offset, p.timestamp)
    };
    assert_eq!(at(&mut c, base), (0, base));
    assert_eq!(
        at(&mut c, base + 5),
        (1, base + 10),
        "inside a batch: the first record at or after"
    );
    assert_eq!(at(&mut c, base + 2000), (4, base + 5000));
    assert_eq!(at(&mut c, base + 999_999), (-1, -1), "nothing that late");
    assert_eq!(at(&mut c, -2), (0, -1));
    assert_eq!(at(&mut c, -1), (8, -1));
    assert_eq!(
        at(&mut c, -4).0,
        0,
        "earliest local = earliest without tiered storage"
    );
    assert_eq!(
        at(&mut c, -3),
        (5, base + 5010),
        "max timestamp: the exact record"
    );
    // -3 needs v7, -5 needs v9.
    assert_eq!(
        list_offset(&mut c, 6, "ts", 0, -3).error_code,
        ErrorCode::UnsupportedVersion.code()
    );
    let tiered = list_offset(&mut c, 9, "ts", 0, -5);
    assert_eq!(
        (tiered.error_code, tiered.offset, tiered.timestamp),
        (0, -1, -1)
    );
    assert_eq!(
        list_offset(&mut c, 9, "ts", 0, -99).error_code,
        ErrorCode::UnsupportedVersion.code()
    );
    assert_eq!(
        list_offset(&mut c, 7, "missing", 0, -1).error_code,
        ErrorCode::UnknownTopicOrPartition.code()
    );
}

#[test]
fn log_append_time_topics_stamp_batches() {
    let b = broker(&[]);
    let mut c = connect(&b);
    create_topic(
        &mut c,
        "lat",
        1,
        &[("message.timestamp.type", "LogAppendTime")],
    );
    let before = now_ms();
    let r = produce_raw(&mut c, 9, "lat", 0, values_batch(&[b"a"]), -1);
    let p = &r.responses[0].partition_responses[0];
    assert!(
        p.log_append_time_ms >= before,
        "log_append_time_ms {}",
        p.log_append_time_ms
    );
    let f = fetch(&mut c, "lat", 0, 0, 1 << 20);
    let h = strom_protocol::batch::check_batch(f.records.as_ref().unwrap()).unwrap();
    assert_eq!(h.max_timestamp, p.log_append_time_ms);
}

#[test]
fn fetch_sessions_are_declined_the_way_clients_expect() {
    let b = broker(&[]);
    let mut c = connect(&b);
    create_topic(&mut c, "sess", 1, &[]);
    produce(&mut c, "sess", 0, &[b"x"]);
    // A full fetch asking for a session (epoch 0) is answered in full, with
    // session id 0: no session was created.
    let r = c
        .send(
            ApiKey::Fetch,
            12,
            &fetch_request("sess", 0, 0, 1 << 20).with_session_epoch(0),
        )
        .unwrap();
    assert_eq!((r.error_code, r.session_id), (0, 0));
    assert_eq!(
        decode_records(r.responses[0].partitions[0].records.as_ref().unwrap()).len(),
        1
    );
    // An incremental fetch names a session this broker never created.
    let r = c
        .send(
            ApiKey::Fetch,
            12,
            &fetch_request("sess", 0, 0, 1 << 20)
                .with_session_id(123)
                .with_session_epoch(1),
        )
        .unwrap();
    assert_eq!(r.error_code, ErrorCode::FetchSessionIdNotFound.code());
    assert!(r.responses.is_empty());
    // Topic ids (v13+): unknown ids are UNKNOWN_TOPIC_ID.
    let req = fetch_request("sess", 0, 0, 1 << 20);
    let mut req13 = req.clone();
    req13.topics[0].topic_id = uuid::Uuid::new_v4();
    let r = c.send(ApiKey::Fetch, 13, &req13).unwrap();
    assert_eq!(
        r.responses[0].partitions[0].error_code,
        ErrorCode::UnknownTopicId.code()
    );
}

/// Batches crafted to hurt the broker: each gets Kafka's error and the
/// broker keeps serving.
#[test]
fn records_with_inner_offsets_out_of_line_are_refused() {
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    let b = broker(&[]);
    let mut c = connect(&b);
    create_topic(&mut c, "deltas", 1, &[]);
    let code = |r: ProduceResponse| r.responses[0].partition_responses[0].error_code;
    assert_eq!(produce(&mut c, "deltas", 0, &[b"a", b"b"]), (0, 0));
    // Two records with offset deltas 0 and 1,000,000 under a header that
    // says 0..=1, uncompressed and compressed.
    for compression in [Compression::None, Compression::Gzip] {
        let records: Vec<Record> = [0i64, 1_000_000]
            .iter()
            .map(|delta| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: *delta,
                // One batch: offset minus sequence stays the same.
                sequence: (*delta as i32).wrapping_sub(1),
                timestamp: now_ms(),
                key: None,
                value: Some(Bytes::from_static(b"stray")),
                headers: Default::default(),
            })
            .collect();
        let mut buf = bytes::BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .unwrap();
        buf[23..27].copy_from_slice(&1i32.to_be_bytes());
        let crc = strom_protocol::batch::compute_crc(&buf);
        buf[17..21].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(
            code(produce_raw(&mut c, 9, "deltas", 0, buf.freeze(), -1)),
            ErrorCode::InvalidRecord.code(),
            "{compression:?}"
        );
    }
    // Nothing was appended: the log still ends at 2, and consumers see the
    // two good records only.
    assert_eq!(list_offset(&mut c, 7, "deltas", 0, -1).offset, 2);
    let fetched = fetch(&mut c, "deltas", 0, 0, 1 << 20);
    assert_eq!(fetched.high_watermark, 2);
    assert_eq!(
        decode_records(fetched.records.as_ref().unwrap()),
        vec![(0, b"a".to_vec()), (1, b"b".to_vec())]
    );
    assert_eq!(produce(&mut c, "deltas", 0, &[b"c"]), (0, 2));
}

#[test]
fn hostile_batches_are_refused_and_the_broker_survives() {
    use kafka_protocol::records::Compression;
    let b = broker(&["message.max.bytes=10485760"]);
    let mut c = connect(&b);
    create_topic(&mut c, "hostile", 1, &[]);
    let code = |r: ProduceResponse| r.responses[0].partition_responses[0].error_code;
    let resign = |mut bytes: Vec<u8>| {
        let crc = strom_protocol::batch::compute_crc(&bytes);
        bytes[17..21].copy_from_slice(&crc.to_be_bytes());
        Bytes::from(bytes)
    };
    // A zstd batch of a few KB that inflates to 300 MiB.
    let buf = strom_protocol::batch_builder::compressed_batch_of_values(
        now_ms(),
        [Bytes::from(vec![0u8; 300 << 20])],
        Compression::Zstd,
    )
    .unwrap();
    assert!(
        buf.len() < 1 << 20,
        "the bomb should be small ({} bytes)",
        buf.len()
    );
    assert_eq!(
        code(produce_raw(&mut c, 9, "hostile", 0, buf, -1)),
        ErrorCode::InvalidRecord.code()
    );
    // A snappy block whose header declares 4 GiB.
    let mut snappy = values_batch(&[b"x"]).to_vec();
    snappy.truncate(61);
    snappy[21..23].copy_from_slice(&2i16.to_be_bytes());
    snappy.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x10, 0, 0, 0]);
    let len = (snappy.len() - 12) as i32;
    snappy[8..12].copy_from_slice(&len.to_be_bytes());
    assert_eq!(
        code(produce_raw(&mut c, 9, "hostile", 0, resign(snappy), -1)),
        ErrorCode::InvalidRecord.code()
    );
    // last_offset_delta = i32::MAX (count + 1 would overflow i32).
    let mut overflow = values_batch(&[b"x"]).to_vec();
    overflow[23..27].copy_from_slice(&i32::MAX.to_be_bytes());
    assert_eq!(
        code(produce_raw(&mut c, 9, "hostile", 0, resign(overflow), -1)),
        ErrorCode::InvalidRecord.code()
    );
    // A record timestamp delta that overflows base + delta.
    let mut spec = BatchBuilder::of_values(-1, &[b"a", b"b"]);
    spec.records[0].timestamp_delta = i64::MIN;
    spec.records[1].timestamp_delta = now_ms() + 1;
    spec.max_timestamp = Some(now_ms());
    assert_eq!(
        code(produce_raw(
            &mut c,
            9,
            "hostile",
            0,
            Bytes::from(spec.build()),
            -1
        )),
        ErrorCode::InvalidTimestamp.code()
    );
    // Still serving, and nothing was stored.
    assert_eq!(produce(&mut c, "hostile", 0, &[b"fine"]), (0, 0));
    assert_eq!(list_offset(&mut c, 7, "hostile", 0, -3).offset, 0);
}

#[test]
fn long_poll_waits_until_min_bytes_have_arrived() {
    let b = broker(&[]);
    let mut c = connect(&b);
    create_topic(&mut c, "minbytes", 1, &[]);
    let addr = b.bootstrap();
    // Ten appends of ~150 bytes, 100 ms apart.
    let producer = std::thread::spawn(move || {
        let mut p = strom_test_utils::KafkaConnection::connect(&addr).unwrap();
        for i in 0..10 {
            std::thread::sleep(Duration::from_millis(100));
            produce(
                &mut p,
                "minbytes",
                0,
                &[format!("small-{i}-{}", "s".repeat(60)).as_bytes()],
            );
        }
    });
    let started = Instant::now();
    let r = c
        .send(
            ApiKey::Fetch,
            12,
            &fetch_request("minbytes", 0, 0, 1 << 20)
                .with_max_wait_ms(10_000)
                .with_min_bytes(1000),
        )
        .unwrap();
    let waited = started.elapsed();
    producer.join().unwrap();
    let bytes = r.responses[0].partitions[0].records.as_ref().unwrap().len();
    assert!(
        bytes >= 1000,
        "answered with {bytes} bytes after {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(5),
        "waited {waited:?} although min_bytes arrived"
    );
}

fn epoch_end(
    c: &mut KafkaConnection,
    topic: &str,
    partition: i32,
    current_leader_epoch: i32,
    leader_epoch: i32,
) -> (i16, i32, i64) {
    let req = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
                .with_topic(name(topic))
                .with_partitions(vec![
                    offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
                        .with_partition(partition)
                        .with_current_leader_epoch(current_leader_epoch)
                        .with_leader_epoch(leader_epoch),
                ]),
        ]);
    let r: OffsetForLeaderEpochResponse = c.send(ApiKey::OffsetForLeaderEpoch, 4, &req).unwrap();
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.leader_epoch, p.end_offset)
}

/// The partition's leader epoch as Metadata reports it.
fn leader_epoch(c: &mut KafkaConnection, topic: &str) -> i32 {
    topic_metadata(c, topic).topics[0].partitions[0].leader_epoch
}

#[test]
fn offset_for_leader_epoch_answers_where_each_epoch_ends() {
    let mut b = broker(&[]);
    let mut c = connect(&b);
    assert_eq!(
        create_topic(&mut c, "epochs", 1, &[]).topics[0].error_code,
        0
    );
    for _ in 0..3 {
        assert_eq!(produce(&mut c, "epochs", 0, &[b"a", b"b"]).0, 0);
    }
    let first = leader_epoch(&mut c, "epochs");
    // The current epoch ends at the log end.
    assert_eq!(epoch_end(&mut c, "epochs", 0, -1, first), (0, first, 6));
    assert_eq!(epoch_end(&mut c, "epochs", 0, first, first), (0, first, 6));
    // An epoch newer than any in the log cannot be placed.
    assert_eq!(epoch_end(&mut c, "epochs", 0, -1, first + 10), (0, -1, -1));
    // The caller's idea of the current epoch is checked.
    assert_eq!(
        epoch_end(&mut c, "epochs", 0, first + 1, first).0,
        ErrorCode::UnknownLeaderEpoch.code()
    );
    assert_eq!(
        epoch_end(&mut c, "epochs", 7, -1, first).0,
        ErrorCode::UnknownTopicOrPartition.code()
    );
    // After a restart the broker leads again under a newer epoch: the old
    // epoch ends where the new one's first batch starts, across restarts.
    b.terminate().unwrap();
    b.spawn().unwrap();
    let mut c = connect(&b);
    let second = leader_epoch(&mut c, "epochs");
    assert_eq!(produce(&mut c, "epochs", 0, &[b"c"]).0, 0);
    if second > first {
        assert_eq!(epoch_end(&mut c, "epochs", 0, -1, first), (0, first, 6));
        assert_eq!(epoch_end(&mut c, "epochs", 0, -1, second), (0, second, 7));
        // An unknown epoch between them: the older one's end.
        if second > first + 1 {
            assert_eq!(epoch_end(&mut c, "epochs", 0, -1, first + 1), (0, first, 6));
        }
        assert_eq!(
            epoch_end(&mut c, "epochs", 0, first, second).0,
            ErrorCode::FencedLeaderEpoch.code()
        );
    } else {
        assert_eq!(epoch_end(&mut c, "epochs", 0, -1, first), (0, first, 7));
    }
}
