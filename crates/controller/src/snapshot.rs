//! Metadata snapshot files: the whole image as of one log entry, so the log
//! before it can be purged and a lagging node can catch up in one transfer.
//!
//! # Format
//!
//! `<first log dir>/__cluster_metadata-0/<end offset>-<epoch>.checkpoint`,
//! named like KRaft's snapshots: the end offset (the index after the last
//! entry the snapshot holds, 20 digits) and that entry's term (10 digits).
//! The file is one header line and a JSON body:
//!
//! ```text
//! strom-metadata-snapshot 1 <body length in bytes> <CRC32C of the body, 8 hex digits>\n
//! {"meta":{"last_log_id":{...},"last_membership":{...},"snapshot_id":"..."},
//!  "image":{"offset":41,"topics":[...],"brokers":[...],"configs":[...],"next_producer_id":1000}}
//! ```
//!
//! `meta` is openraft's snapshot metadata, `image` the
//! `strom_metadata::ImageSnapshot`. Files are written atomically (temporary
//! file, fsync, rename, fsync of the directory); the newest readable one is
//! current and older ones are deleted once a newer one is in place. A file
//! whose length or checksum does not match its header is corrupt: it is
//! never used, and the node stops if it was the only copy of purged
//! entries. The bytes a leader sends to a follower are the file's bytes.

use std::path::{Path, PathBuf};

use openraft::SnapshotMeta;
use serde::{Deserialize, Serialize};
use strom_metadata::ImageSnapshot;
use strom_storage::durable_file::write_atomically;

use crate::error::ControllerError;
use crate::raft_types::ControllerNode;

/// File name suffix.
pub const SNAPSHOT_SUFFIX: &str = ".checkpoint";

/// First word of the header line.
const MAGIC: &str = "strom-metadata-snapshot";

/// Format version.
const VERSION: u32 = 1;

/// Largest snapshot file read back, checked before allocating.
pub const MAX_SNAPSHOT_BYTES: u64 = 1 << 30;

/// Snapshot metadata of the quorum.
pub type MetadataSnapshotMeta = SnapshotMeta<u64, ControllerNode>;

/// A decoded snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotContents {
    /// openraft's metadata.
    pub meta: MetadataSnapshotMeta,
    /// The image.
    pub image: ImageSnapshot,
}

/// Encodes a snapshot as file bytes.
pub fn encode(contents: &SnapshotContents) -> Result<Vec<u8>, ControllerError> {
    let body = serde_json::to_vec(contents)
        .map_err(|e| ControllerError::Corrupt(format!("cannot encode a snapshot: {e}")))?;
    let mut out = format!(
        "{MAGIC} {VERSION} {} {:08x}\n",
        body.len(),
        crc32c::crc32c(&body)
    )
    .into_bytes();
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decodes file bytes, checking the header's length and checksum.
pub fn decode(bytes: &[u8]) -> Result<SnapshotContents, ControllerError> {
    let corrupt = |why: &str| ControllerError::Corrupt(format!("metadata snapshot: {why}"));
    let newline = bytes
        .iter()
        .position(|b| *b == b'\n')
        .ok_or_else(|| corrupt("no header line"))?;
    let (header, rest) = bytes.split_at(newline);
    let body = rest.get(1..).unwrap_or_default();
    let header = std::str::from_utf8(header).map_err(|_| corrupt("header is not text"))?;
    let fields: Vec<&str> = header.split(' ').collect();
    let [magic, version, length, crc] = fields.as_slice() else {
        return Err(corrupt("malformed header"));
    };
    if *magic != MAGIC || version.parse::<u32>().ok() != Some(VERSION) {
        return Err(corrupt("unknown format"));
    }
    if length.parse::<usize>().ok() != Some(body.len()) {
        return Err(corrupt("length does not match (torn file)"));
    }
    if u32::from_str_radix(crc, 16).ok() != Some(crc32c::crc32c(body)) {
        return Err(corrupt("checksum mismatch"));
    }
    serde_json::from_slice(body).map_err(|e| corrupt(&e.to_string()))
}

/// The snapshots in a directory.
#[derive(Debug, Clone)]
pub struct SnapshotStore {
    dir: PathBuf,
}

impl SnapshotStore {
    /// Snapshots in `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    fn file_name(meta: &MetadataSnapshotMeta) -> String {
        let (end, term) = meta
            .last_log_id
            .map_or((0, 0), |l| (l.index + 1, l.leader_id.term));
        format!("{end:020}-{term:010}{SNAPSHOT_SUFFIX}")
    }

    /// Snapshot files, oldest first.
    fn files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.ends_with(SNAPSHOT_SUFFIX) && !n.starts_with('.'))
                    })
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
    }

    /// Stores `bytes` (an encoded snapshot) and deletes older snapshots.
    pub fn save(&self, meta: &MetadataSnapshotMeta, bytes: &[u8]) -> Result<(), ControllerError> {
        let path = self.dir.join(Self::file_name(meta));
        write_atomically(&path, bytes)?;
        for old in self.files().into_iter().filter(|p| *p < path) {
            let _ = std::fs::remove_file(old);
        }
        Ok(())
    }

    /// The newest snapshot, with its file bytes; corrupt files are skipped
    /// with an error log.
    pub fn latest(&self) -> Result<Option<(SnapshotContents, Vec<u8>)>, ControllerError> {
        for path in self.files().into_iter().rev() {
            let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            if len > MAX_SNAPSHOT_BYTES {
                tracing::error!(path = %path.display(), len, "metadata snapshot too large; skipping it");
                continue;
            }
            let bytes = match std::fs::read(&path) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "cannot read a metadata snapshot");
                    continue;
                }
            };
            match decode(&bytes) {
                Ok(contents) => return Ok(Some((contents, bytes))),
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "skipping a corrupt metadata snapshot")
                }
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft_types::log_id;
    use openraft::{Membership, StoredMembership};

    fn contents(index: u64) -> SnapshotContents {
        let nodes: std::collections::BTreeMap<u64, ControllerNode> =
            [(1u64, ControllerNode::default())].into_iter().collect();
        let membership = Membership::new(vec![[1u64].into_iter().collect()], nodes);
        SnapshotContents {
            meta: SnapshotMeta {
                last_log_id: Some(log_id(2, index)),
                last_membership: StoredMembership::new(Some(log_id(1, 0)), membership),
                snapshot_id: format!("s{index}"),
            },
            image: strom_metadata::MetadataImage::empty().to_snapshot(),
        }
    }

    #[test]
    fn round_trip_and_every_corruption_is_caught() {
        let bytes = encode(&contents(7)).unwrap();
        assert_eq!(decode(&bytes).unwrap(), contents(7));
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "truncated to {len}");
        }
        for i in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[i] ^= 0x01;
            assert!(decode(&flipped).is_err(), "bit flip at {i}");
        }
    }

    #[test]
    fn the_newest_readable_snapshot_is_current() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::new(dir.path());
        assert!(store.latest().unwrap().is_none());
        for index in [3, 9] {
            let c = contents(index);
            store.save(&c.meta, &encode(&c).unwrap()).unwrap();
        }
        assert_eq!(store.files().len(), 1, "older snapshots are deleted");
        assert_eq!(store.latest().unwrap().unwrap().0, contents(9));
        // A corrupt newer file is skipped; the good one is still used.
        let bad = dir
            .path()
            .join(format!("{:020}-{:010}{SNAPSHOT_SUFFIX}", 50, 3));
        std::fs::write(&bad, b"strom-metadata-snapshot 1 5 00000000\nhello").unwrap();
        assert_eq!(store.latest().unwrap().unwrap().0, contents(9));
    }
}
