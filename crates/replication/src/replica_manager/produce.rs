//! Produce: each partition's batch appended on the blocking pool, and for
//! acks=all a wait (Kafka's produce purgatory) for the in-sync replicas.

use super::*;

impl ReplicaManager {
    /// Appends each partition's records. `acks` must already be valid.
    pub async fn append_records(
        &self,
        image: &MetadataImage,
        entries: Vec<(TopicPartition, Bytes)>,
        acks: i16,
        timeout: Duration,
        produce_version: i16,
    ) -> Vec<Result<LogAppendInfo, ReplicaError>> {
        let targets: Vec<Result<(Arc<Partition>, Bytes), ReplicaError>> = entries
            .into_iter()
            .map(|(tp, records)| self.leader_partition(image, &tp, -1).map(|p| (p, records)))
            .collect();
        let appended = strom_runtime::blocking::run(move || {
            let now = now_ms();
            targets
                .into_iter()
                .map(|t| {
                    t.and_then(|(p, records)| {
                        panic_boundary(|| p.append_as_leader(&records, acks, produce_version, now))
                            .map(|i| (p, i))
                    })
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "append task failed");
            Vec::new()
        });
        // One deadline for the whole request, as Kafka's delayed produce.
        let deadline = Instant::now() + timeout;
        let _delayed = (acks == -1 && appended.iter().any(Result::is_ok))
            .then(|| Delayed::enter(&self.delayed_produces));
        let mut out = Vec::with_capacity(appended.len());
        for r in appended {
            out.push(match r {
                Ok((p, append)) if acks == -1 => p
                    .wait_for_replication(
                        append.info.last_offset + 1,
                        append.leader_epoch,
                        deadline,
                    )
                    .await
                    .map(|()| append.info),
                Ok((_, append)) => Ok(append.info),
                Err(e) => Err(e),
            });
        }
        out
    }
}
