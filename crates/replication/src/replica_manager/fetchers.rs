//! The fetcher manager: one replica fetcher task per leader this broker
//! follows partitions of, and the ISR changes its led partitions need.

use super::*;

impl ReplicaManager {
    /// Starts, updates and stops follower fetchers so that every partition
    /// this broker follows (it is a replica, another broker leads) is
    /// fetched from its leader's `listener`. Call after each
    /// [`ReplicaManager::reconcile`], from within the runtime.
    pub fn sync_fetchers(&self, image: &MetadataImage, listener: &str, config: &FetcherConfig) {
        let mut wanted: HashMap<i32, Vec<Arc<Partition>>> = HashMap::new();
        for p in self.all_partitions() {
            let state = p.state();
            if state.leader >= 0 && state.leader != self.node_id {
                wanted.entry(state.leader).or_default().push(p);
            }
        }
        let mut fetchers = self.fetchers.lock();
        fetchers.retain(|leader, handle| {
            let keep = wanted.contains_key(leader);
            if !keep {
                let _ = handle.stop.send(true);
            }
            keep
        });
        for (leader, mut partitions) in wanted {
            partitions.sort_by(|a, b| a.topic_partition().cmp(b.topic_partition()));
            let address = image
                .broker(leader)
                .and_then(|b| b.endpoints.iter().find(|e| e.name == listener))
                .map(|e| format!("{}:{}", e.host, e.port));
            let Some(address) = address else {
                tracing::warn!(
                    leader,
                    listener,
                    "the leader has no endpoint on the inter-broker listener"
                );
                continue;
            };
            match fetchers.get(&leader) {
                Some(handle) if handle.address == address => {
                    handle.partitions.send_if_modified(|current| {
                        let same = current.len() == partitions.len()
                            && current
                                .iter()
                                .zip(&partitions)
                                .all(|(a, b)| Arc::ptr_eq(a, b));
                        if !same {
                            *current = partitions.clone();
                        }
                        !same
                    });
                }
                _ => {
                    if let Some(old) = fetchers.remove(&leader) {
                        let _ = old.stop.send(true);
                    }
                    let (partitions_tx, partitions_rx) = watch::channel(partitions);
                    let (stop, stopped) = watch::channel(false);
                    tokio::spawn(run_replica_fetcher(
                        leader,
                        address.clone(),
                        config.clone(),
                        Arc::clone(&self.follower_quota),
                        partitions_rx,
                        stopped,
                    ));
                    tracing::info!(leader, %address, "fetching from a leader");
                    fetchers.insert(
                        leader,
                        FetcherHandle {
                            address,
                            partitions: partitions_tx,
                            stop,
                        },
                    );
                }
            }
        }
    }

    /// The ISR changes this broker's led partitions need now (see
    /// [`Partition::propose_isr_change`]).
    pub fn isr_change_proposals(
        &self,
        lag_clock_ms: i64,
        max_lag_ms: i64,
        may_join: impl Fn(i32) -> bool,
    ) -> Vec<(Arc<Partition>, PartitionState, Vec<i32>)> {
        self.all_partitions()
            .into_iter()
            .filter_map(|p| {
                let (state, isr) = p.propose_isr_change(lag_clock_ms, max_lag_ms, &may_join)?;
                Some((p, state, isr))
            })
            .collect()
    }

    /// Stops every follower fetcher (shutdown).
    pub fn stop_fetchers(&self) {
        for (_, handle) in self.fetchers.lock().drain() {
            let _ = handle.stop.send(true);
        }
    }
}
