//! A deterministic, seeded simulation of the metadata quorum and the broker
//! lifecycle, in one process on virtual time (tokio's paused clock).
//!
//! Three controller nodes run the real quorum — openraft over the durable
//! Raft log and image state machine in temporary directories — connected
//! by an in-memory network that delays messages, loses some requests and
//! answers, and is cut between pairs of nodes. Nodes crash and restart
//! from their directories. A broker on each node registers and heartbeats
//! (the controller fences it when its session runs out), and a client
//! keeps creating topics. Every fault, delay and loss comes from a seeded
//! generator, so a seed replays the same fault schedule:
//! `STROM_SIM_SEEDS=7,8 cargo test -p strom-controller --test simulation`
//! (default: a fixed set). openraft draws its election timeouts from its
//! own random source and the logs fsync on blocking threads, so the
//! interleavings within a schedule can differ between runs of one seed;
//! a failure message names the seed and what broke.
//!
//! Invariants checked:
//! - at most one leader per term;
//! - every acknowledged write is in every node's log at the offset it was
//!   acknowledged with, and all nodes' logs agree entry by entry (nothing
//!   committed is lost or reordered), and their images are equal;
//! - no image, on any node, at any time observed, names a fenced broker as
//!   a partition's leader.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
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
use strom_controller::raft_types::{ControllerNode, MetadataRaft};
use strom_controller::{Controller, ControllerConfig, CreateTopic};
use strom_metadata::{BrokerRegistration, MetadataImage};
use strom_protocol::ErrorCode;
use tokio::sync::watch;
use uuid::Uuid;

const CLUSTER_ID: &str = "c2ltdWxhdGlvbi1jbHVzdA";
const NODES: [u64; 3] = [1, 2, 3];
/// Virtual time the faults run for.
const FAULT_PHASE: Duration = Duration::from_secs(90);
/// Virtual time a whole run may take.
const RUN_WITHIN: Duration = Duration::from_secs(600);
/// How long a simulated client waits for an answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Virtual time allowed to converge after healing.
const CONVERGE_WITHIN: Duration = Duration::from_secs(60);

/// splitmix64: small, seedable, good enough to schedule faults.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

/// The simulated network and the nodes on it.
struct Net {
    rng: Mutex<Rng>,
    /// Running nodes.
    up: Mutex<BTreeMap<u64, Arc<Controller>>>,
    /// Directed links that drop everything.
    cut: Mutex<BTreeSet<(u64, u64)>>,
    /// Requests or answers lost, per mille.
    loss_per_mille: u64,
}

impl Net {
    fn reachable(&self, from: u64, to: u64) -> Option<Arc<Controller>> {
        if from != to && self.cut.lock().contains(&(from, to)) {
            return None;
        }
        if !self.up.lock().contains_key(&from) {
            return None;
        }
        self.up.lock().get(&to).cloned()
    }

    /// Carries a message from `from` to `to`: a short delay, then the
    /// receiving node if the link is up and the message not lost.
    async fn deliver(&self, from: u64, to: u64) -> Option<Arc<Controller>> {
        let (delay, lost) = {
            let mut rng = self.rng.lock();
            (1 + rng.below(10), rng.chance(self.loss_per_mille))
        };
        tokio::time::sleep(Duration::from_millis(delay)).await;
        if lost {
            return None;
        }
        self.reachable(from, to)
    }

    /// Whether an answer from `to` makes it back to `from`.
    async fn answer_arrives(&self, from: u64, to: u64) -> bool {
        let (delay, lost) = {
            let mut rng = self.rng.lock();
            (1 + rng.below(10), rng.chance(self.loss_per_mille))
        };
        tokio::time::sleep(Duration::from_millis(delay)).await;
        !lost && self.reachable(to, from).is_some()
    }
}

struct SimNetwork {
    from: u64,
    net: Arc<Net>,
}

struct SimPeer {
    from: u64,
    to: u64,
    net: Arc<Net>,
}

impl RaftNetworkFactory<MetadataRaft> for SimNetwork {
    type Network = SimPeer;

