//! Accepting client connections on one listener, up to `max.connections`
//! across the broker, until shutdown; on a broker-only node's inter-broker
//! listener, also the controllers' replication connections.

use std::sync::Arc;
use std::time::Duration;

use strom_controller::rpc_server::serve_rpc_stream;
use strom_controller::Controller;
use strom_replication::shutdown_signalled;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::connection::serve_connection;
use crate::state::BrokerState;

/// What a listener serves connections with once the broker is up; `None`
/// while it is still starting.
pub type ServingState = watch::Receiver<Option<Arc<BrokerState>>>;

/// Accepts connections until `shutdown` fires, then waits for the open
/// connections to finish their current request. Connections accepted
/// while the broker is still starting wait for it. With `controller_rpc`
/// (the inter-broker listener of a broker-only node), a connection whose
/// first request is a controller RPC is handed to the controller instead:
/// that is how the controllers replicate the metadata log to a node
/// without a controller listener, before it serves clients too.
pub async fn run_listener(
    listener: TcpListener,
    name: Arc<str>,
    state: ServingState,
    controller_rpc: Option<Arc<Controller>>,
    connection_slots: Arc<Semaphore>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    let connection_shutdown = shutdown.clone();
    loop {
        tokio::select! {
            _ = shutdown_signalled(&mut shutdown) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Ok(permit) = Arc::clone(&connection_slots).try_acquire_owned() else {
                        tracing::warn!(%peer, "refusing connection: max.connections reached");
                        drop(stream);
                        continue;
                    };
                    let (mut state, name, mut shutdown) = (state.clone(), Arc::clone(&name), connection_shutdown.clone());
                    let controller = controller_rpc.clone();
                    connections.spawn(async move {
                        if let Some(controller) = controller {
                            if starts_with_controller_rpc(&stream).await {
                                if let Err(e) = serve_rpc_stream(stream, controller, shutdown).await {
                                    tracing::debug!(%peer, error = %e, "controller RPC connection closed");
                                }
                                drop(permit);
                                return;
                            }
                        }
                        let ready = tokio::select! {
                            ready = state.wait_for(Option::is_some) => ready.ok().and_then(|s| s.clone()),
                            _ = shutdown_signalled(&mut shutdown) => None,
                        };
                        if let Some(state) = ready {
                            apply_socket_buffers(&stream, &state);
                            serve_connection(stream, peer, state, name, shutdown).await;
                        }
                        drop(permit);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            },
        }
    }
    while connections.join_next().await.is_some() {}
}

/// Bytes a request needs before its API key can be read: the size prefix
/// and the key.
const API_KEY_END: usize = 6;
/// How long a new connection may take to send its first request's header.
const FIRST_REQUEST_WAIT: Duration = Duration::from_secs(10);

/// Whether the first request on `stream` is a controller RPC, looking
/// without consuming anything.
async fn starts_with_controller_rpc(stream: &TcpStream) -> bool {
    let mut head = [0u8; API_KEY_END];
    let peeked = tokio::time::timeout(FIRST_REQUEST_WAIT, async {
        loop {
            match stream.peek(&mut head).await {
                Ok(n) if n >= API_KEY_END => return true,
                Ok(0) | Err(_) => return false,
                // Part of the header is here: wait for the rest.
                Ok(_) => tokio::time::sleep(Duration::from_millis(1)).await,
            }
        }
    })
    .await;
    matches!(peeked, Ok(true))
        && head.get(4..API_KEY_END) == Some(&strom_controller::rpc::RPC_API_KEY.to_be_bytes()[..])
}

fn apply_socket_buffers(stream: &tokio::net::TcpStream, state: &BrokerState) {
    let sock = socket_ref(stream);
    if state.config.socket_send_buffer_bytes > 0 {
        let _ = sock.set_send_buffer_size(state.config.socket_send_buffer_bytes as usize);
    }
    if state.config.socket_receive_buffer_bytes > 0 {
        let _ = sock.set_recv_buffer_size(state.config.socket_receive_buffer_bytes as usize);
    }
}

fn socket_ref(stream: &tokio::net::TcpStream) -> socket2::SockRef<'_> {
    socket2::SockRef::from(stream)
}
