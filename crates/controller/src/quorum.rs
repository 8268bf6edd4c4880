//! The metadata quorum: openraft over the durable log
//! ([`crate::raft_log`]), the image state machine
//! ([`crate::state_machine`]) and the controller RPC
//! ([`crate::raft_network`], [`crate::rpc_server`]).
//!
//! Voters come from `controller.quorum.voters`; with none configured this
//! node is a one-voter quorum. On the first start every voter initializes
//! the quorum with the same voter set (openraft accepts identical
//! initializations), so no node has to be special. Only the leader writes;
//! a write first waits until the leader has applied everything committed
//! before it (a linearizable read), so operations validate against the
//! newest image. When voters call elections, and the handover of
//! leadership by a leader that stops, are Strom's own
//! ([`crate::quorum_election`]).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::InstallSnapshotError;
use openraft::error::{ClientWriteError, RaftError};
use openraft::network::RaftNetworkFactory;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{ChangeMembers, Config, Raft, ServerState, SnapshotPolicy};
use strom_metadata::{MetadataImage, MetadataRecord};
use strom_storage::log_manager::METADATA_LOG_DIR_NAME;
use tokio::sync::watch;

use crate::error::ControllerError;
use crate::observer_links::ObserverStreams;
use crate::quorum_description::{describe, now_ms, LeaderView, PeerContacts, QuorumDescription};
use crate::quorum_election::{ElectionClock, ElectionPeers};
use crate::raft_log::RaftLogStore;
use crate::raft_network::ControllerNetwork;
use crate::raft_types::{ControllerNode, MetadataBatch, MetadataRaft};
use crate::state_machine::MetadataStateMachine;

/// Entries between snapshots.
const SNAPSHOT_EVERY_ENTRIES: u64 = 10_000;

/// Entries kept in the log behind the newest snapshot, so a briefly lagging
/// voter catches up from the log instead of a snapshot transfer.
const ENTRIES_KEPT_AFTER_SNAPSHOT: u64 = 1_000;

/// How the quorum runs.
#[derive(Debug, Clone)]
pub struct QuorumConfig {
    /// This node.
    pub node_id: u64,
    /// The voters with their controller endpoints; empty for a one-voter
    /// quorum of this node.
    pub voters: BTreeMap<u64, ControllerNode>,
    /// Heartbeat interval of the leader.
    pub heartbeat_interval: Duration,
    /// Election timeout range (minimum, maximum); see
    /// [`crate::quorum_election`].
    pub election_timeout: (Duration, Duration),
    /// The address this node's controller connections leave from (its own
    /// controller listener's), if it has a specific one.
    pub local_address: Option<std::net::IpAddr>,
}

impl QuorumConfig {
    /// Whether this node votes.
    pub fn is_voter(&self) -> bool {
        self.voters.is_empty() || self.voters.contains_key(&self.node_id)
    }

    fn voter_set(&self) -> BTreeMap<u64, ControllerNode> {
        if self.voters.is_empty() {
            [(self.node_id, ControllerNode::default())]
                .into_iter()
                .collect()
        } else {
            self.voters.clone()
        }
    }
}

/// How long start-up waits for the stored membership to load.
const MEMBERSHIP_LOAD_TIMEOUT: Duration = Duration::from_secs(5);

/// The quorum as this node sees it.
#[derive(Clone)]
pub struct MetadataQuorum {
    raft: Raft<MetadataRaft>,
    log: RaftLogStore,
    images: watch::Receiver<Arc<MetadataImage>>,
    node_id: u64,
    lease: Arc<LeaderLease>,
    contacts: PeerContacts,
    elections: Arc<ElectionClock>,
    election_peers: Arc<dyn ElectionPeers>,
    stop_elections: Arc<watch::Sender<bool>>,
    observer_streams: ObserverStreams,
}

/// When this node, as leader, last heard a majority confirm it: a leader
/// cut off from the other voters stops acting as one (it could not commit
/// anyway) once its lease runs out, instead of holding on until a higher
/// term reaches it.
#[derive(Debug)]
struct LeaderLease {
    sole_voter: bool,
    duration: Duration,
    check_every: Duration,
    confirmed: parking_lot::Mutex<Option<(u64, tokio::time::Instant)>>,
}

impl std::fmt::Debug for MetadataQuorum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataQuorum")
            .field("node_id", &self.node_id)
            .field("log", &self.log)
            .finish()
    }
}

