//! Sending operations to the active controller: a broker (or a controller
//! that is not the leader) forwards each [`ControllerOp`] over the
//! controller RPC and relays the answer, as KRaft brokers forward admin
//! requests. Each request takes an idle connection to its target (or
//! opens one) and gives it back after a whole answer, so requests run side
//! by side and one that hangs (a paused controller) holds up no other; a
//! connection whose request failed or was abandoned is closed.

use std::collections::BTreeMap;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::net::TcpStream;

use crate::error::ControllerError;
use crate::ops::{ControllerOp, ControllerOpResult};
use crate::raft_types::ControllerNode;
use crate::rpc::{self, RpcEnvelope, RpcRequest, RpcResponse};

/// How long connecting to a controller may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Idle connections kept per controller.
const MAX_IDLE_CONNECTIONS_PER_CONTROLLER: usize = 4;

/// A channel to whichever controller leads.
#[derive(Debug)]
pub struct ControllerChannel {
    cluster_id: String,
    node_id: u64,
    voters: BTreeMap<u64, ControllerNode>,
    local_address: Option<std::net::IpAddr>,
    /// Idle connections by controller, each with its last correlation id.
    idle: Mutex<BTreeMap<u64, Vec<(TcpStream, i32)>>>,
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
            idle: Mutex::new(BTreeMap::new()),
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
        let pooled = self.idle.lock().get_mut(&target).and_then(Vec::pop);
        let answer = tokio::time::timeout(timeout, async {
            let (mut stream, mut correlation) = match pooled {
                Some(idle) => idle,
                None => (
                    rpc::connect(&node.address(), self.local_address, CONNECT_TIMEOUT)
                        .await
                        .map_err(|e| {
                            ControllerError::Unavailable(format!("controller {target}: {e}"))
                        })?,
                    0,
                ),
            };
            correlation = correlation.wrapping_add(1);
            let envelope = RpcEnvelope {
                cluster_id: self.cluster_id.clone(),
                from: self.node_id,
                request: RpcRequest::Controller(op),
            };
            let body = serde_json::to_vec(&envelope)
                .map_err(|e| ControllerError::Unavailable(e.to_string()))?;
            rpc::write_request(&mut stream, correlation, &body)
                .await
                .map_err(|e| ControllerError::Unavailable(e.to_string()))?;
            let (answered, body) = rpc::read_response(&mut stream)
                .await
                .map_err(|e| ControllerError::Unavailable(e.to_string()))?;
            if answered != correlation {
                return Err(ControllerError::Unavailable("response out of order".into()));
            }
            let result = match serde_json::from_slice::<RpcResponse>(&body) {
                Ok(RpcResponse::Controller(result)) => Ok(result),
                Ok(RpcResponse::Refused(why)) => Err(ControllerError::Unavailable(why)),
                Ok(other) => Err(ControllerError::Unavailable(format!(
                    "unexpected response {other:?}"
                ))),
                Err(e) => Err(ControllerError::Unavailable(e.to_string())),
            };
            // A whole answer was read: the connection can carry another.
            let mut idle = self.idle.lock();
            let pool = idle.entry(target).or_default();
            if pool.len() < MAX_IDLE_CONNECTIONS_PER_CONTROLLER {
                pool.push((stream, correlation));
            }
            result
        })
        .await;
        let result = answer.unwrap_or_else(|_| {
            Err(ControllerError::Unavailable(format!(
                "controller {target} did not answer in time"
            )))
        });
        result
    }
}
