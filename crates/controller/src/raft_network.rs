//! The client side of the controller RPC for openraft: one TCP connection
//! per peer and purpose (replication stream, votes), opened on first use
//! and dropped after any error, every call bounded by openraft's deadline.

use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use tokio::net::TcpStream;

use crate::observer_links::ObserverStreams;
use crate::quorum_description::PeerContacts;
use crate::quorum_election::{ElectionPeers, PeerFuture, PreVoteRequest, PreVoteResponse};
use crate::raft_types::{ControllerNode, MetadataRaft};
use crate::rpc::{self, RpcEnvelope, RpcRequest, RpcResponse};

/// How long opening a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Makes clients for peers.
#[derive(Debug, Clone)]
pub struct ControllerNetwork {
    cluster_id: String,
    node_id: u64,
    local_address: Option<std::net::IpAddr>,
    contacts: PeerContacts,
    observer_streams: ObserverStreams,
}

impl ControllerNetwork {
    /// Clients that speak for `node_id` of `cluster_id`, connecting from
    /// `local_address` when given, recording peers' answers in `contacts`
    /// and reaching observers over the links they offered in
    /// `observer_streams`.
    pub fn new(
        cluster_id: String,
        node_id: u64,
        local_address: Option<std::net::IpAddr>,
        contacts: PeerContacts,
        observer_streams: ObserverStreams,
    ) -> Self {
        Self {
            cluster_id,
            node_id,
            local_address,
            contacts,
            observer_streams,
        }
    }
}

/// A client for one peer.
#[derive(Debug)]
pub struct PeerClient {
    cluster_id: String,
    node_id: u64,
    target: u64,
    address: String,
    local_address: Option<std::net::IpAddr>,
    contacts: PeerContacts,
    observer_streams: ObserverStreams,
    stream: Option<TcpStream>,
    next_correlation_id: i32,
}

impl RaftNetworkFactory<MetadataRaft> for ControllerNetwork {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &ControllerNode) -> PeerClient {
        self.client_for(target, node)
    }
}

/// How long a pre-vote or handover call may take, connecting included.
const ELECTION_CALL_TIMEOUT: Duration = Duration::from_secs(2);

impl ControllerNetwork {
    /// A one-off client for `target` (election messages are rare: each gets
    /// its own connection).
    fn client_for(&self, target: u64, node: &ControllerNode) -> PeerClient {
        PeerClient {
            cluster_id: self.cluster_id.clone(),
            node_id: self.node_id,
            target,
            address: node.address(),
            local_address: self.local_address,
            contacts: self.contacts.clone(),
            observer_streams: self.observer_streams.clone(),
            stream: None,
            next_correlation_id: 0,
        }
    }
}

impl ElectionPeers for ControllerNetwork {
    fn pre_vote<'a>(
        &'a self,
        target: u64,
        node: &'a ControllerNode,
        request: PreVoteRequest,
    ) -> PeerFuture<'a, Option<PreVoteResponse>> {
        Box::pin(async move {
            let mut client = self.client_for(target, node);
            match client
                .call(RpcRequest::PreVote(request), ELECTION_CALL_TIMEOUT)
                .await
            {
                Ok(RpcResponse::PreVote(r)) => Some(r),
                _ => None,
            }
        })
    }

    fn elect_now<'a>(&'a self, target: u64, node: &'a ControllerNode) -> PeerFuture<'a, bool> {
        Box::pin(async move {
            let mut client = self.client_for(target, node);
            matches!(
                client
                    .call(RpcRequest::ElectNow, ELECTION_CALL_TIMEOUT)
                    .await,
                Ok(RpcResponse::ElectNow(true))
            )
        })
    }
}

/// What went wrong with one call, before it is shaped into openraft's error.
enum CallError {
    Unreachable(std::io::Error),
    Network(String),
    Timeout,
}

impl PeerClient {
    async fn call(&mut self, request: RpcRequest, ttl: Duration) -> Result<RpcResponse, CallError> {
        let result = tokio::time::timeout(ttl, self.call_inner(request)).await;
        match result {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => {
                self.stream = None;
                Err(e)
            }
            Err(_) => {
                self.stream = None;
                Err(CallError::Timeout)
            }
        }
    }

