//! The server side of the controller RPC. A voter's controller listener
//! hands each connection's requests, in order, to this node's quorum or,
//! for forwarded operations, to its controller; a connection an observer
//! opens with [`RpcRequest::ObserverLink`] is kept for replicating to it
//! ([`crate::observer_links`]). On an observer's side of such a link only
//! the leader's replication requests are answered. Nothing else serves
//! this RPC: a broker's own listeners speak only Kafka.

use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::controller::Controller;
use crate::rpc::{self, FrameError, RpcEnvelope, RpcRequest, RpcResponse};

/// What a connection serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serving {
    /// A voter's controller listener: every request.
    ControllerListener,
    /// An observer's link to a voter: the leader's AppendEntries and
    /// InstallSnapshot only.
    ObserverLink,
}

/// Serves controller RPCs on `listener` until `shutdown` turns true.
pub async fn serve_controller_rpc(
    listener: TcpListener,
    controller: Arc<Controller>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let controller = Arc::clone(&controller);
                    let shutdown = shutdown.clone();
                    tokio::spawn(async move {
                        if let Err(e) = serve_connection(stream, controller, Serving::ControllerListener, shutdown).await {
                            tracing::debug!(%peer, error = %e, "controller RPC connection closed");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept a controller RPC connection");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            _ = shutdown.changed() => if *shutdown.borrow() { return },
        }
    }
}

/// Serves controller RPCs on one connection until the peer closes it,
/// `shutdown` turns true or, on a controller listener, an observer makes
/// it its link.
pub async fn serve_connection(
    mut stream: TcpStream,
    controller: Arc<Controller>,
    serving: Serving,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), FrameError> {
    let cluster_id: Arc<str> = Arc::from(controller.cluster_id());
    let quorum = controller.quorum().clone();
    loop {
        let (correlation_id, body) = tokio::select! {
            r = rpc::read_request(&mut stream) => r?,
            _ = shutdown.changed() => return Ok(()),
        };
        let response = match serde_json::from_slice::<RpcEnvelope>(&body) {
            Err(e) => RpcResponse::Refused(format!("malformed request: {e}")),
            Ok(envelope) if *envelope.cluster_id != *cluster_id => {
                tracing::warn!(
                    from = envelope.from,
                    their_cluster_id = %envelope.cluster_id,
                    "refusing a controller RPC from another cluster"
                );
                RpcResponse::Refused(format!(
                    "node belongs to cluster {}, not {}",
                    cluster_id, envelope.cluster_id
                ))
            }
            Ok(envelope) => match (serving, envelope.request) {
                (_, RpcRequest::AppendEntries(r)) => {
                    RpcResponse::AppendEntries(quorum.append_entries(r).await)
                }
                (_, RpcRequest::InstallSnapshot(r)) => {
                    RpcResponse::InstallSnapshot(quorum.install_snapshot(r).await)
                }
                (Serving::ObserverLink, other) => RpcResponse::Refused(format!(
                    "an observer answers only replication requests, not {}",
                    request_name(&other)
                )),
                (Serving::ControllerListener, RpcRequest::Vote(r)) => {
                    RpcResponse::Vote(quorum.vote(r).await)
                }
                (Serving::ControllerListener, RpcRequest::PreVote(r)) => {
                    RpcResponse::PreVote(quorum.pre_vote(r).await)
                }
                (Serving::ControllerListener, RpcRequest::ElectNow) => {
                    RpcResponse::ElectNow(quorum.elect_now(envelope.from).await)
                }
                (Serving::ControllerListener, RpcRequest::Controller(op)) => {
                    RpcResponse::Controller(controller.execute_here(op).await)
                }
                (Serving::ControllerListener, RpcRequest::ObserverLink)
                    if quorum.is_voter(envelope.from) =>
                {
                    RpcResponse::Refused(format!(
                        "node {} is a voter, not an observer",
                        envelope.from
                    ))
                }
                (Serving::ControllerListener, RpcRequest::ObserverLink) => {
                    let body = serde_json::to_vec(&RpcResponse::ObserverLink)
                        .map_err(|e| FrameError::Bad(e.to_string()))?;
                    rpc::write_response(&mut stream, correlation_id, &body).await?;
                    tracing::debug!(observer = envelope.from, "an observer linked");
                    quorum.observer_streams().offer(envelope.from, stream);
                    return Ok(());
                }
            },
        };
        let body = serde_json::to_vec(&response).map_err(|e| FrameError::Bad(e.to_string()))?;
        rpc::write_response(&mut stream, correlation_id, &body).await?;
    }
}

/// A request's name, for messages.
fn request_name(request: &RpcRequest) -> &'static str {
    match request {
        RpcRequest::AppendEntries(_) => "AppendEntries",
        RpcRequest::Vote(_) => "Vote",
        RpcRequest::PreVote(_) => "PreVote",
        RpcRequest::ElectNow => "ElectNow",
        RpcRequest::ObserverLink => "ObserverLink",
        RpcRequest::InstallSnapshot(_) => "InstallSnapshot",
        RpcRequest::Controller(_) => "a controller operation",
    }
}
