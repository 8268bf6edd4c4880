//! openraft's storage conformance suite against the metadata quorum's log
//! store (on real files) and state machine.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;
use strom_controller::raft_log::RaftLogStore;
use strom_controller::raft_types::MetadataRaft;
use strom_controller::state_machine::MetadataStateMachine;
use strom_metadata::MetadataImage;
use strom_storage::log_manager::METADATA_LOG_DIR_NAME;
use tempfile::TempDir;
use tokio::sync::watch;

struct OnDisk;

impl StoreBuilder<MetadataRaft, RaftLogStore, MetadataStateMachine, TempDir> for OnDisk {
    async fn build(
        &self,
    ) -> Result<(TempDir, RaftLogStore, MetadataStateMachine), StorageError<u64>> {
        let dir = tempfile::tempdir().unwrap();
        let log = RaftLogStore::open(dir.path(), true).unwrap();
        let (publish, _) = watch::channel(Arc::new(MetadataImage::empty()));
        let sm =
            MetadataStateMachine::open(&dir.path().join(METADATA_LOG_DIR_NAME), publish).unwrap();
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite() {
    Suite::test_all(OnDisk).unwrap();
}
