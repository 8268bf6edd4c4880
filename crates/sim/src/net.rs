//! The simulated network: a seeded generator of delays, losses and
//! faults, the links between nodes (cut or up), and the transport the
//! nodes' quorums talk over (openraft's RPCs and Strom's election
//! messages), which delivers to the running node or loses the message.

use super::*;

/// splitmix64: small, seedable, good enough to schedule faults.
pub struct Rng(pub(crate) u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

/// The simulated network and the nodes on it.
pub struct Net {
    pub rng: Mutex<Rng>,
    /// Running nodes.
    pub up: Mutex<BTreeMap<u64, Arc<Controller>>>,
    /// Directed links that drop everything.
    pub cut: Mutex<BTreeSet<(u64, u64)>>,
    /// Requests or answers lost, per mille.
    pub(crate) loss_per_mille: u64,
}

impl Net {
    /// Whether a message from `from` gets to `to` now (the client is always
    /// up, and never cut off).
    fn link_up(&self, from: u64, to: u64) -> bool {
        let up = |id: u64| id == CLIENT || self.up.lock().contains_key(&id);
        (from == to || !self.cut.lock().contains(&(from, to))) && up(from) && up(to)
    }

    fn reachable(&self, from: u64, to: u64) -> Option<Arc<Controller>> {
        if !self.link_up(from, to) {
            return None;
        }
        self.up.lock().get(&to).cloned()
    }

    /// Carries a message from `from` to `to`: a short delay, then the
    /// receiving node if the link is up and the message not lost.
    pub async fn deliver(&self, from: u64, to: u64) -> Option<Arc<Controller>> {
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
    pub async fn answer_arrives(&self, from: u64, to: u64) -> bool {
        let (delay, lost) = {
            let mut rng = self.rng.lock();
            (1 + rng.below(10), rng.chance(self.loss_per_mille))
        };
        tokio::time::sleep(Duration::from_millis(delay)).await;
        !lost && self.link_up(to, from)
    }
}

#[derive(Clone)]
pub(crate) struct SimNetwork {
    pub(crate) from: u64,
    pub(crate) net: Arc<Net>,
}

pub(crate) struct SimPeer {
    from: u64,
    to: u64,
    net: Arc<Net>,
}

impl ElectionPeers for SimNetwork {
    fn pre_vote<'a>(
        &'a self,
        target: u64,
        _node: &'a ControllerNode,
        request: PreVoteRequest,
    ) -> PeerFuture<'a, Option<PreVoteResponse>> {
        Box::pin(async move {
            let node = self.net.deliver(self.from, target).await?;
            let answer = node.quorum().pre_vote(request).await;
            drop(node);
            self.net
                .answer_arrives(self.from, target)
                .await
                .then_some(answer)
        })
    }

    fn elect_now<'a>(&'a self, target: u64, _node: &'a ControllerNode) -> PeerFuture<'a, bool> {
        Box::pin(async move {
            let Some(node) = self.net.deliver(self.from, target).await else {
                return false;
            };
            let called = node.quorum().elect_now(self.from).await;
            drop(node);
            called && self.net.answer_arrives(self.from, target).await
        })
    }
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
        let r = node.quorum().append_entries(rpc).await;
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
        let r = node.quorum().install_snapshot(rpc).await;
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
        let r = node.quorum().vote(rpc).await;
        drop(node);
        if !self.net.answer_arrives(self.from, self.to).await {
            return Err(lost());
        }
        r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.to, e)))
    }
}
