//! `meta.properties`, the identity of a log directory.
//!
//! # File format (Java properties, as KRaft's version 1)
//!
//! ```text
//! #Written by Strom
//! version=1
//! node.id=1
//! cluster.id=<22-character base64 uuid>
//! directory.id=<22-character base64 uuid>
//! ```
//!
//! A directory with another node id or cluster id than the broker's is
//! refused at start-up, so two nodes or two clusters never share data.

use std::collections::BTreeMap;
use std::path::Path;

use crate::durable_file::write_atomically;
use crate::error::{Result, StorageError};

/// File name in each log directory.
pub const META_PROPERTIES_FILE: &str = "meta.properties";

/// The identity recorded in a log directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaProperties {
    /// Node that owns the directory.
    pub node_id: i32,
    /// Cluster the data belongs to.
    pub cluster_id: String,
    /// This directory's own id.
    pub directory_id: String,
}

impl MetaProperties {
    /// Reads `meta.properties` from `dir`; `None` when absent.
    pub fn read(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(META_PROPERTIES_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StorageError::io("read", &path)(e)),
        };
        let props: BTreeMap<&str, &str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect();
        let corrupt = |reason: &str| StorageError::CorruptFile {
            path: path.clone(),
            reason: reason.to_string(),
        };
        if props.get("version").copied() != Some("1") {
            return Err(corrupt("version must be 1"));
        }
        Ok(Some(Self {
            node_id: props
                .get("node.id")
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| corrupt("node.id missing or not a number"))?,
            cluster_id: props
                .get("cluster.id")
                .filter(|v| !v.is_empty())
                .ok_or_else(|| corrupt("cluster.id missing"))?
                .to_string(),
            directory_id: props.get("directory.id").unwrap_or(&"").to_string(),
        }))
    }

    /// Writes `meta.properties` into `dir` atomically.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let text = format!(
            "#Written by Strom\nversion=1\nnode.id={}\ncluster.id={}\ndirectory.id={}\n",
            self.node_id, self.cluster_id, self.directory_id
        );
        write_atomically(&dir.join(META_PROPERTIES_FILE), text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(MetaProperties::read(dir.path()).unwrap(), None);
        let m = MetaProperties {
            node_id: 3,
            cluster_id: "abcdefghijklmnopqrstuv".into(),
            directory_id: "AAAAAAAAAAAAAAAAAAAAAA".into(),
        };
        m.write(dir.path()).unwrap();
        assert_eq!(MetaProperties::read(dir.path()).unwrap(), Some(m));
        std::fs::write(dir.path().join(META_PROPERTIES_FILE), "version=1\n").unwrap();
        assert!(MetaProperties::read(dir.path()).is_err());
    }
}
