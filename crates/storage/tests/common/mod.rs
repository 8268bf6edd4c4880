//! Helpers shared by the storage integration tests.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use strom_config::TopicConfig;
use strom_protocol::batch::BatchIter;
use strom_protocol::batch_builder::BatchBuilder;
use strom_protocol::records::RecordIter;
use strom_storage::log::{LoadOptions, Log};
use strom_storage::{ReadBound, TopicPartition};
use uuid::Uuid;

pub const NOW: i64 = 1_700_000_000_000;

pub fn small_config(segment_bytes: i32) -> Arc<TopicConfig> {
    let mut c = TopicConfig::kafka_defaults();
    c.segment_bytes = segment_bytes;
    c.index_interval_bytes = 64;
    c.segment_index_bytes = 4096;
    Arc::new(c)
}

pub fn tp() -> TopicPartition {
    TopicPartition::new("t", 0)
}

pub fn create(dir: &Path, config: Arc<TopicConfig>) -> Log {
    Log::create(dir.join("t-0"), tp(), Uuid::new_v4(), config, NOW).unwrap()
}

pub fn load(
    dir: &Path,
    config: Arc<TopicConfig>,
    clean: bool,
    recovery_point: i64,
) -> (Log, strom_storage::log::LoadReport) {
    Log::load(
        dir.join("t-0"),
        tp(),
        config,
        LoadOptions {
            had_clean_shutdown: clean,
            recovery_point,
            log_start_offset: 0,
            high_watermark: None,
            now_ms: NOW,
            topic_id: Uuid::new_v4(),
        },
    )
    .unwrap()
}

pub fn batch(values: &[Vec<u8>], timestamp: i64) -> BytesMut {
    let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
    BytesMut::from(&BatchBuilder::of_values(timestamp, &refs).build()[..])
}

/// Appends `values` as one batch; returns its base offset.
pub fn append(log: &Log, values: &[Vec<u8>], timestamp: i64) -> i64 {
    let info = log
        .append_as_leader(batch(values, timestamp), 0, NOW)
        .unwrap();
    log.update_high_watermark(info.last_offset + 1);
    info.base_offset
}

/// Decodes (offset, value) of every record in `records`.
pub fn decode(records: &Bytes) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    for item in BatchIter::new(records) {
        let (pos, h) = item.unwrap();
        let batch = records.slice(pos..pos + h.size_bytes());
        strom_protocol::batch::check_batch(&batch).unwrap();
        let payload = strom_protocol::batch::records_payload(&batch);
        for r in RecordIter::new(payload) {
            let r = r.unwrap();
            out.push((
                h.base_offset + i64::from(r.offset_delta),
                r.value.unwrap().to_vec(),
            ));
        }
    }
    out
}

/// Reads every record from `from` to the log end.
pub fn read_all(log: &Log, from: i64) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut next = from;
    loop {
        let end = log.offsets().log_end_offset;
        if next >= end {
            return out;
        }
        let r = log.read(next, 1 << 20, ReadBound::LogEnd, true).unwrap();
        let recs = decode(&r.records);
        assert!(
            !recs.is_empty(),
            "read at {next} (end {end}) returned nothing"
        );
        for (o, v) in recs {
            if o >= next {
                out.push((o, v));
            }
        }
        next = out.last().map_or(next, |(o, _)| o + 1);
    }
}

pub fn segment_files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("t-0"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

pub fn value(i: usize) -> Vec<u8> {
    format!("value-{i:05}-{}", "x".repeat(i % 37)).into_bytes()
}
