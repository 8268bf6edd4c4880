//! Validation of a produced batch: CRC32C alone, and the whole of Kafka's
//! LogValidator checks (records walked) for uncompressed and lz4 batches.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use strom_config::TopicConfig;
use strom_protocol::batch::check_batch;
use strom_protocol::batch_builder::BatchBuilder;
use strom_storage::validate::validate_client_records;

const RECORDS: usize = 9_000;
const VALUE_BYTES: usize = 100;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn uncompressed() -> Bytes {
    let value = vec![b'v'; VALUE_BYTES];
    let values: Vec<&[u8]> = (0..RECORDS).map(|_| value.as_slice()).collect();
    Bytes::from(BatchBuilder::of_values(now_ms(), &values).build())
}

fn lz4() -> Bytes {
    let now = now_ms();
    let records: Vec<Record> = (0..RECORDS)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32 - 1,
            timestamp: now,
            key: None,
            value: Some(Bytes::from(format!("{i:0>100}"))),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::Lz4,
        },
    )
    .unwrap();
    buf.freeze()
}

fn bench(c: &mut Criterion) {
    let config = TopicConfig::kafka_defaults();
    let plain = uncompressed();
    let compressed = lz4();
    let mut g = c.benchmark_group("validate");
    g.throughput(Throughput::Elements(RECORDS as u64));
    g.bench_function("crc32c only, 9000 x 100 B", |b| {
        b.iter(|| check_batch(&plain).unwrap())
    });
    g.bench_function("full, uncompressed, 9000 x 100 B", |b| {
        b.iter(|| validate_client_records(&plain, &config, 9, now_ms()).unwrap())
    });
    g.bench_function("full, lz4, 9000 x 100 B", |b| {
        b.iter(|| validate_client_records(&compressed, &config, 9, now_ms()).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
