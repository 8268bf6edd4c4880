//! A partition's idempotent producer state is bounded: clients can write
//! with any producer id, and 25,000 of them, each appending once, leave a
//! partition remembering at most `MAX_PRODUCERS_PER_PARTITION` (20,000) of
//! them, in memory and in its snapshot, the least recently appending going
//! first. A producer still remembered has its retries deduplicated, across
//! a restart too; a forgotten one is treated as new, as after
//! `producer.id.expiration.ms`, never refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use bytes::Bytes;
use common::*;
use strom_protocol::batch_builder::BatchBuilder;

const PRODUCERS: i64 = 25_000;
/// `MAX_PRODUCERS_PER_PARTITION` in strom-storage.
const MAX_PRODUCERS: usize = 20_000;
/// Bytes of one snapshot entry with one batch (see producer_state.rs).
const ENTRY_BYTES: usize = 8 + 2 + 8 + 1 + (4 + 4 + 8 + 8 + 8);
/// Version, CRC, producer count.
const SNAPSHOT_HEADER_BYTES: usize = 2 + 4 + 4;

/// The `i`th client's producer id: spread out, as random ids are.
fn producer_id(i: i64) -> i64 {
    1_000_000 + i * 7_919
}

/// Producer `i`'s first batch (epoch 0, sequence 0).
fn first_batch(i: i64) -> Bytes {
    let mut b = BatchBuilder::of_values(now_ms(), &[format!("from {i}").as_bytes()]);
    b.producer_id = producer_id(i);
    b.producer_epoch = 0;
    b.base_sequence = 0;
    Bytes::from(b.build())
}

/// Appends producer `i`'s first batch: (error code, base offset).
fn append(c: &mut strom_test_utils::KafkaConnection, i: i64) -> (i16, i64) {
    let r = produce_raw(c, 9, "ids", 0, first_batch(i), -1);
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// The producer count of the newest snapshot of `ids-0`.
fn snapshot_producers(dir: &std::path::Path) -> (usize, usize) {
    let newest = std::fs::read_dir(dir.join("ids-0"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "snapshot"))
        .max()
        .expect("a producer state snapshot");
    let bytes = std::fs::read(newest).unwrap();
    let count = i32::from_be_bytes(bytes[6..10].try_into().unwrap());
    (count as usize, bytes.len())
}

#[test]
fn random_producer_ids_keep_the_state_and_its_snapshot_bounded() {
    let mut b = broker(&[]);
    let mut c = connect(&b);
    assert_eq!(create_topic_rf(&mut c, "ids", 1, 1), 0);
    for i in 0..PRODUCERS {
        assert_eq!(append(&mut c, i), (0, i), "producer {i}");
    }
    // The newest producer's retry is a duplicate: its first offset again,
    // nothing appended.
    assert_eq!(append(&mut c, PRODUCERS - 1), (0, PRODUCERS - 1));
    assert_eq!(list_offset(&mut c, 7, "ids", 0, -1).offset, PRODUCERS);
    drop(c);

    // A clean stop snapshots the state: bounded, not 25,000 entries.
    assert_eq!(b.terminate().unwrap(), Some(0));
    let (count, size) = snapshot_producers(&b.data_dir);
    assert!(
        (MAX_PRODUCERS * 9 / 10..=MAX_PRODUCERS).contains(&count),
        "{count} producers in the snapshot"
    );
    assert_eq!(size, SNAPSHOT_HEADER_BYTES + count * ENTRY_BYTES);

    // After the restart: the newest are still deduplicated; the oldest was
    // forgotten and its retry is appended as a new producer's.
    b.spawn().unwrap();
    let mut c = connect(&b);
    assert_eq!(append(&mut c, PRODUCERS - 2), (0, PRODUCERS - 2));
    assert_eq!(append(&mut c, 0), (0, PRODUCERS));
    assert_eq!(list_offset(&mut c, 7, "ids", 0, -1).offset, PRODUCERS + 1);
}
