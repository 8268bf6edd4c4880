//! Accepting client connections on one listener until shutdown, within the
//! broker's connection quotas ([`crate::connection_quotas`]:
//! `max.connection.creation.rate` delays the accept; `max.connections` and
//! `max.connections.per.ip` close the new socket at once). These listeners
//! speak only Kafka: quorum RPC lives on the controller listeners of voters.
//!
//! On a listener of security protocol SSL each connection first completes
//! a TLS handshake (within [`TLS_HANDSHAKE_TIMEOUT`], with the listener's
//! current certificates: see `strom_security::tls`); a handshake that
//! fails (a PLAINTEXT client, a client certificate the trust store does
//! not vouch for, no common protocol or suite) closes the connection with
//! a log line giving rustls' reason. On a SASL listener each connection
//! must then authenticate before anything but ApiVersions and the SASL
//! requests runs (`crate::session`).

use std::sync::Arc;
use std::time::Duration;

use strom_runtime::shutdown;
use strom_security::{SaslAuthenticator, TlsListener};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::connection::serve_connection;
use crate::connection_quotas::ConnectionQuotas;
use crate::session::Session;
use crate::state::BrokerState;

/// What a listener serves connections with once the broker is up; `None`
/// while it is still starting.
pub type ServingState = watch::Receiver<Option<Arc<BrokerState>>>;

/// Longest a client may take to complete its TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts connections until `shutdown` fires, then waits for the open
/// connections to finish their current request. Connections accepted
/// while the broker is still starting wait for it.
pub async fn run_listener(
    listener: TcpListener,
    name: Arc<str>,
    tls: Option<Arc<TlsListener>>,
    sasl: Option<Arc<SaslAuthenticator>>,
    state: ServingState,
    quotas: Arc<ConnectionQuotas>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    let connection_shutdown = shutdown.clone();
    loop {
        tokio::select! {
            _ = shutdown::signalled(&mut shutdown) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    // Kafka's order: the creation rate first (holding this
                    // socket, accepting no other), then the counts.
                    tokio::select! {
                        _ = shutdown::signalled(&mut shutdown) => break,
                        () = quotas.throttle_creation(&name, peer) => {}
                    }
                    let Ok(permit) = quotas.try_open(peer, &name) else {
                        // Logged and counted by the quotas; closed here.
                        drop(stream);
                        continue;
                    };
                    let (mut state, name, mut shutdown) = (state.clone(), Arc::clone(&name), connection_shutdown.clone());
                    let tls = tls.clone();
                    let session = match &sasl {
                        Some(a) => Session::sasl(Arc::clone(a)),
                        None => Session::unauthenticated(),
                    };
                    connections.spawn(async move {
                        let ready = tokio::select! {
                            ready = state.wait_for(Option::is_some) => ready.ok().and_then(|s| s.clone()),
                            _ = shutdown::signalled(&mut shutdown) => None,
                        };
                        if let Some(state) = ready {
                            apply_socket_buffers(&stream, &state);
                            match tls {
                                None => {
                                    let (reader, writer) = stream.into_split();
                                    serve_connection(reader, writer, peer, state, name, session, shutdown).await;
                                }
                                Some(tls) => {
                                    let handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.acceptor().accept(stream));
                                    let accepted = tokio::select! {
                                        _ = shutdown::signalled(&mut shutdown) => None,
                                        done = handshake => match done {
                                            Ok(Ok(stream)) => Some(stream),
                                            Ok(Err(e)) => {
                                                tracing::info!(%peer, listener = %name, error = %e, "closing connection: TLS handshake failed (a PLAINTEXT client on an SSL listener, or a certificate not trusted?)");
                                                None
                                            }
                                            Err(_) => {
                                                tracing::info!(%peer, listener = %name, timeout_ms = TLS_HANDSHAKE_TIMEOUT.as_millis() as u64, "closing connection: no TLS handshake in time");
                                                None
                                            }
                                        },
                                    };
                                    if let Some(stream) = accepted {
                                        // On SSL, a client certificate makes the principal;
                                        // on SASL_SSL, the SASL login does.
                                        let principal = tls.principal_of(stream.get_ref().1.peer_certificates());
                                        let session = match (principal, session.authenticator()) {
                                            (Some(principal), None) => {
                                                tracing::info!(%peer, listener = %name, %principal, "client authenticated by its certificate");
                                                Session::certificate(principal)
                                            }
                                            _ => session,
                                        };
                                        let (reader, writer) = tokio::io::split(stream);
                                        serve_connection(reader, writer, peer, state, name, session, shutdown).await;
                                    }
                                }
                            }
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

fn apply_socket_buffers(stream: &tokio::net::TcpStream, state: &BrokerState) {
    let _ = stream.set_nodelay(true);
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
