//! How the metadata log reaches a broker that does not vote (an observer)
//! without the broker accepting quorum RPC on any listener of its own.
//!
//! The observer connects out to the controller listener of every voter and
//! opens each connection with [`RpcRequest::ObserverLink`]. The voter
//! answers [`RpcResponse::ObserverLink`] and keeps the connection in its
//! [`ObserverStreams`]; from then on the roles turn: whichever voter leads
//! sends its AppendEntries and InstallSnapshot requests to the observer on
//! that connection (openraft replicates to the observer as to a learner),
//! and the observer answers them, and nothing else (a vote, a controller
//! operation or another link request gets [`RpcResponse::Refused`]). When
//! a link breaks (the voter restarted, a request timed out), the observer
//! connects again after [`RELINK_AFTER`]; the voter always uses the newest
//! link an observer offered.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::{watch, Notify};

use crate::controller::Controller;
use crate::raft_types::ControllerNode;
use crate::rpc::{self, RpcEnvelope, RpcRequest, RpcResponse};
use crate::rpc_server::{serve_connection, Serving};

/// How long an observer waits before linking to a voter again.
pub const RELINK_AFTER: Duration = Duration::from_millis(200);
/// How long opening a link (connecting and the voter's answer) may take.
const LINK_TIMEOUT: Duration = Duration::from_secs(2);

/// A voter's links to observers: the newest connection each observer
/// offered, not yet in use.
#[derive(Debug, Clone, Default)]
pub struct ObserverStreams {
    inner: Arc<StreamsInner>,
}

#[derive(Debug, Default)]
struct StreamsInner {
    /// Observer id → its newest unused link; an id with `None` linked
    /// before and has no fresh link now.
    streams: parking_lot::Mutex<HashMap<u64, Option<TcpStream>>>,
    offered: Notify,
}

impl ObserverStreams {
    /// Keeps `stream`, just offered by observer `node_id`, replacing an
    /// older unused one.
    pub fn offer(&self, node_id: u64, stream: TcpStream) {
        self.inner.streams.lock().insert(node_id, Some(stream));
        self.inner.offered.notify_waiters();
    }

    /// Whether `node_id` ever linked to this voter: its connections come
    /// from it, never dialled.
    pub fn is_observer(&self, node_id: u64) -> bool {
        self.inner.streams.lock().contains_key(&node_id)
    }

    /// Takes observer `node_id`'s newest link, waiting for one at most
    /// `within`.
    pub async fn take(&self, node_id: u64, within: Duration) -> Option<TcpStream> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let offered = self.inner.offered.notified();
            if let Some(stream) = self
                .inner
                .streams
                .lock()
                .get_mut(&node_id)
                .and_then(Option::take)
            {
                return Some(stream);
            }
            if tokio::time::timeout_at(deadline, offered).await.is_err() {
                return None;
            }
        }
    }
}

/// As an observer: keeps a link open to each of `voters` until `shutdown`
/// turns true, answering the replication requests that arrive on it.
pub async fn run_observer_links(
    controller: Arc<Controller>,
    voters: Vec<ControllerNode>,
    local_address: Option<std::net::IpAddr>,
    shutdown: watch::Receiver<bool>,
) {
    let mut links = tokio::task::JoinSet::new();
    for voter in voters {
        links.spawn(keep_linked(
            Arc::clone(&controller),
            voter,
            local_address,
            shutdown.clone(),
        ));
    }
    while links.join_next().await.is_some() {}
}

async fn keep_linked(
    controller: Arc<Controller>,
    voter: ControllerNode,
    local_address: Option<std::net::IpAddr>,
    mut shutdown: watch::Receiver<bool>,
) {
    let address = voter.address();
    loop {
        if *shutdown.borrow() {
            return;
        }
        match link(&controller, &address, local_address).await {
            Ok(stream) => {
                tracing::debug!(voter = %address, "linked to a voter for the metadata log");
                if let Err(e) = serve_connection(
                    stream,
                    Arc::clone(&controller),
                    Serving::ObserverLink,
                    shutdown.clone(),
                )
                .await
                {
                    tracing::debug!(voter = %address, error = %e, "the link to a voter closed");
                }
            }
            Err(e) => tracing::debug!(voter = %address, error = %e, "cannot link to a voter"),
        }
        tokio::select! {
            _ = tokio::time::sleep(RELINK_AFTER) => {}
            changed = shutdown.changed() => if changed.is_err() { return },
        }
    }
}

/// Opens a link to the voter at `address`: connects and offers the
/// connection.
async fn link(
    controller: &Controller,
    address: &str,
    local_address: Option<std::net::IpAddr>,
) -> Result<TcpStream, String> {
    let mut stream = rpc::connect(address, local_address, LINK_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    let envelope = RpcEnvelope {
        cluster_id: controller.cluster_id().to_string(),
        from: controller.quorum().node_id(),
        request: RpcRequest::ObserverLink,
    };
    let body = serde_json::to_vec(&envelope).map_err(|e| e.to_string())?;
    let answer = tokio::time::timeout(LINK_TIMEOUT, async {
        rpc::write_request(&mut stream, 0, &body).await?;
        rpc::read_response(&mut stream).await
    })
    .await
    .map_err(|_| "no answer".to_string())?
    .map_err(|e| e.to_string())?;
    match serde_json::from_slice::<RpcResponse>(&answer.1) {
        Ok(RpcResponse::ObserverLink) => Ok(stream),
        Ok(RpcResponse::Refused(why)) => Err(why),
        other => Err(format!("unexpected answer {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_newest_link_is_taken_once() {
        let streams = ObserverStreams::default();
        assert!(!streams.is_observer(7));
        assert!(streams.take(7, Duration::from_millis(10)).await.is_none());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let first = TcpStream::connect(address).await.unwrap();
        let second = TcpStream::connect(address).await.unwrap();
        let second_port = second.local_addr().unwrap().port();
        streams.offer(7, first);
        streams.offer(7, second);
        assert!(streams.is_observer(7));
        let taken = streams.take(7, Duration::from_millis(10)).await.unwrap();
        assert_eq!(taken.local_addr().unwrap().port(), second_port);
        // Used up: the next take waits for the next offer.
        assert!(streams.take(7, Duration::from_millis(10)).await.is_none());
        let waiting = {
            let streams = streams.clone();
            tokio::spawn(async move { streams.take(7, Duration::from_secs(10)).await })
        };
        tokio::task::yield_now().await;
        streams.offer(7, TcpStream::connect(address).await.unwrap());
        assert!(waiting.await.unwrap().is_some());
    }
}
