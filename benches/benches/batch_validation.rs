//! Validation of a produced batch: CRC32C alone, and the whole of Kafka's
//! LogValidator checks (records walked) for uncompressed and lz4 batches.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kafka_protocol::records::Compression;
use strom_config::TopicConfig;
use strom_protocol::batch::check_batch;
use strom_protocol::batch_builder::{compressed_batch_of_values, BatchBuilder};
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
    let values = (0..RECORDS).map(|i| Bytes::from(format!("{i:0>100}")));
    compressed_batch_of_values(now_ms(), values, Compression::Lz4).unwrap()
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
