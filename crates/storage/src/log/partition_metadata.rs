//! `partition.metadata`: the topic id of a partition directory, so a log
//! left behind by a deleted topic is never taken for a re-created topic of
//! the same name.
//!
//! # File format (Kafka's `PartitionMetadataFile`)
//!
//! ```text
//! version: 0
//! topic_id: <topic id, 22 characters of URL-safe base64>
//! ```
//!
//! Written atomically ([`crate::durable_file::write_atomically`]), like
//! Kafka's. A file whose version is negative, whose lines do not parse, or
//! whose topic id is zero is corrupt.

use std::fs;
use std::path::Path;

use strom_protocol::uuid_text::{uuid_from_base64, uuid_to_base64};
use uuid::Uuid;

use crate::durable_file::write_atomically;
use crate::error::{Result, StorageError};

/// File holding the partition's topic id.
pub const PARTITION_METADATA_FILE: &str = "partition.metadata";

/// Reads a partition directory's topic id; `None` when the file is
/// missing.
pub fn read_partition_metadata(dir: &Path) -> Result<Option<Uuid>> {
    let path = dir.join(PARTITION_METADATA_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StorageError::io("read", &path)(e)),
    };
    let corrupt = |reason: &str| StorageError::CorruptFile {
        path: path.clone(),
        reason: reason.to_string(),
    };
    let mut lines = text.lines();
    let version = lines
        .next()
        .and_then(|l| l.strip_prefix("version:"))
        .and_then(|v| v.trim().parse::<i32>().ok())
        .ok_or_else(|| corrupt("first line must be 'version: N'"))?;
    if version < 0 {
        return Err(corrupt("negative version"));
    }
    let id = lines
        .next()
        .and_then(|l| l.strip_prefix("topic_id:"))
        .and_then(|v| uuid_from_base64(v.trim()))
        .ok_or_else(|| corrupt("second line must be 'topic_id: <base64 uuid>'"))?;
    if id.is_nil() {
        return Err(corrupt("topic id is zero"));
    }
    Ok(Some(id))
}

/// Writes the file into `dir`, replacing any.
pub(super) fn write_partition_metadata(dir: &Path, topic_id: &Uuid) -> Result<()> {
    let text = format!("version: 0\ntopic_id: {}\n", uuid_to_base64(topic_id));
    write_atomically(&dir.join(PARTITION_METADATA_FILE), text.as_bytes())
}