fn unavailable(e: impl std::fmt::Display) -> ControllerError {
    ControllerError::Unavailable(e.to_string())
}

impl MetadataQuorum {
    /// Opens the log and snapshots under `log_dir`, starts Raft talking to
    /// the other voters over the controller RPC and, on a voter's first
    /// start, initializes the quorum.
    pub async fn start(
        log_dir: &Path,
        had_clean_shutdown: bool,
        cluster_id: &str,
        config: QuorumConfig,
    ) -> Result<Self, ControllerError> {
        let local_address = config.local_address;
        let node_id = config.node_id;
        Self::start_with_network(
            log_dir,
            had_clean_shutdown,
            cluster_id,
            config,
            |contacts, observer_streams| {
                ControllerNetwork::new(
                    cluster_id.to_string(),
                    node_id,
                    local_address,
                    contacts,
                    observer_streams,
                )
            },
        )
        .await
    }

    /// [`MetadataQuorum::start`] over any network: `network` gets the
    /// record of peers' answers that DescribeQuorum reads and the links
    /// observers offered, and also carries the election messages openraft
    /// does not know. Simulations pass an in-memory one.
    pub async fn start_with_network<N>(
        log_dir: &Path,
        had_clean_shutdown: bool,
        cluster_id: &str,
        config: QuorumConfig,
        network: impl FnOnce(PeerContacts, ObserverStreams) -> N,
    ) -> Result<Self, ControllerError>
    where
        N: RaftNetworkFactory<MetadataRaft> + ElectionPeers + Clone,
    {
        let log = RaftLogStore::open(log_dir, had_clean_shutdown)?;
        let (publish, images) = watch::channel(Arc::new(MetadataImage::empty()));
        let state_machine =
            MetadataStateMachine::open(&log_dir.join(METADATA_LOG_DIR_NAME), publish)?;
        // openraft's own election timer is off (`elect(false)` below):
        // of its timeouts only the maximum matters, as the lease a voter
        // keeps on the leader it heard, which is the minimum election
        // timeout (quorum_election's rules).
        let lease_ms = config.election_timeout.0.as_millis() as u64;
        let raft_config = Config {
            cluster_name: cluster_id.to_string(),
            heartbeat_interval: config.heartbeat_interval.as_millis() as u64,
            election_timeout_min: lease_ms.saturating_sub(1),
            election_timeout_max: lease_ms,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(SNAPSHOT_EVERY_ENTRIES),
            max_in_snapshot_log_to_keep: ENTRIES_KEPT_AFTER_SNAPSHOT,
            ..Config::default()
        }
        .validate()
        .map_err(|e| ControllerError::Corrupt(format!("quorum configuration: {e}")))?;
        let contacts = PeerContacts::default();
        let observer_streams = ObserverStreams::default();
        let network = network(contacts.clone(), observer_streams.clone());
        let election_peers: Arc<dyn ElectionPeers> = Arc::new(network.clone());
        let raft = Raft::new(
            config.node_id,
            Arc::new(raft_config),
            network,
            log.clone(),
            state_machine,
        )
        .await
        .map_err(unavailable)?;
        raft.runtime_config().elect(false);
        let (stop_elections, elections_stopped) = watch::channel(false);
        let quorum = Self {
            raft,
            log,
            images,
            node_id: config.node_id,
            lease: Arc::new(LeaderLease {
                sole_voter: config.voter_set().len() == 1 && config.is_voter(),
                // No voter grants a vote to another before the minimum
                // election timeout passed without hearing this leader.
                duration: config.election_timeout.0,
                check_every: config.heartbeat_interval,
                confirmed: parking_lot::Mutex::new(None),
            }),
            contacts,
            elections: Arc::new(ElectionClock::new(config.election_timeout)),
            election_peers: Arc::clone(&election_peers),
            stop_elections: Arc::new(stop_elections),
            observer_streams,
        };
        tokio::spawn(
            quorum
                .clone()
                .run_elections(election_peers, elections_stopped),
        );
        let initialized = quorum.raft.is_initialized().await.map_err(unavailable)?;
        if initialized {
            quorum.check_voters(&config).await?;
        }
        // A new quorum is set up by its first voter alone; the others join
        // when it replicates the membership to them. Were every empty voter
        // to set it up, voters added to an existing quorum by mistake could
        // form a quorum of their own, empty, beside it (the existing
        // voters refuse the new configuration: `check_voters`).
        let first_voter = config.voter_set().keys().next().copied();
        if config.is_voter() && !initialized && first_voter != Some(config.node_id) {
            tracing::info!(
                first_voter,
                "waiting for the first voter to set up the metadata quorum"
            );
        }
        if config.is_voter() && !initialized && first_voter == Some(config.node_id) {
            let voters = config.voter_set();
            tracing::info!(voters = ?voters.keys().collect::<Vec<_>>(), "initializing the metadata quorum");
            match quorum.raft.initialize(voters).await {
                Ok(()) => {}
                Err(RaftError::APIError(e)) => {
                    tracing::info!(reason = %e, "the metadata quorum was already initialized")
                }
                Err(e) => return Err(unavailable(e)),
            }
        }
        if config.voter_set().len() == 1 && config.is_voter() {
            // A lone voter need not wait out an election timeout.
            let _ = quorum.raft.trigger().elect().await;
        }
        Ok(quorum)
    }

