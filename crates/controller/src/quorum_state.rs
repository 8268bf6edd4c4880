//! The quorum state file: what a voter must remember besides its log.
//!
//! # Format
//!
//! `<first log dir>/__cluster_metadata-0/quorum-state` (KRaft keeps a file
//! of that name for the same purpose), a JSON object:
//!
//! ```json
//! {"version":1,
//!  "vote":{"leader_id":{"term":3,"voted_for":2},"committed":true},
//!  "committed":{"leader_id":3,"index":41},
//!  "last_purged":{"leader_id":2,"index":9}}
//! ```
//!
//! - `vote`: the last vote this node granted or the leader it accepted
//!   (openraft's `Vote`); `null` before the first election.
//! - `committed`: the highest log id known committed, a hint that lets a
//!   restarted node apply its log at once; `null` when unknown.
//! - `last_purged`: the last log id removed from the log's front because a
//!   snapshot holds it; `null` when nothing was purged.
//!
//! The file is replaced atomically (a temporary file, fsync, rename, fsync
//! of the directory) whenever one of them changes, before the change is
//! acknowledged. (Metadata commits are rare, so the committed hint costs
//! little; losing it would only mean a restarted node applies its log once
//! a leader says what is committed.) A file that does not parse stops the
//! node: a vote must never be forgotten.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use strom_storage::durable_file::write_atomically;

use crate::error::ControllerError;
use crate::raft_types::{MetadataLogId, MetadataVote};

/// The file's name.
pub const QUORUM_STATE_FILE: &str = "quorum-state";

/// The current format version.
const VERSION: u32 = 1;

/// What the file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumState {
    /// Format version.
    pub version: u32,
    /// Last vote.
    pub vote: Option<MetadataVote>,
    /// Highest known committed log id.
    pub committed: Option<MetadataLogId>,
    /// Last purged log id.
    pub last_purged: Option<MetadataLogId>,
}

/// The file and its current contents.
#[derive(Debug)]
pub struct QuorumStateFile {
    path: PathBuf,
    state: QuorumState,
}

impl QuorumStateFile {
    /// Opens the file in `dir`, or starts empty if there is none.
    pub fn open(dir: &Path) -> Result<Self, ControllerError> {
        let path = dir.join(QUORUM_STATE_FILE);
        let state = match std::fs::read(&path) {
            Ok(bytes) => {
                let state: QuorumState = serde_json::from_slice(&bytes)
                    .map_err(|e| ControllerError::Corrupt(format!("{}: {e}", path.display())))?;
                if state.version != VERSION {
                    return Err(ControllerError::Corrupt(format!(
                        "{}: unknown version {}",
                        path.display(),
                        state.version
                    )));
                }
                state
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => QuorumState {
                version: VERSION,
                ..QuorumState::default()
            },
            Err(e) => {
                return Err(ControllerError::Storage(strom_storage::StorageError::io(
                    "read", &path,
                )(e)))
            }
        };
        Ok(Self { path, state })
    }

    /// The contents.
    pub fn state(&self) -> &QuorumState {
        &self.state
    }

    /// Records a vote durably.
    pub fn save_vote(&mut self, vote: MetadataVote) -> Result<(), ControllerError> {
        let mut next = self.state.clone();
        next.vote = Some(vote);
        self.write(next)
    }

    /// Records the purge point durably.
    pub fn save_last_purged(&mut self, last_purged: MetadataLogId) -> Result<(), ControllerError> {
        let mut next = self.state.clone();
        next.last_purged = Some(last_purged);
        self.write(next)
    }

    /// Records the committed hint.
    pub fn save_committed(
        &mut self,
        committed: Option<MetadataLogId>,
    ) -> Result<(), ControllerError> {
        let mut next = self.state.clone();
        next.committed = committed;
        self.write(next)
    }

    fn write(&mut self, next: QuorumState) -> Result<(), ControllerError> {
        let bytes = serde_json::to_vec(&next).map_err(|e| {
            ControllerError::Corrupt(format!("cannot encode the quorum state: {e}"))
        })?;
        write_atomically(&self.path, &bytes)?;
        self.state = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft_types::log_id;

    #[test]
    fn round_trips_and_refuses_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = QuorumStateFile::open(dir.path()).unwrap();
        assert_eq!(f.state().vote, None);
        let vote = openraft::Vote::new_committed(3, 2);
        f.save_vote(vote).unwrap();
        f.save_committed(Some(log_id(3, 41))).unwrap();
        f.save_last_purged(log_id(2, 9)).unwrap();
        let again = QuorumStateFile::open(dir.path()).unwrap();
        assert_eq!(again.state().vote, Some(vote));
        assert_eq!(again.state().committed, Some(log_id(3, 41)));
        assert_eq!(again.state().last_purged, Some(log_id(2, 9)));

        std::fs::write(dir.path().join(QUORUM_STATE_FILE), b"{\"version\":1,\"vo").unwrap();
        assert!(QuorumStateFile::open(dir.path()).is_err());
        std::fs::write(dir.path().join(QUORUM_STATE_FILE), b"{\"version\":9}").unwrap();
        assert!(QuorumStateFile::open(dir.path()).is_err());
    }
}
