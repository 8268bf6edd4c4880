//! The simulated cluster the simulations run on (in this crate's tests:
//! `simulation.rs`, the metadata quorum; `election_simulation.rs`, its
//! elections; `replication_simulation.rs`, partition replication on top
//! of it), in one process on virtual time (tokio's paused clock). A
//! harness, not a deterministic replay: see below.
//!
//! Three nodes run the real quorum — openraft over the durable Raft log
//! and image state machine in temporary directories — connected by an
//! in-memory network that delays messages, loses some requests and
//! answers, and is cut between pairs of nodes. Nodes crash and restart
//! from their directories. A broker on each node registers once per node
//! incarnation and heartbeats (the controller fences it when its session
//! runs out). Clients sit outside the cut links (node [`CLIENT`]): they
//! reach every running node, subject to delay and loss. Every fault, delay
//! and loss comes from a seeded generator, so a seed replays the same
//! fault schedule. The election timer draws its timeouts from the
//! operating system's random source and the logs fsync on blocking threads, so the
//! interleavings within a schedule can differ between runs of one seed; a
//! failure message names the seed and what broke.
// A test harness: it panics on what a test must not meet, and its items
// are named for what they simulate.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

mod brokers;
mod faults;
mod net;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{RaftLogReader, ServerState};
use parking_lot::Mutex;
use strom_controller::forwarding::ControllerChannel;
use strom_controller::ops::{BrokerHeartbeat, ControllerOp, ControllerOpResult};
use strom_controller::quorum::{MetadataQuorum, QuorumConfig};
use strom_controller::quorum_description::PeerContacts;
use strom_controller::quorum_election::{
    ElectionPeers, PeerFuture, PreVoteRequest, PreVoteResponse,
};
use strom_controller::raft_types::{ControllerNode, MetadataRaft};
use strom_controller::{Controller, ControllerConfig};
use strom_metadata::{BrokerRegistration, MetadataImage};
use strom_protocol::ErrorCode;
use tokio::sync::watch;
use uuid::Uuid;

pub const CLUSTER_ID: &str = "c2ltdWxhdGlvbi1jbHVzdA";
pub const NODES: [u64; 3] = [1, 2, 3];
/// Where clients send from: never cut off, never down.
pub const CLIENT: u64 = 0;
/// How long a simulated client waits for an answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// A broker's heartbeat interval.
const HEARTBEAT_EVERY: Duration = Duration::from_millis(200);

pub use brokers::{run_broker, spawn_brokers};
pub use faults::{inject_fault, run_faults};
use net::SimNetwork;
pub use net::{Net, Rng};

/// What the quorum monitors saw.
#[derive(Default)]
pub struct Observed {
    /// Term → nodes seen leading it.
    pub leaders: BTreeMap<u64, BTreeSet<u64>>,
    /// Images that named a fenced broker as a leader.
    pub fenced_leaders: Vec<String>,
}

/// Three nodes on the simulated network.
pub struct Cluster {
    pub net: Arc<Net>,
    /// Each node's directory: its metadata log and, with a data plane, its
    /// partition logs (as a combined node's first log directory).
    pub dirs: BTreeMap<u64, PathBuf>,
    stops: Mutex<BTreeMap<u64, watch::Sender<bool>>>,
    pub observed: Arc<Mutex<Observed>>,
    pub crashes: AtomicU64,
    /// Each node's incarnation: how often it was started.
    incarnations: Mutex<BTreeMap<u64, u64>>,
    /// Each broker's registration: its node's incarnation and the broker
    /// epoch.
    registrations: Mutex<BTreeMap<u64, (u64, i64)>>,
    _temp: tempfile::TempDir,
}

fn voters() -> BTreeMap<u64, ControllerNode> {
    NODES
        .iter()
        .map(|id| {
            (
                *id,
                ControllerNode {
                    host: "sim".into(),
                    port: *id as u16,
                },
            )
        })
        .collect()
}

impl Cluster {
    pub fn new(seed: u64) -> Self {
        Self::with_loss(seed, 20)
    }