    async fn new_client(&mut self, target: u64, _node: &ControllerNode) -> SimPeer {
        SimPeer {
            from: self.from,
            to: target,
            net: Arc::clone(&self.net),
        }
    }
}

fn unreachable<E: std::error::Error>() -> RPCError<u64, ControllerNode, E> {
    RPCError::Unreachable(Unreachable::new(&std::io::Error::other("link down")))
}

fn lost<E: std::error::Error>() -> RPCError<u64, ControllerNode, E> {
    RPCError::Network(NetworkError::new(&std::io::Error::other("answer lost")))
}

impl RaftNetwork<MetadataRaft> for SimPeer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<MetadataRaft>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, ControllerNode, RaftError<u64>>> {
        let node = self
            .net
            .deliver(self.from, self.to)
            .await
            .ok_or_else(unreachable)?;
        let r = node.quorum().raft().append_entries(rpc).await;
        drop(node);
        if !self.net.answer_arrives(self.from, self.to).await {
            return Err(lost());
        }
        r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.to, e)))
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<MetadataRaft>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, ControllerNode, RaftError<u64, InstallSnapshotError>>,
    > {
        let node = self
            .net
            .deliver(self.from, self.to)
            .await
            .ok_or_else(unreachable)?;
        let r = node.quorum().raft().install_snapshot(rpc).await;
        drop(node);
        if !self.net.answer_arrives(self.from, self.to).await {
            return Err(lost());
        }
        r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.to, e)))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        _option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, ControllerNode, RaftError<u64>>> {
        let node = self
            .net
            .deliver(self.from, self.to)
            .await
            .ok_or_else(unreachable)?;
        let r = node.quorum().raft().vote(rpc).await;
        drop(node);
        if !self.net.answer_arrives(self.from, self.to).await {
            return Err(lost());
        }
        r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.to, e)))
    }
}

/// What the monitors saw.
#[derive(Default)]
struct Observed {
    /// Term → nodes seen leading it.
    leaders: BTreeMap<u64, BTreeSet<u64>>,
    /// Images that named a fenced broker as a leader.
    fenced_leaders: Vec<String>,
    /// Topics whose creation was acknowledged, with the offset.
    acknowledged: Vec<(String, i64)>,
}

struct Sim {
    net: Arc<Net>,
    dirs: BTreeMap<u64, PathBuf>,
    stops: Mutex<BTreeMap<u64, watch::Sender<bool>>>,
    observed: Arc<Mutex<Observed>>,
    crashes: std::sync::atomic::AtomicU64,
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

impl Sim {
    fn new(seed: u64) -> Self {
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
                loss_per_mille: 20,
            }),
            dirs,
            stops: Mutex::new(BTreeMap::new()),
            observed: Arc::new(Mutex::new(Observed::default())),
            crashes: std::sync::atomic::AtomicU64::new(0),
            _temp: temp,
        }
    }

    async fn start_node(&self, id: u64) {
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
            |_contacts: PeerContacts| SimNetwork { from: id, net },
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
        self.net.up.lock().insert(id, controller);
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

    async fn crash_node(&self, id: u64) {
        let Some(controller) = self.net.up.lock().remove(&id) else {
            return;
        };
        self.crashes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(stop) = self.stops.lock().remove(&id) {
            let _ = stop.send(true);
        }
        let _ = controller.shutdown().await;
    }

    /// Sends `op` from node `from` to whichever node leads, as a broker or
    /// client on `from` would (through the network).
    async fn route(&self, from: u64, op: ControllerOp) -> Option<ControllerOpResult> {
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

/// The broker on node `id`: registers, heartbeats every 200 ms (virtual)
/// while its node runs, and registers again after its node restarts or its
/// registration is refused.
async fn run_broker(sim: Arc<Sim>, id: u64, mut stop: watch::Receiver<bool>) {
    let mut epoch: Option<i64> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = stop.changed() => return,
        }
        let Some(node) = sim.net.up.lock().get(&id).cloned() else {
            epoch = None;
            continue;
        };
        let applied = node.image().offset;
        drop(node);
        match epoch {
            None => {
                let registration = BrokerRegistration {
                    broker_id: id as i32,
                    incarnation_id: Uuid::new_v4(),
                    broker_epoch: 0,
                    endpoints: Vec::new(),
                    rack: None,
                    fenced: true,
                };
                if let Some(ControllerOpResult::RegisterBroker(Ok(e))) = sim
                    .route(id, ControllerOp::RegisterBroker(registration))
                    .await
                {
                    epoch = Some(e);
                }
            }
            Some(broker_epoch) => {
                let heartbeat = BrokerHeartbeat {
                    broker_id: id as i32,
                    broker_epoch,
                    applied_offset: applied,
                    want_shutdown: false,
                };
                if let Some(ControllerOpResult::BrokerHeartbeat(Err(e))) = sim
                    .route(id, ControllerOp::BrokerHeartbeat(heartbeat))
                    .await
                {
                    if e.code == ErrorCode::StaleBrokerEpoch
                        || e.code == ErrorCode::BrokerIdNotRegistered
                    {
                        epoch = None;
                    }
                }
            }
        }
    }
}

