//! Configs in the metadata (Kafka's `ConfigurationControlManager`):
//! IncrementalAlterConfigs, and the legacy AlterConfigs as the same with
//! `replace`, on topics and on the dynamic broker keys. What each change
//! means is decided by the pure functions of [`crate::config_change`];
//! this file runs them against the current image and commits the
//! resulting `Config` records in one entry.

use std::time::Duration;

use super::{every_request_failed, CommitOffset, Controller};
use crate::config_change::{config_change_records, ConfigChange};
use crate::error::ApiError;
use crate::ops::ControllerOp;

impl Controller {
    /// IncrementalAlterConfigs: each resource's outcome (see
    /// [`crate::config_change`]).
    pub async fn incremental_alter_configs(
        &self,
        changes: Vec<ConfigChange>,
        validate_only: bool,
        timeout: Duration,
    ) -> (Vec<Result<(), ApiError>>, Option<CommitOffset>) {
        let n = changes.len();
        let op = ControllerOp::IncrementalAlterConfigs {
            changes,
            validate_only,
        };
        self.route_as(
            op,
            timeout,
            answer!(IncrementalAlterConfigs(r, o) => Ok((r, o))),
        )
        .await
        .unwrap_or_else(|e| every_request_failed(n, &e))
    }

    pub(super) async fn alter_configs_here(
        &self,
        changes: &[ConfigChange],
        validate_only: bool,
    ) -> (Vec<Result<(), ApiError>>, Option<CommitOffset>) {
        let _guard = self.write_lock.lock().await;
        let image = match self.current_image().await {
            Ok(image) => image,
            Err(e) => return every_request_failed(changes.len(), &e.to_api_error()),
        };
        let mut results = Vec::new();
        let mut records = Vec::new();
        for change in changes {
            match config_change_records(&image, change) {
                Ok(these) => {
                    results.push(Ok(()));
                    records.extend(these);
                }
                Err(e) => results.push(Err(e)),
            }
        }
        if validate_only || records.is_empty() {
            return (results, None);
        }
        let (results, offset) = self.commit_for(results, records).await;
        if offset.is_some() {
            tracing::info!(resources = changes.len(), "altered configs");
        }
        (results, offset)
    }
}