    /// A cluster whose network loses `loss_per_mille` of requests and of
    /// answers.
    pub fn with_loss(seed: u64, loss_per_mille: u64) -> Self {
        let temp = tempfile::tempdir().unwrap();
        let dirs = NODES
            .iter()
            .map(|id| {
                let dir = temp.path().join(format!("node-{id}"));
                std::fs::create_dir_all(&dir).unwrap();
                (*id, dir)
            })
            .collect();
        Self {
            net: Arc::new(Net {
                rng: Mutex::new(Rng(seed)),
                up: Mutex::new(BTreeMap::new()),
                cut: Mutex::new(BTreeSet::new()),
                loss_per_mille,
            }),
            dirs,
            stops: Mutex::new(BTreeMap::new()),
            observed: Arc::new(Mutex::new(Observed::default())),
            crashes: AtomicU64::new(0),
            incarnations: Mutex::new(BTreeMap::new()),
            registrations: Mutex::new(BTreeMap::new()),
            _temp: temp,
        }
    }

    /// The running node `id`.
    pub fn node(&self, id: u64) -> Option<Arc<Controller>> {
        self.net.up.lock().get(&id).cloned()
    }

    /// How often node `id` was started.
    pub fn incarnation(&self, id: u64) -> u64 {
        self.incarnations.lock().get(&id).copied().unwrap_or(0)
    }

    /// The broker epoch of node `id`'s broker, when it registered since
    /// the node last started.
    pub fn broker_epoch(&self, id: u64) -> Option<i64> {
        let current = self.incarnation(id);
        self.registrations
            .lock()
            .get(&id)
            .filter(|(incarnation, _)| *incarnation == current)
            .map(|(_, epoch)| *epoch)
    }

    pub async fn start_node(&self, id: u64) {
        let config = QuorumConfig {
            node_id: id,
            voters: voters(),
            heartbeat_interval: Duration::from_millis(50),
            election_timeout: (Duration::from_millis(300), Duration::from_millis(600)),
            local_address: None,
        };
        let net = Arc::clone(&self.net);
        let quorum = MetadataQuorum::start_with_network(
            &self.dirs[&id],
            false,
            CLUSTER_ID,
            config,
            |_contacts: PeerContacts, _links| SimNetwork { from: id, net },
        )
        .await
        .expect("the quorum starts");
        let channel = ControllerChannel::new(CLUSTER_ID.into(), id, voters(), None);
        let controller = Arc::new(Controller::from_parts(
            CLUSTER_ID.into(),
            ControllerConfig {
                node_id: id as i32,
                num_partitions: 1,
                default_replication_factor: 1,
                delete_topic_enable: true,
                unclean_leader_election_enable: false,
                broker_session_timeout: Duration::from_millis(1_500),
                leader_imbalance_check_interval: Some(Duration::from_secs(5)),
            },
            quorum,
            channel,
        ));
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(controller.quorum().clone().run_leader_lease());
        tokio::spawn(Arc::clone(&controller).run_broker_sessions(stopped.clone()));
        tokio::spawn(Arc::clone(&controller).run_leader_rebalance(stopped));
        self.watch_node(id, &controller);
        self.stops.lock().insert(id, stop);
        *self.incarnations.lock().entry(id).or_default() += 1;
        self.net.up.lock().insert(id, controller);
    }

    /// Starts every node at the same virtual instant, as a StatefulSet
    /// with Parallel pod management starts pods: elections must converge
    /// anyway (fresh random timeouts, pre-vote; `quorum_election`).
    pub async fn start_all(&self) {
        for id in NODES {
            self.start_node(id).await;
        }
    }

    /// Records every term this node leads and checks every image it
    /// publishes.
    fn watch_node(&self, id: u64, controller: &Arc<Controller>) {
        let mut metrics = controller.quorum().raft().metrics();
        let observed = Arc::clone(&self.observed);
        tokio::spawn(async move {
            loop {
                {
                    let m = metrics.borrow_and_update();
                    if m.state == ServerState::Leader {
                        observed
                            .lock()
                            .leaders
                            .entry(m.current_term)
                            .or_default()
                            .insert(id);
                    }
                }
                if metrics.changed().await.is_err() {
                    return;
                }
            }
        });
        let mut images = controller.subscribe();
        let observed = Arc::clone(&self.observed);
        tokio::spawn(async move {
            loop {
                let image = images.borrow_and_update().clone();
                if let Some(bad) = fenced_leader(&image) {
                    observed
                        .lock()
                        .fenced_leaders
                        .push(format!("node {id} at offset {}: {bad}", image.offset));
                }
                if images.changed().await.is_err() {
                    return;
                }
            }
        });
    }