/// A client creating topics through random nodes; records what was
/// acknowledged.
async fn run_client(sim: Arc<Sim>, mut stop: watch::Receiver<bool>) {
    let mut n = 0;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(150)) => {}
            _ = stop.changed() => return,
        }
        let (from, partitions) = {
            let mut rng = sim.net.rng.lock();
            (1 + rng.below(3), 1 + rng.below(3) as i32)
        };
        n += 1;
        let name = format!("t-{n}");
        let op = ControllerOp::CreateTopics {
            topics: vec![CreateTopic {
                name: name.clone(),
                num_partitions: partitions,
                replication_factor: 1,
                ..CreateTopic::default()
            }],
            validate_only: false,
        };
        if let Some(ControllerOpResult::CreateTopics(results, Some(offset))) =
            sim.route(from, op).await
        {
            if results.first().is_some_and(Result::is_ok) {
                sim.observed.lock().acknowledged.push((name, offset));
            }
        }
    }
}

/// One random fault (or repair).
async fn inject_fault(sim: &Sim) {
    let (action, a, b) = {
        let mut rng = sim.net.rng.lock();
        (rng.below(10), 1 + rng.below(3), 1 + rng.below(3))
    };
    let down: Vec<u64> = NODES
        .iter()
        .copied()
        .filter(|id| !sim.net.up.lock().contains_key(id))
        .collect();
    match action {
        // Crash a node (at most one down at a time keeps a majority most
        // of the run; cuts can still take it away).
        0 | 1 if down.is_empty() => sim.crash_node(a).await,
        0..=2 => {
            for id in down {
                sim.start_node(id).await;
            }
        }
        // Cut one link, both ways.
        3 | 4 if a != b => {
            let mut cut = sim.net.cut.lock();
            cut.insert((a, b));
            cut.insert((b, a));
        }
        // Isolate a node.
        5 => {
            let mut cut = sim.net.cut.lock();
            for other in NODES {
                if other != a {
                    cut.insert((a, other));
                    cut.insert((other, a));
                }
            }
        }
        // Heal everything.
        6 | 7 => sim.net.cut.lock().clear(),
        _ => {}
    }
}

