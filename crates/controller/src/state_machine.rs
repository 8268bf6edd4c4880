//! The metadata quorum's state machine: committed entries applied to the
//! `MetadataImage`, which is published to the broker after every apply.
//!
//! The image lives in memory; snapshots ([`crate::snapshot`]) make it
//! durable. At start the newest snapshot is loaded and openraft re-applies
//! the committed entries after it. Applying is deterministic: a batch of
//! records that does not apply to the image (a controller bug) is skipped
//! with an error on every node alike, and its writer is told.

use std::io::Cursor;
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{
    Entry, EntryPayload, OptionalSend, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageIOError,
    StoredMembership,
};
use strom_metadata::MetadataImage;
use tokio::sync::watch;

use crate::error::ControllerError;
use crate::raft_types::{
    AppliedBatch, ControllerNode, MetadataBatch, MetadataLogId, MetadataRaft, RaftStorageError,
};
use crate::snapshot::{self, MetadataSnapshotMeta, SnapshotContents, SnapshotStore};

/// The state machine.
#[derive(Debug)]
pub struct MetadataStateMachine {
    image: Arc<MetadataImage>,
    last_applied: Option<MetadataLogId>,
    membership: StoredMembership<u64, ControllerNode>,
    snapshots: SnapshotStore,
    publish: watch::Sender<Arc<MetadataImage>>,
}

/// Builds snapshots from a copy of the state.
#[derive(Debug)]
pub struct MetadataSnapshotBuilder {
    image: Arc<MetadataImage>,
    last_applied: Option<MetadataLogId>,
    membership: StoredMembership<u64, ControllerNode>,
    snapshots: SnapshotStore,
}

fn io_error(e: ControllerError) -> RaftStorageError {
    StorageIOError::write_state_machine(&e).into()
}

impl MetadataStateMachine {
    /// A state machine over the snapshots in `dir`, starting from the
    /// newest one, publishing every new image on `publish`.
    pub fn open(
        dir: &std::path::Path,
        publish: watch::Sender<Arc<MetadataImage>>,
    ) -> Result<Self, ControllerError> {
        let snapshots = SnapshotStore::new(dir);
        let mut sm = Self {
            image: Arc::new(MetadataImage::empty()),
            last_applied: None,
            membership: StoredMembership::default(),
            snapshots,
            publish,
        };
        if let Some((contents, _)) = sm.snapshots.latest()? {
            sm.load(contents)?;
            tracing::info!(
                offset = sm.image.offset,
                topics = sm.image.topic_count(),
                "loaded the metadata snapshot"
            );
        }
        sm.publish.send_replace(Arc::clone(&sm.image));
        Ok(sm)
    }

    fn load(&mut self, contents: SnapshotContents) -> Result<(), ControllerError> {
        let image = MetadataImage::from_snapshot(contents.image)
            .map_err(|e| ControllerError::Corrupt(format!("metadata snapshot: {e}")))?;
        self.image = Arc::new(image);
        self.last_applied = contents.meta.last_log_id;
        self.membership = contents.meta.last_membership;
        Ok(())
    }

    /// The image.
    pub fn image(&self) -> Arc<MetadataImage> {
        Arc::clone(&self.image)
    }
}

impl RaftSnapshotBuilder<MetadataRaft> for MetadataSnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<MetadataRaft>, RaftStorageError> {
        let index = self.last_applied.map_or(0, |l| l.index);
        let meta = SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.membership.clone(),
            snapshot_id: format!("{}-{}", index, uuid::Uuid::new_v4().simple()),
        };
        let contents = SnapshotContents {
            meta: meta.clone(),
            image: self.image.to_snapshot(),
        };
        let store = self.snapshots.clone();
        let bytes = strom_runtime::blocking::run(move || {
            let bytes = snapshot::encode(&contents)?;
            store.save(&contents.meta, &bytes)?;
            Ok::<_, ControllerError>(bytes)
        })
        .await
        .map_err(|e| ControllerError::Corrupt(format!("snapshot task failed: {e}")))
        .and_then(|r| r)
        .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        tracing::info!(
            offset = index,
            bytes = bytes.len(),
            "wrote a metadata snapshot"
        );
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

impl RaftStateMachine<MetadataRaft> for MetadataStateMachine {
    type SnapshotBuilder = MetadataSnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<MetadataLogId>, StoredMembership<u64, ControllerNode>), RaftStorageError>
    {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<AppliedBatch>, RaftStorageError>
    where
        I: IntoIterator<Item = Entry<MetadataRaft>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut image = Arc::clone(&self.image);
        let mut out = Vec::new();
        for entry in entries {
            let offset = entry.log_id.index as i64;
            self.last_applied = Some(entry.log_id);
            let mut refused = None;
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(MetadataBatch(records)) => {
                    match image.apply(records.iter().map(|r| (offset, r))) {
                        Ok((next, _)) => image = Arc::new(next),
                        Err(e) => {
                            tracing::error!(offset, error = %e, "skipping a metadata batch that does not apply");
                            refused = Some(e.to_string());
                        }
                    }
                }
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), m);
                }
            }
            if image.offset != offset {
                let mut moved = (*image).clone();
                moved.offset = offset;
                image = Arc::new(moved);
            }
            out.push(AppliedBatch { offset, refused });
        }
        self.image = Arc::clone(&image);
        self.publish.send_replace(image);
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        MetadataSnapshotBuilder {
            image: Arc::clone(&self.image),
            last_applied: self.last_applied,
            membership: self.membership.clone(),
            snapshots: self.snapshots.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, RaftStorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &MetadataSnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), RaftStorageError> {
        let bytes = snapshot.into_inner();
        let contents = snapshot::decode(&bytes).map_err(io_error)?;
        if contents.meta.last_log_id != meta.last_log_id {
            return Err(io_error(ControllerError::Corrupt(format!(
                "snapshot {} holds entries up to {:?}",
                meta.snapshot_id, contents.meta.last_log_id
            ))));
        }
        let store = self.snapshots.clone();
        let save_meta = meta.clone();
        strom_runtime::blocking::run(move || store.save(&save_meta, &bytes))
            .await
            .map_err(|e| {
                io_error(ControllerError::Corrupt(format!(
                    "snapshot task failed: {e}"
                )))
            })?
            .map_err(io_error)?;
        self.load(contents).map_err(io_error)?;
        tracing::info!(
            offset = self.image.offset,
            "installed a metadata snapshot from the leader"
        );
        self.publish.send_replace(Arc::clone(&self.image));
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<MetadataRaft>>, RaftStorageError> {
        Ok(self
            .snapshots
            .latest()
            .map_err(io_error)?
            .map(|(contents, bytes)| Snapshot {
                meta: contents.meta,
                snapshot: Box::new(Cursor::new(bytes)),
            }))
    }
}