    pub async fn crash_node(&self, id: u64) {
        let Some(controller) = self.net.up.lock().remove(&id) else {
            return;
        };
        self.crashes.fetch_add(1, Ordering::Relaxed);
        if let Some(stop) = self.stops.lock().remove(&id) {
            let _ = stop.send(true);
        }
        let _ = controller.shutdown().await;
    }

    /// Sends `op` from node `from` to whichever node leads, as a broker or
    /// client on `from` would (through the network).
    pub async fn route(&self, from: u64, op: ControllerOp) -> Option<ControllerOpResult> {
        let leader = self
            .net
            .up
            .lock()
            .iter()
            .find(|(_, c)| c.quorum().is_leader())
            .map(|(id, _)| *id)?;
        let node = self.net.deliver(from, leader).await?;
        // Like a real client, give up after a while (a leader cut off from
        // the others never commits); the write may still commit later,
        // unacknowledged.
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, node.execute_here(op)).await;
        drop(node);
        let answer = answer.ok()?;
        self.net
            .answer_arrives(from, leader)
            .await
            .then_some(answer)
    }

    /// Ends every cut and restarts every node that is down.
    pub async fn heal(&self) {
        self.net.cut.lock().clear();
        for id in NODES {
            if self.node(id).is_none() {
                self.start_node(id).await;
            }
        }
    }

    /// Waits up to `within` until the quorum has a leader, every broker is
    /// unfenced, every node's image is the same, and `also` holds.
    pub async fn converge(&self, within: Duration, also: impl Fn() -> bool) -> bool {
        tokio::time::timeout(within, async {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let nodes: Vec<Arc<Controller>> = self.net.up.lock().values().cloned().collect();
                let images: Vec<Arc<MetadataImage>> = nodes.iter().map(|c| c.image()).collect();
                let leader = nodes.iter().any(|c| c.quorum().is_leader());
                let all_unfenced = images[0].unfenced_brokers().count() == NODES.len();
                if leader && all_unfenced && images.iter().all(|i| **i == *images[0]) && also() {
                    return;
                }
            }
        })
        .await
        .is_ok()
    }

    /// The node that leads the newest term any running node leads in, with
    /// that term.
    pub fn leader(&self) -> Option<(u64, u64)> {
        self.nodes()
            .iter()
            .filter_map(|(id, c)| {
                let m = c.quorum().raft().metrics().borrow().clone();
                (m.state == ServerState::Leader).then_some((*id, m.current_term))
            })
            .max_by_key(|(_, term)| *term)
    }

    /// Waits up to `within` for a leader other than `not`.
    pub async fn wait_for_leader(&self, not: Option<u64>, within: Duration) -> Option<(u64, u64)> {
        tokio::time::timeout(within, async {
            loop {
                if let Some(found) = self.leader().filter(|(id, _)| Some(*id) != not) {
                    return found;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .ok()
    }

    /// The running nodes.
    pub fn nodes(&self) -> Vec<(u64, Arc<Controller>)> {
        self.net
            .up
            .lock()
            .iter()
            .map(|(id, c)| (*id, Arc::clone(c)))
            .collect()
    }

    /// Checks what the monitors saw: at most one leader per term, no image
    /// naming a fenced broker as a leader, leadership moved at least once;
    /// then that every node's log agrees entry by entry up to the commit
    /// point, which it returns (index, payload as JSON).
    pub async fn check_quorum(&self, seed: u64) -> Vec<(u64, String)> {
        let observed = std::mem::take(&mut *self.observed.lock());
        for (term, leaders) in &observed.leaders {
            assert!(
                leaders.len() <= 1,
                "seed {seed}: term {term} had leaders {leaders:?}"
            );
        }
        assert!(
            observed.fenced_leaders.is_empty(),
            "seed {seed}: {} images had fenced leaders, first: {:?}",
            observed.fenced_leaders.len(),
            observed.fenced_leaders.iter().take(5).collect::<Vec<_>>()
        );
        assert!(
            observed.leaders.len() >= 2,
            "seed {seed}: the faults never moved leadership"
        );
        let nodes = self.nodes();
        // What every node has applied: the controllers still run (a leader
        // rebalance may commit more while this reads).
        let applied = nodes.iter().map(|(_, c)| c.image().offset).min().unwrap();
        let mut logs = Vec::new();
        for (_, c) in &nodes {
            let mut store = c.quorum().log_store().clone();
            let entries = store.try_get_log_entries(0..=applied as u64).await.unwrap();
            let payloads: Vec<(u64, String)> = entries
                .iter()
                .map(|e| (e.log_id.index, serde_json::to_string(&e.payload).unwrap()))
                .collect();
            logs.push(payloads);
        }
        for (i, log) in logs.iter().enumerate().skip(1) {
            assert_eq!(
                log, &logs[0],
                "seed {seed}: node {} and node {} logs differ",
                nodes[i].0, nodes[0].0
            );
        }
        eprintln!(
            "seed {seed}: {} terms with a leader, {} crashes, {} log entries",
            observed.leaders.len(),
            self.crashes.load(Ordering::Relaxed),
            logs[0].len()
        );
        logs.swap_remove(0)
    }

    pub async fn shutdown(&self) {
        for (_, c) in self.nodes() {
            let _ = c.shutdown().await;
        }
    }
}

/// A partition led by a broker that is fenced or unknown, if any.
fn fenced_leader(image: &MetadataImage) -> Option<String> {
    for topic in image.topics() {
        for (index, p) in &topic.partitions {
            if p.leader >= 0 && image.broker(p.leader).is_none_or(|b| b.fenced) {
                return Some(format!("{}-{index} led by {}", topic.name, p.leader));
            }
        }
    }
    None
}

/// The seeds to run: `STROM_SIM_SEEDS=7,8` or `default`.
pub fn seeds(default: std::ops::RangeInclusive<u64>) -> Vec<u64> {
    match std::env::var("STROM_SIM_SEEDS") {
        Ok(list) => list
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .collect(),
        Err(_) => default.collect(),
    }
}

/// Log lines stamped with virtual time.
struct VirtualTime(tokio::time::Instant);

impl tracing_subscriber::fmt::time::FormatTime for VirtualTime {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        let t = tokio::time::Instant::now().saturating_duration_since(self.0);
        write!(w, "{:>9.3}s", t.as_secs_f64())
    }
}

/// The wall-clock time every simulated run starts at (2027-01-15).
pub const SIMULATED_EPOCH_MS: i64 = 1_800_000_000_000;

/// Runs `run(seed)` for each seed on its own paused runtime, failing a run
/// that does not end within `within` of virtual time. `STROM_SIM_LOG`
/// (an env filter such as `info`) prints the nodes' logs on virtual time.
pub fn run_seeds<F: Future<Output = ()>>(
    seeds: Vec<u64>,
    within: Duration,
    run: impl Fn(u64) -> F,
) {
    for seed in seeds {
        let _log = std::env::var("STROM_SIM_LOG").ok().map(|filter| {
            let subscriber = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_timer(VirtualTime(tokio::time::Instant::now()))
                .with_writer(std::io::stderr)
                .finish();
            tracing::subscriber::set_default(subscriber)
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        // A run that hangs ends in virtual time, not CI time. The wall
        // clock (timestamps, expiry, retention) follows virtual time too,
        // from the same instant in every run.
        let finished = runtime.block_on(async {
            strom_runtime::clock::use_virtual_wall_clock(SIMULATED_EPOCH_MS);
            tokio::time::timeout(within, run(seed)).await
        });
        assert!(finished.is_ok(), "seed {seed}: the run hung");
        eprintln!("seed {seed}: invariants held");
    }
}
