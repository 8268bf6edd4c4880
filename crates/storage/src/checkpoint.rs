//! Offset checkpoint files, one per log directory:
//! `recovery-point-offset-checkpoint`, `log-start-offset-checkpoint` and
//! `replication-offset-checkpoint` (high watermarks).
//!
//! # File format (Kafka's `OffsetCheckpointFile`)
//!
//! ```text
//! 0                       <- format version
//! 2                       <- number of entries
//! orders 0 1500           <- topic, partition, offset (space separated)
//! orders 1 1320
//! ```
//!
//! Replaced whole and atomically ([`crate::durable_file::write_atomically`]).
//! A file whose count or lines do not parse is corrupt.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::durable_file::write_atomically;
use crate::error::{Result, StorageError};
use crate::TopicPartition;

/// Recovery points: offsets below which logs are known to be on disk.
pub const RECOVERY_POINT_CHECKPOINT_FILE: &str = "recovery-point-offset-checkpoint";
/// Log start offsets moved by retention or record deletion.
pub const LOG_START_OFFSET_CHECKPOINT_FILE: &str = "log-start-offset-checkpoint";
/// High watermarks, under Kafka's name for the file.
pub const HIGH_WATERMARK_CHECKPOINT_FILE: &str = "replication-offset-checkpoint";

const CHECKPOINT_VERSION: i32 = 0;

/// Writes a checkpoint file atomically.
pub fn write_checkpoint(path: &Path, entries: &[(TopicPartition, i64)]) -> Result<()> {
    let mut text = format!("{CHECKPOINT_VERSION}\n{}\n", entries.len());
    for (tp, offset) in entries {
        let _ = writeln!(text, "{} {} {}", tp.topic, tp.partition, offset);
    }
    write_atomically(path, text.as_bytes())
}

/// Reads a checkpoint file; a missing file is empty.
pub fn read_checkpoint(path: &Path) -> Result<HashMap<TopicPartition, i64>> {
    let corrupt = |reason: String| StorageError::CorruptFile {
        path: path.to_path_buf(),
        reason,
    };
    let lines = read_versioned_entries(path, CHECKPOINT_VERSION)?;
    let mut out = HashMap::with_capacity(lines.len().min(1 << 16));
    for line in &lines {
        let mut parts = line.split(' ');
        let (Some(topic), Some(partition), Some(offset), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(corrupt(format!("malformed line '{line}'")));
        };
        let partition: i32 = partition
            .parse()
            .map_err(|_| corrupt(format!("malformed partition in '{line}'")))?;
        let offset: i64 = offset
            .parse()
            .map_err(|_| corrupt(format!("malformed offset in '{line}'")))?;
        out.insert(TopicPartition::new(topic, partition), offset);
    }
    if out.len() != lines.len() {
        return Err(corrupt(format!(
            "expected {} distinct entries",
            lines.len()
        )));
    }
    Ok(out)
}

/// The entry lines of a file in Kafka's checkpoint layout (a version line,
/// a count line, that many entry lines, nothing else but blank lines),
/// checked against `version` and the count; a missing file has none.
pub(crate) fn read_versioned_entries(path: &Path, version: i32) -> Result<Vec<String>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StorageError::io("read checkpoint", path)(e)),
    };
    let corrupt = |reason: String| StorageError::CorruptFile {
        path: path.to_path_buf(),
        reason,
    };
    let mut lines = text.lines();
    let found: i32 = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| corrupt("missing version line".into()))?;
    if found != version {
        return Err(corrupt(format!("unknown version {found}")));
    }
    let count: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| corrupt("missing entry count".into()))?;
    let entries: Vec<String> = lines.by_ref().take(count).map(str::to_string).collect();
    if entries.len() != count || lines.any(|l| !l.trim().is_empty()) {
        return Err(corrupt(format!("expected {count} entries")));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(RECOVERY_POINT_CHECKPOINT_FILE);
        assert!(read_checkpoint(&path).unwrap().is_empty());
        let entries = vec![
            (TopicPartition::new("a", 0), 5),
            (TopicPartition::new("b.c-d", 3), 70),
        ];
        write_checkpoint(&path, &entries).unwrap();
        let read = read_checkpoint(&path).unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!(read[&TopicPartition::new("b.c-d", 3)], 70);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "0\n2\na 0 5\nb.c-d 3 70\n");
        for bad in [
            "",
            "0\n",
            "0\n2\na 0 5\n",
            "1\n0\n",
            "0\n1\na x 5\n",
            "0\n1\na 0\n",
        ] {
            std::fs::write(&path, bad).unwrap();
            assert!(read_checkpoint(&path).is_err(), "{bad:?} accepted");
        }
    }
}