    /// Refuses a configuration whose voters differ from those of the
    /// metadata log this node holds: the voters of a quorum cannot change,
    /// and a node that went along with new ones could be outvoted by empty
    /// newcomers and have its log overwritten.
    async fn check_voters(&self, config: &QuorumConfig) -> Result<(), ControllerError> {
        let loaded = self
            .raft
            .wait(Some(MEMBERSHIP_LOAD_TIMEOUT))
            .metrics(
                |m| m.membership_config.log_id().is_some(),
                "the stored membership",
            )
            .await;
        let Ok(metrics) = loaded else {
            // No membership stored yet (initialized by a vote only).
            return Ok(());
        };
        let stored: Vec<u64> = metrics.membership_config.membership().voter_ids().collect();
        let configured: Vec<u64> = config.voter_set().keys().copied().collect();
        if stored != configured {
            return Err(ControllerError::VotersChanged { configured, stored });
        }
        Ok(())
    }

    /// Logs this node's view of the quorum whenever it changes (leader,
    /// term, own role); runs until the quorum stops.
    pub async fn log_changes(self) {
        let mut metrics = self.raft.metrics();
        let mut seen: Option<(Option<u64>, u64, ServerState)> = None;
        loop {
            let now = {
                let m = metrics.borrow_and_update();
                (m.current_leader, m.current_term, m.state)
            };
            if seen != Some(now) {
                let (leader, term, state) = now;
                match leader {
                    Some(leader) => tracing::info!(leader, term, role = ?state, "metadata quorum"),
                    None => tracing::warn!(term, role = ?state, "metadata quorum has no leader"),
                }
                seen = Some(now);
            }
            if metrics.changed().await.is_err() {
                return;
            }
        }
    }

    /// The openraft handle (for metrics and tests; peers' messages come in
    /// through [`MetadataQuorum::append_entries`] and its siblings).
    pub fn raft(&self) -> &Raft<MetadataRaft> {
        &self.raft
    }

    /// The links observers offered this voter.
    pub fn observer_streams(&self) -> &ObserverStreams {
        &self.observer_streams
    }

    /// Whether `node_id` votes in the quorum as this node knows it.
    pub fn is_voter(&self, node_id: u64) -> bool {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .any(|id| id == node_id)
    }

    pub(crate) fn elections(&self) -> &ElectionClock {
        &self.elections
    }

    /// A leader's AppendEntries (heartbeats included); one this node
    /// accepts counts as leader contact.
    pub async fn append_entries(
        &self,
        request: AppendEntriesRequest<MetadataRaft>,
    ) -> Result<AppendEntriesResponse<u64>, RaftError<u64>> {
        let response = self.raft.append_entries(request).await;
        if matches!(
            response,
            Ok(AppendEntriesResponse::Success
                | AppendEntriesResponse::PartialSuccess(_)
                | AppendEntriesResponse::Conflict)
        ) {
            self.elections.heard_from_leader();
        }
        response
    }

    /// A candidate's vote request; a granted vote restarts the election
    /// timeout, as leader contact does.
    pub async fn vote(
        &self,
        request: VoteRequest<u64>,
    ) -> Result<VoteResponse<u64>, RaftError<u64>> {
        let response = self.raft.vote(request).await;
        if response.as_ref().is_ok_and(|r| r.vote_granted) {
            self.elections.heard_from_leader();
        }
        response
    }

