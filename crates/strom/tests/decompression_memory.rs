//! Compressed batches whose records inflate to hundreds of megabytes cost
//! the broker a bounded amount of memory while it validates them: records
//! are walked as a stream through a small buffer, holding no record's key
//! or value, so sixteen such batches produced at once on eight connections
//! raise the broker's peak RSS by little, and are stored as sent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use bytes::Bytes;
use common::*;
use kafka_protocol::records::Compression;
use strom_protocol::batch_builder::compressed_batch_of_values;

/// What one record inflates to.
const INFLATED_RECORD_BYTES: usize = 200 << 20;
/// The growth of the broker's peak RSS allowed while it validates them.
const ALLOWED_GROWTH_BYTES: u64 = 64 << 20;

fn inflating_batch(compression: Compression) -> Bytes {
    let value = Bytes::from(vec![0u8; INFLATED_RECORD_BYTES]);
    compressed_batch_of_values(now_ms(), [value], compression).unwrap()
}

#[test]
fn sixteen_batches_inflating_to_200_mib_each_cost_little_memory_and_are_stored() {
    let b = broker(&[]);
    let mut c = connect(&b);
    assert_eq!(
        create_topic(&mut c, "inflating", 1, &[]).topics[0].error_code,
        0
    );
    let batches = [
        inflating_batch(Compression::Zstd),
        inflating_batch(Compression::Gzip),
        inflating_batch(Compression::Lz4),
    ];
    for batch in &batches {
        assert!(batch.len() < 1 << 20, "a {} byte batch", batch.len());
    }
    let pid = b.pid().unwrap();
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
    let before_kib = status_kib(pid, "VmHWM");
    std::thread::scope(|s| {
        for i in 0..8 {
            let batches = &batches;
            let b = &b;
            s.spawn(move || {
                let mut c = connect(b);
                for j in 0..2 {
                    let batch = batches[(i + j) % batches.len()].clone();
                    let r = produce_raw(&mut c, 9, "inflating", 0, batch, 1);
                    let p = &r.responses[0].partition_responses[0];
                    assert_eq!(p.error_code, 0, "{:?}", p.error_message);
                }
            });
        }
    });
    let peak_kib = status_kib(pid, "VmHWM");
    eprintln!("peak RSS {before_kib} KiB before, {peak_kib} KiB while validating");
    assert!(
        (peak_kib - before_kib) * 1024 <= ALLOWED_GROWTH_BYTES,
        "the broker's peak RSS grew by {} KiB",
        peak_kib - before_kib
    );
    // Stored: all sixteen read back.
    let fetched = fetch(&mut c, "inflating", 0, 0, 16 << 20);
    let stored = fetched.records.unwrap();
    assert_eq!(
        strom_protocol::batch::BatchIter::new(&stored).count(),
        16,
        "sixteen batches stored"
    );
}