async fn run(seed: u64) {
    let sim = Arc::new(Sim::new(seed));
    for id in NODES {
        sim.start_node(id).await;
    }
    let (stop, stopped) = watch::channel(false);
    let mut tasks = Vec::new();
    for id in NODES {
        tasks.push(tokio::spawn(run_broker(
            Arc::clone(&sim),
            id,
            stopped.clone(),
        )));
    }
    let (stop_client, client_stopped) = watch::channel(false);
    let client = tokio::spawn(run_client(Arc::clone(&sim), client_stopped));

    let started = tokio::time::Instant::now();
    while started.elapsed() < FAULT_PHASE {
        let pause = 300 + sim.net.rng.lock().below(1_500);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        inject_fault(&sim).await;
    }

    // Repair everything; the cluster must converge on one history. No
    // more writes from now on, so what was acknowledged is final.
    let _ = stop_client.send(true);
    let _ = client.await;
    sim.net.cut.lock().clear();
    for id in NODES {
        if !sim.net.up.lock().contains_key(&id) {
            sim.start_node(id).await;
        }
    }
    let converged = tokio::time::timeout(CONVERGE_WITHIN, async {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let nodes: Vec<Arc<Controller>> = sim.net.up.lock().values().cloned().collect();
            let images: Vec<Arc<MetadataImage>> = nodes.iter().map(|c| c.image()).collect();
            let leader = nodes.iter().any(|c| c.quorum().is_leader());
            let all_unfenced = images[0].unfenced_brokers().count() == NODES.len();
            if leader && all_unfenced && images.iter().all(|i| **i == *images[0]) {
                return;
            }
        }
    })
    .await;
    let _ = stop.send(true);
    for t in tasks {
        let _ = t.await;
    }
    let nodes: Vec<(u64, Arc<Controller>)> = sim
        .net
        .up
        .lock()
        .iter()
        .map(|(id, c)| (*id, Arc::clone(c)))
        .collect();
    let observed = std::mem::take(&mut *sim.observed.lock());
    assert!(
        converged.is_ok(),
        "seed {seed}: no convergence; offsets {:?}, brokers {:?}",
        nodes
            .iter()
            .map(|(id, c)| (*id, c.image().offset))
            .collect::<Vec<_>>(),
        nodes
            .iter()
            .map(|(id, c)| (*id, c.image().unfenced_brokers().count()))
            .collect::<Vec<_>>()
    );

    // One leader per term.
    for (term, leaders) in &observed.leaders {
        assert!(
            leaders.len() <= 1,
            "seed {seed}: term {term} had leaders {leaders:?}"
        );
    }
    // A fenced broker never leads.
    assert!(
        observed.fenced_leaders.is_empty(),
        "seed {seed}: {} images had fenced leaders, first: {:?}",
        observed.fenced_leaders.len(),
        observed.fenced_leaders.iter().take(5).collect::<Vec<_>>()
    );
    // Logs agree entry by entry up to the commit point.
    let applied = nodes[0].1.image().offset;
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
    // Every acknowledged creation is in the log at its offset, and in
    // every image.
    let at: BTreeMap<u64, &String> = logs[0].iter().map(|(i, p)| (*i, p)).collect();
    for (name, offset) in &observed.acknowledged {
        let entry = at.get(&(*offset as u64)).copied();
        assert!(
            entry.is_some_and(|p| p.contains(&format!("\"name\":\"{name}\""))),
            "seed {seed}: acknowledged {name} at {offset} but the log has {entry:?}"
        );
        for (id, c) in &nodes {
            assert!(
                c.image().topic(name).is_some(),
                "seed {seed}: node {id} lost {name}"
            );
        }
    }
    assert!(
        observed.acknowledged.len() >= 10,
        "seed {seed}: too little progress to mean anything: {} writes",
        observed.acknowledged.len()
    );
    assert!(
        observed.leaders.len() >= 2,
        "seed {seed}: the faults never moved leadership"
    );
    eprintln!(
        "seed {seed}: {} writes acknowledged, {} terms with a leader, {} crashes, {} log entries",
        observed.acknowledged.len(),
        observed.leaders.len(),
        sim.crashes.load(std::sync::atomic::Ordering::Relaxed),
        logs[0].len()
    );
    for (_, c) in nodes {
        let _ = c.shutdown().await;
    }
}

fn seeds() -> Vec<u64> {
    match std::env::var("STROM_SIM_SEEDS") {
        Ok(list) => list
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .collect(),
        Err(_) => (1..=8).collect(),
    }
}

#[test]
fn the_quorum_keeps_its_invariants_under_crashes_partitions_and_loss() {
    for seed in seeds() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        // A run that hangs ends in virtual time, not CI time.
        let finished =
            runtime.block_on(async { tokio::time::timeout(RUN_WITHIN, run(seed)).await });
        assert!(finished.is_ok(), "seed {seed}: the run hung");
        eprintln!("seed {seed}: invariants held");
    }
}