    /// A leader's snapshot chunk; one this node accepts (its answer
    /// carries the leader's own vote) counts as leader contact.
    pub async fn install_snapshot(
        &self,
        request: InstallSnapshotRequest<MetadataRaft>,
    ) -> Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>> {
        let vote = request.vote;
        let response = self.raft.install_snapshot(request).await;
        if response.as_ref().is_ok_and(|r| r.vote == vote) {
            self.elections.heard_from_leader();
        }
        response
    }

    /// As the leader about to stop: hands leadership to another voter (see
    /// [`crate::quorum_election`]); does nothing elsewhere.
    pub async fn hand_over_leadership(&self) {
        let peers = Arc::clone(&self.election_peers);
        self.hand_over_leadership_through(peers.as_ref()).await;
    }

    /// The durable Raft log (for checks that read entries back).
    pub fn log_store(&self) -> &RaftLogStore {
        &self.log
    }

    /// The newest image this node applied.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.images.borrow().clone()
    }

    /// Receives every new image.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.images.clone()
    }

    /// This node's id.
    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// The current term (KRaft's epoch).
    pub fn term(&self) -> u64 {
        self.raft.metrics().borrow().current_term
    }

    /// The last metadata log index this node has applied (committed
    /// entries are applied as soon as they are known committed).
    pub fn applied_index(&self) -> Option<u64> {
        self.raft.metrics().borrow().last_applied.map(|l| l.index)
    }

    /// The leader this node knows of.
    pub fn leader(&self) -> Option<u64> {
        self.raft.metrics().borrow().current_leader
    }

    /// Whether this node leads the quorum.
    pub fn is_leader(&self) -> bool {
        let (state, term) = {
            let m = self.raft.metrics();
            let m = m.borrow();
            (m.state, m.current_term)
        };
        if state != ServerState::Leader {
            return false;
        }
        if self.lease.sole_voter {
            return true;
        }
        self.holds_lease(term)
    }

    /// As leader, keeps [`MetadataQuorum::is_leader`] true while a majority
    /// keeps acknowledging it: openraft reports how long ago a quorum last
    /// acknowledged this leader's heartbeats or entries, and the moment
    /// that happened is what the lease counts from. No messages of its own;
    /// runs until the quorum stops.
    pub async fn run_leader_lease(self) {
        let mut metrics = self.raft.metrics();
        let mut warned_term = None;
        let mut leader_since: Option<(u64, tokio::time::Instant)> = None;
        loop {
            let (state, term, since_ack, last_log_index) = {
                let m = metrics.borrow_and_update();
                (
                    m.state,
                    m.current_term,
                    m.millis_since_quorum_ack,
                    m.last_log_index,
                )
            };
            let observed = tokio::time::Instant::now();
            if state == ServerState::Leader {
                if leader_since.is_none_or(|(t, _)| t != term) {
                    self.contacts.clear();
                }
                self.contacts.leader_log_ends_at(last_log_index);
            }
            if state == ServerState::Leader && !self.lease.sole_voter {
                if let Some(ms) = since_ack {
                    let acked = observed
                        .checked_sub(Duration::from_millis(ms))
                        .unwrap_or(observed);
                    let mut confirmed = self.lease.confirmed.lock();
                    if confirmed.is_none_or(|(t, at)| t != term || at < acked) {
                        *confirmed = Some((term, acked));
                    }
                }
                let leading_since = *leader_since.get_or_insert((term, observed));
                let leading_since = if leading_since.0 == term {
                    leading_since.1
                } else {
                    leader_since = Some((term, observed));
                    observed
                };
                if self.holds_lease(term) {
                    warned_term = None;
                } else if warned_term != Some(term)
                    && leading_since.elapsed() >= self.lease.duration
                {
                    warned_term = Some(term);
                    tracing::warn!(term, "this leader cannot reach a majority of the voters; not acting as the active controller");
                }
            } else {
                leader_since = None;
            }
            tokio::select! {
                _ = tokio::time::sleep(self.lease.check_every) => {}
                changed = metrics.changed() => if changed.is_err() { return },
            }
        }
    }

    /// The quorum as this node, its leader, sees it; `None` when it does
    /// not lead.
    pub fn describe(&self) -> Option<QuorumDescription> {
        let m = self.raft.metrics().borrow().clone();
        if m.state != ServerState::Leader {
            return None;
        }
        let membership = m.membership_config.membership();
        let voter_ids: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
        let (voters, observers): (BTreeMap<u64, ControllerNode>, BTreeMap<u64, ControllerNode>) =
            membership
                .nodes()
                .map(|(id, node)| (*id, node.clone()))
                .partition(|(id, _)| voter_ids.contains(id));
        let matched: BTreeMap<u64, Option<u64>> = m
            .replication
            .as_ref()
            .map(|r| r.iter().map(|(id, l)| (*id, l.map(|l| l.index))).collect())
            .unwrap_or_default();
        Some(describe(&LeaderView {
            leader_id: self.node_id,
            term: m.current_term,
            last_log_index: m.last_log_index,
            committed_index: m.last_applied.map(|l| l.index),
            voters: &voters,
            observers: &observers,
            matched: &matched,
            contacts: &self.contacts,
            now_ms: now_ms(),
        }))
    }

    /// Makes `node_id` an observer: a learner that gets every entry
    /// replicated to `endpoint` (its broker listener) without voting, so a
    /// broker-only node has the metadata. Updates the endpoint of a known
    /// observer; only the leader can.
    pub async fn add_observer(
        &self,
        node_id: u64,
        endpoint: ControllerNode,
    ) -> Result<(), ControllerError> {
        let membership = self.raft.metrics().borrow().membership_config.clone();
        let membership = membership.membership();
        if membership.voter_ids().any(|v| v == node_id) {
            return Err(ControllerError::Corrupt(format!(
                "node {node_id} is a voter, not an observer"
            )));
        }
        let result = match membership.get_node(&node_id) {
            Some(known) if *known == endpoint => return Ok(()),
            Some(_) => self
                .raft
                .change_membership(
                    ChangeMembers::SetNodes([(node_id, endpoint.clone())].into()),
                    false,
                )
                .await
                .map(|_| ()),
            None => self
                .raft
                .add_learner(node_id, endpoint.clone(), false)
                .await
                .map(|_| ()),
        };
        match result {
            Ok(()) => {
                tracing::info!(node_id, endpoint = %endpoint.address(), "observer added to the metadata quorum");
                Ok(())
            }
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(ControllerError::NotLeader(f.leader_id))
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    fn holds_lease(&self, term: u64) -> bool {
        self.lease
            .confirmed
            .lock()
            .is_some_and(|(t, at)| t == term && at.elapsed() < self.lease.duration)
    }

    /// Waits until some node leads the quorum and this node applied what
    /// it committed, at most `timeout`.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<u64, ControllerError> {
        let mut metrics = self.raft.metrics();
        let found = tokio::time::timeout(timeout, async {
            loop {
                if let Some(leader) = metrics.borrow_and_update().current_leader {
                    return Ok(leader);
                }
                if metrics.changed().await.is_err() {
                    return Err(unavailable("the quorum stopped"));
                }
            }
        })
        .await;
        found.unwrap_or_else(|_| {
            Err(unavailable(format!(
                "no quorum leader within {} ms",
                timeout.as_millis()
            )))
        })
    }

    /// As leader: waits until everything committed before now is applied,
    /// so the image is current. Elsewhere: [`ControllerError::NotLeader`].
    pub async fn ensure_current(&self) -> Result<(), ControllerError> {
        match self.raft.ensure_linearizable().await {
            Ok(_) => Ok(()),
            Err(e) => match e.forward_to_leader::<ControllerNode>() {
                Some(f) => Err(ControllerError::NotLeader(f.leader_id)),
                None => Err(unavailable(e)),
            },
        }
    }

    /// As leader: commits `records` as one entry and waits until it is
    /// applied; returns the metadata offset it got.
    pub async fn write(&self, records: Vec<MetadataRecord>) -> Result<i64, ControllerError> {
        match self.raft.client_write(MetadataBatch(records)).await {
            Ok(response) => match response.data.refused {
                None => Ok(response.data.offset),
                Some(why) => Err(ControllerError::Corrupt(why)),
            },
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(ControllerError::NotLeader(f.leader_id))
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Stops Raft and closes the log.
    pub async fn shutdown(&self) -> Result<(), ControllerError> {
        let _ = self.stop_elections.send(true);
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "the metadata quorum did not stop cleanly");
        }
        let log = self.log.clone();
        strom_runtime::blocking::run(move || log.close())
            .await
            .map_err(unavailable)?
    }
}