    async fn call_inner(&mut self, request: RpcRequest) -> Result<RpcResponse, CallError> {
        if self.stream.is_none() {
            // An observer is reached over a link it offered, never dialled:
            // it serves no quorum RPC on its listeners.
            let stream = if self.observer_streams.is_observer(self.target) {
                self.observer_streams
                    .take(self.target, CONNECT_TIMEOUT)
                    .await
                    .ok_or_else(|| {
                        CallError::Unreachable(std::io::Error::new(
                            std::io::ErrorKind::NotConnected,
                            format!("observer {} has no link to this voter", self.target),
                        ))
                    })?
            } else {
                rpc::connect(&self.address, self.local_address, CONNECT_TIMEOUT)
                    .await
                    .map_err(CallError::Unreachable)?
            };
            self.stream = Some(stream);
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(CallError::Network("no connection".into()));
        };
        let envelope = RpcEnvelope {
            cluster_id: self.cluster_id.clone(),
            from: self.node_id,
            request,
        };
        let body = serde_json::to_vec(&envelope).map_err(|e| CallError::Network(e.to_string()))?;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let correlation_id = self.next_correlation_id;
        rpc::write_request(stream, correlation_id, &body)
            .await
            .map_err(|e| CallError::Network(e.to_string()))?;
        let (answered, body) = rpc::read_response(stream)
            .await
            .map_err(|e| CallError::Network(e.to_string()))?;
        if answered != correlation_id {
            return Err(CallError::Network(format!(
                "response {answered} to request {correlation_id}"
            )));
        }
        serde_json::from_slice(&body).map_err(|e| CallError::Network(e.to_string()))
    }

    fn rpc_error<E: std::error::Error>(
        &self,
        e: CallError,
        action: openraft::network::RPCTypes,
        ttl: Duration,
    ) -> RPCError<u64, ControllerNode, E> {
        match e {
            CallError::Unreachable(io) => RPCError::Unreachable(Unreachable::new(&io)),
            CallError::Network(why) => {
                RPCError::Network(NetworkError::new(&std::io::Error::other(why)))
            }
            CallError::Timeout => RPCError::Timeout(Timeout {
                action,
                id: self.node_id,
                target: self.target,
                timeout: ttl,
            }),
        }
    }

    fn unexpected<E: std::error::Error>(response: RpcResponse) -> RPCError<u64, ControllerNode, E> {
        let why = match response {
            RpcResponse::Refused(why) => why,
            other => format!("unexpected response {other:?}"),
        };
        RPCError::Network(NetworkError::new(&std::io::Error::other(why)))
    }
}

impl RaftNetwork<MetadataRaft> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<MetadataRaft>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, ControllerNode, RaftError<u64>>> {
        let ttl = option.hard_ttl();
        let sent_through = rpc
            .entries
            .last()
            .map(|e| e.log_id.index)
            .or(rpc.prev_log_id.map(|l| l.index));
        match self.call(RpcRequest::AppendEntries(rpc), ttl).await {
            Ok(RpcResponse::AppendEntries(Ok(r))) => {
                match &r {
                    AppendEntriesResponse::Success => {
                        self.contacts.acknowledged(self.target, sent_through)
                    }
                    AppendEntriesResponse::PartialSuccess(matched) => self
                        .contacts
                        .acknowledged(self.target, matched.map(|l| l.index)),
                    AppendEntriesResponse::Conflict | AppendEntriesResponse::HigherVote(_) => {}
                }
                Ok(r)
            }
            Ok(RpcResponse::AppendEntries(Err(e))) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(other) => Err(Self::unexpected(other)),
            Err(e) => Err(self.rpc_error(e, openraft::network::RPCTypes::AppendEntries, ttl)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<MetadataRaft>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, ControllerNode, RaftError<u64, InstallSnapshotError>>,
    > {
        let ttl = option.hard_ttl();
        match self.call(RpcRequest::InstallSnapshot(rpc), ttl).await {
            Ok(RpcResponse::InstallSnapshot(Ok(r))) => Ok(r),
            Ok(RpcResponse::InstallSnapshot(Err(e))) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(other) => Err(Self::unexpected(other)),
            Err(e) => Err(self.rpc_error(e, openraft::network::RPCTypes::InstallSnapshot, ttl)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, ControllerNode, RaftError<u64>>> {
        let ttl = option.hard_ttl();
        match self.call(RpcRequest::Vote(rpc), ttl).await {
            Ok(RpcResponse::Vote(Ok(r))) => Ok(r),
            Ok(RpcResponse::Vote(Err(e))) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(other) => Err(Self::unexpected(other)),
            Err(e) => Err(self.rpc_error(e, openraft::network::RPCTypes::Vote, ttl)),
        }
    }
}
