//! Crash recovery and corruption tests on real files: a log is written,
//! its files are damaged the way crashes and disks damage them, and the
//! reloaded log must hold exactly the batches before the damage.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;

use common::*;
use strom_protocol::batch::{BatchHeader, BatchIter};

/// Where a batch sits: segment file index, position, size, base offset.
type BatchPlace = (usize, u64, u64, i64);

/// Writes `batches` batches of 3 records over several segments; returns
/// the records and each batch's (segment file index, position, size, base).
fn build(dir: &std::path::Path, batches: usize) -> (Vec<(i64, Vec<u8>)>, Vec<BatchPlace>) {
    let log = create(dir, small_config(600));
    let mut records = Vec::new();
    for b in 0..batches {
        let values: Vec<Vec<u8>> = (0..3).map(|i| value(b * 3 + i)).collect();
        let base = append(&log, &values, NOW + b as i64);
        for (i, v) in values.into_iter().enumerate() {
            records.push((base + i as i64, v));
        }
    }
    log.close(NOW).unwrap();
    let mut layout = Vec::new();
    for (i, f) in segment_files(dir, "log").iter().enumerate() {
        let bytes = std::fs::read(f).unwrap();
        for item in BatchIter::new(&bytes) {
            let (pos, h) = item.unwrap();
            layout.push((i, pos as u64, h.size_bytes() as u64, h.base_offset));
        }
    }
    (records, layout)
}

fn records_before(records: &[(i64, Vec<u8>)], offset: i64) -> Vec<(i64, Vec<u8>)> {
    records
        .iter()
        .filter(|(o, _)| *o < offset)
        .cloned()
        .collect()
}

#[test]
fn clean_restart_keeps_everything_without_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let (records, layout) = build(dir.path(), 20);
    assert!(
        segment_files(dir.path(), "log").len() > 2,
        "test needs several segments"
    );
    let (log, report) = load(dir.path(), small_config(600), true, records.len() as i64);
    assert_eq!(report.recovered_segments, 0);
    assert_eq!(read_all(&log, 0), records);
    assert_eq!(log.offsets().log_end_offset, layout.last().unwrap().3 + 3);
}

#[test]
fn truncation_at_every_boundary_class_recovers_to_the_last_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let (records, layout) = build(dir.path(), 12);
    let pristine: Vec<(std::path::PathBuf, Vec<u8>)> = segment_files(dir.path(), "log")
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    let last_segment = pristine.len() - 1;
    // Cut points in the last segment's batches: at the start of a batch,
    // inside the 12-byte prefix, inside the header, inside the records,
    // one byte short of the end.
    let tail: Vec<_> = layout.iter().filter(|b| b.0 == last_segment).collect();
    for (_, pos, size, base) in tail {
        for cut in [0, 5, 12, 30, 61, size / 2 + 30, size - 1] {
            if cut >= *size {
                continue;
            }
            for (p, b) in &pristine {
                std::fs::write(p, b).unwrap();
            }
            let (path, _) = &pristine[last_segment];
            OpenOptions::new()
                .write(true)
                .open(path)
                .unwrap()
                .set_len(pos + cut)
                .unwrap();
            let (log, report) = load(dir.path(), small_config(600), false, 0);
            let expect = records_before(&records, *base);
            assert_eq!(read_all(&log, 0), expect, "cut {cut} into batch at {pos}");
            assert_eq!(log.offsets().log_end_offset, *base);
            assert_eq!(report.truncated_bytes, cut, "cut {cut} into batch at {pos}");
            drop(log);
            // The recovered log accepts appends at the right offset.
            let (log, _) = load(dir.path(), small_config(600), false, 0);
            assert_eq!(append(&log, &[b"after".to_vec()], NOW), *base);
        }
    }
}

#[test]
fn bit_flips_in_header_and_payload_drop_that_batch_and_everything_after() {
    let dir = tempfile::tempdir().unwrap();
    let (records, layout) = build(dir.path(), 12);
    let files = segment_files(dir.path(), "log");
    let pristine: Vec<Vec<u8>> = files.iter().map(|p| std::fs::read(p).unwrap()).collect();
    // Damage the third batch of the second segment.
    let victim = layout.iter().filter(|b| b.0 == 1).nth(1).copied().unwrap();
    let (seg, pos, size, base) = victim;
    for offset_in_batch in [8u64, 16, 17, 21, 23, 57, 61, size - 1] {
        for (p, b) in files.iter().zip(&pristine) {
            std::fs::write(p, b).unwrap();
        }
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&files[seg])
            .unwrap();
        let mut byte = [0u8];
        f.read_exact_at(&mut byte, pos + offset_in_batch).unwrap();
        byte[0] ^= 0x10;
        f.write_all_at(&byte, pos + offset_in_batch).unwrap();
        let (log, report) = load(dir.path(), small_config(600), false, 0);
        assert_eq!(
            read_all(&log, 0),
            records_before(&records, base),
            "flip at +{offset_in_batch}"
        );
        assert!(report.truncated_bytes > 0);
        assert!(
            report.deleted_segments > 0,
            "segments after the damage must go"
        );
        drop(log);
    }
}

#[test]
fn a_deleted_or_garbled_index_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let (records, _) = build(dir.path(), 20);
    let indexes = segment_files(dir.path(), "index");
    std::fs::remove_file(&indexes[1]).unwrap();
    std::fs::remove_file(&segment_files(dir.path(), "timeindex")[0]).unwrap();
    // Garble another index: entries pointing past the file.
    std::fs::write(&indexes[2], [0u8, 0, 0, 9, 0x7f, 0, 0, 0]).unwrap();
    let (log, report) = load(dir.path(), small_config(600), true, i64::MAX);
    assert!(report.recovered_segments >= 3, "{report:?}");
    assert_eq!(report.truncated_bytes, 0);
    assert_eq!(read_all(&log, 0), records);
    // Reads at every offset work through the rebuilt indexes.
    for (o, v) in &records {
        let r = log
            .read(*o, 1, strom_storage::ReadBound::LogEnd, true)
            .unwrap();
        let got = decode(&r.records);
        assert!(got.iter().any(|(x, y)| x == o && y == v), "offset {o}");
    }
}

#[test]
fn unclean_restart_with_intact_files_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = create(dir.path(), small_config(600));
    let mut records = Vec::new();
    for b in 0..15 {
        let values: Vec<Vec<u8>> = (0..2).map(|i| value(b * 2 + i)).collect();
        let base = append(&log, &values, NOW);
        records.extend(
            values
                .into_iter()
                .enumerate()
                .map(|(i, v)| (base + i as i64, v)),
        );
    }
    drop(log); // no close: indexes untrimmed, no flush, as after kill -9
    let (log, report) = load(dir.path(), small_config(600), false, 0);
    assert_eq!(report.truncated_bytes, 0);
    assert_eq!(read_all(&log, 0), records);
    let h = BatchHeader::parse(
        &log.read(0, 100, strom_storage::ReadBound::LogEnd, true)
            .unwrap()
            .records,
    )
    .unwrap();
    assert_eq!(h.base_offset, 0);
}
