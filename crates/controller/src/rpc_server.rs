//! The server side of the controller RPC: the controller listener hands
//! each connection's requests, in order, to this node's Raft or, for
//! forwarded operations, to its controller. A broker-only node has no
//! controller listener; its broker listener passes connections whose first
//! request carries the RPC's API key here ([`serve_rpc_stream`]), which is
//! how the controllers replicate the metadata log to it.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::controller::Controller;
use crate::rpc::{self, FrameError, RpcEnvelope, RpcRequest, RpcResponse};

/// Serves controller RPCs on `listener` until `shutdown` turns true.
pub async fn serve_controller_rpc(
    listener: TcpListener,
    controller: Arc<Controller>,
    mut shutdown: watch::Receiver<bool>,
) {
    let cluster_id: Arc<str> = Arc::from(controller.cluster_id());
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let controller = Arc::clone(&controller);
                    let cluster_id = Arc::clone(&cluster_id);
                    let shutdown = shutdown.clone();
                    tokio::spawn(async move {
                        if let Err(e) = serve_connection(stream, controller, cluster_id, shutdown).await {
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

/// Serves controller RPCs on one connection (any byte stream) until the
/// peer closes it or `shutdown` turns true.
pub async fn serve_rpc_stream<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    controller: Arc<Controller>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), FrameError> {
    let cluster_id: Arc<str> = Arc::from(controller.cluster_id());
    serve_connection(stream, controller, cluster_id, shutdown).await
}

async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    controller: Arc<Controller>,
    cluster_id: Arc<str>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), FrameError> {
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
            Ok(envelope) => match envelope.request {
                RpcRequest::AppendEntries(r) => {
                    RpcResponse::AppendEntries(quorum.append_entries(r).await)
                }
                RpcRequest::Vote(r) => RpcResponse::Vote(quorum.vote(r).await),
                RpcRequest::PreVote(r) => RpcResponse::PreVote(quorum.pre_vote(r).await),
                RpcRequest::ElectNow => {
                    RpcResponse::ElectNow(quorum.elect_now(envelope.from).await)
                }
                RpcRequest::InstallSnapshot(r) => {
                    RpcResponse::InstallSnapshot(quorum.install_snapshot(r).await)
                }
                RpcRequest::Controller(op) => {
                    RpcResponse::Controller(controller.execute_here(op).await)
                }
            },
        };
        let body = serde_json::to_vec(&response).map_err(|e| FrameError::Bad(e.to_string()))?;
        rpc::write_response(&mut stream, correlation_id, &body).await?;
    }
}
