//! Sending operations to the active controller: a broker (or a controller
//! that is not the leader) forwards each [`ControllerOp`] over the
//! controller RPC and relays the answer, as KRaft brokers forward admin
//! requests. One connection is kept to the current leader.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::Mutex;

use crate::error::ControllerError;
use crate::ops::{ControllerOp, ControllerOpResult};
use crate::raft_types::ControllerNode;
use crate::rpc::{self, RpcEnvelope, RpcRequest, RpcResponse};

/// How long connecting to a controller may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A channel to whichever controller leads.
#[derive(Debug)]
pub struct ControllerChannel {
    cluster_id: String,
    node_id: u64,
    voters: BTreeMap<u64, ControllerNode>,
    local_address: Option<std::net::IpAddr>,
    connection: Mutex<Option<(u64, TcpStream, i32)>>,
}

impl ControllerChannel {
    /// The voters this channel can reach, by id.
    pub fn voter_ids(&self) -> Vec<u64> {
        self.voters.keys().copied().collect()
    }

    /// A channel for `node_id` of `cluster_id` to the given voters,
    /// connecting from `local_address` when given.
    pub fn new(
        cluster_id: String,
        node_id: u64,
        voters: BTreeMap<u64, ControllerNode>,
        local_address: Option<std::net::IpAddr>,
    ) -> Self {
        Self {
            cluster_id,
            node_id,
            voters,
            local_address,
            connection: Mutex::new(None),
        }
    }

    /// Sends `op` to controller `target` and waits at most `timeout`.
    pub async fn send(
        &self,
        target: u64,
        op: ControllerOp,
        timeout: Duration,
    ) -> Result<ControllerOpResult, ControllerError> {
        let node = self.voters.get(&target).ok_or_else(|| {
            ControllerError::Unavailable(format!("controller {target} is not a voter"))
        })?;
        let mut guard = self.connection.lock().await;
        if guard.as_ref().is_some_and(|(t, _, _)| *t != target) {
            *guard = None;
        }
        let result = tokio::time::timeout(timeout, async {
            if guard.is_none() {
                let stream = rpc::connect(&node.address(), self.local_address, CONNECT_TIMEOUT)
                    .await
                    .map_err(|e| {
                        ControllerError::Unavailable(format!("controller {target}: {e}"))
                    })?;
                *guard = Some((target, stream, 0));
            }
            let Some((_, stream, correlation)) = guard.as_mut() else {
                return Err(ControllerError::Unavailable("no connection".into()));
            };
            *correlation = correlation.wrapping_add(1);
            let correlation_id = *correlation;
            let envelope = RpcEnvelope {
                cluster_id: self.cluster_id.clone(),
                from: self.node_id,
                request: RpcRequest::Controller(op),
            };
            let body = serde_json::to_vec(&envelope)
                .map_err(|e| ControllerError::Unavailable(e.to_string()))?;
            rpc::write_request(stream, correlation_id, &body)
                .await
                .map_err(|e| ControllerError::Unavailable(e.to_string()))?;
            let (answered, body) = rpc::read_response(stream)
                .await
                .map_err(|e| ControllerError::Unavailable(e.to_string()))?;
            if answered != correlation_id {
                return Err(ControllerError::Unavailable("response out of order".into()));
            }
            match serde_json::from_slice::<RpcResponse>(&body) {
                Ok(RpcResponse::Controller(result)) => Ok(result),
                Ok(RpcResponse::Refused(why)) => Err(ControllerError::Unavailable(why)),
                Ok(other) => Err(ControllerError::Unavailable(format!(
                    "unexpected response {other:?}"
                ))),
                Err(e) => Err(ControllerError::Unavailable(e.to_string())),
            }
        })
        .await
        .unwrap_or_else(|_| {
            Err(ControllerError::Unavailable(format!(
                "controller {target} did not answer in time"
            )))
        });
        if result.is_err() {
            *guard = None;
        }
        result
    }
}
