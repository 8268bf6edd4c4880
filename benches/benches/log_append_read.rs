//! The partition log's hot paths on real files: appending 1 MB batches and
//! reading them back by offset.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use strom_config::TopicConfig;
use strom_protocol::batch_builder::BatchBuilder;
use strom_storage::log::Log;
use strom_storage::{ReadBound, TopicPartition};

fn bench(c: &mut Criterion) {
    let value = vec![b'v'; 100];
    let values: Vec<&[u8]> = (0..9_000).map(|_| value.as_slice()).collect();
    let batch = BatchBuilder::of_values(1_700_000_000_000, &values).build();
    let dir = tempfile::tempdir().unwrap();
    let mut config = TopicConfig::kafka_defaults();
    config.segment_bytes = 256 << 20;
    let log = Log::create(
        dir.path().join("b-0"),
        TopicPartition::new("b", 0),
        uuid::Uuid::new_v4(),
        Arc::new(config),
        0,
    )
    .unwrap();
    let mut g = c.benchmark_group("log");
    g.throughput(Throughput::Bytes(batch.len() as u64));
    g.bench_function("append 1 MB batch", |b| {
        b.iter(|| {
            let info = log
                .append_as_leader(BytesMut::from(&batch[..]), 0, 1_700_000_000_000)
                .unwrap();
            log.update_high_watermark(info.last_offset + 1);
        })
    });
    let end = log.offsets().log_end_offset;
    let mut offset = 0;
    g.bench_function("read 1 MB at an offset", |b| {
        b.iter(|| {
            let r = log
                .read(offset % end, 1 << 20, ReadBound::HighWatermark, true)
                .unwrap();
            offset += 9_000 * 7;
            r
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
