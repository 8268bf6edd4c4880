//! Accepting client connections on one listener, up to `max.connections`
//! across the broker, until shutdown.

use std::sync::Arc;

use strom_replication::shutdown_signalled;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::connection::serve_connection;
use crate::state::BrokerState;

/// Accepts connections until `shutdown` fires, then waits for the open
/// connections to finish their current request.
pub async fn run_listener(
    listener: TcpListener,
    name: Arc<str>,
    state: Arc<BrokerState>,
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
                    apply_socket_buffers(&stream, &state);
                    let (state, name, shutdown) = (Arc::clone(&state), Arc::clone(&name), connection_shutdown.clone());
                    connections.spawn(async move {
                        serve_connection(stream, peer, state, name, shutdown).await;
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
