//! The HTTP endpoint on `http.listener` (default `127.0.0.1:9644`), for
//! Prometheus and Kubernetes:
//!
//! - `GET /metrics`: every metric in Prometheus' text format
//!   ([`crate::metrics`]).
//! - `GET /livez`: 200 while this process serves HTTP at all. It depends
//!   on nothing else (not on other pods, not on the quorum), so a liveness
//!   probe never restarts a healthy pod because a peer is down.
//! - `GET /readyz`: 200 when the node is ready for traffic, else 503; the
//!   body lists each check ([`crate::readiness`]).
//! - `POST /controlled-shutdown`: moves this broker's leadership to other
//!   in-sync replicas and keeps it fenced, answering 200 once the
//!   controller confirms (503 if it did not within a session timeout). The
//!   process keeps running until SIGTERM, and there is no way back: the
//!   broker stays fenced until it restarts. Only clients on the broker's own
//!   host may ask (the connection's two ends have one address: the same
//!   pod, or a loopback address to itself); others get 403. `strom controlled-shutdown` calls it, from the Helm
//!   chart's preStop hook.
//!
//! It comes up first when the node starts, so probes are answered (not
//! ready) while the logs are recovered and the quorum forms, and stops with
//! the other listeners once shutdown has moved leadership away.
//! Probes cannot be starved by other HTTP clients. Connections are limited
//! in number ([`HTTP_CONNECTIONS_MAX`]), in the time to send a request's
//! head ([`HTTP_HEADER_READ_TIMEOUT`], from the moment the connection opens
//! and again for each keep-alive request: a client that holds a connection
//! without a request, or sends its head a byte at a time, is dropped) and in
//! lifetime ([`HTTP_CONNECTION_MAX_DURATION`]). At the cap, a new connection
//! is not refused while some open connection is idle (no request being
//! answered): the oldest idle one is closed to make room, so clients that
//! hold connections open cannot keep a probe out even within the header
//! deadline; a probe's own connection is the newest, so it would be evicted
//! last. Only when every connection is busy answering is the new one closed
//! at once (instead of waiting in the backlog). Closures are counted in
//! `strom_http_connections_closed_total{reason}`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use parking_lot::Mutex;
use strom_runtime::shutdown;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;

use crate::listener::ServingState;
use crate::metrics::BrokerMetrics;

/// HTTP connections open at once; one more closes the oldest idle one, or
/// is closed itself when all are busy answering.
pub const HTTP_CONNECTIONS_MAX: usize = 64;
/// The longest one HTTP connection may stay open.
const HTTP_CONNECTION_MAX_DURATION: Duration = Duration::from_secs(60);
/// How long a client may take to send a request's head, counted from the
/// moment the connection opens (or the previous response, on keep-alive).
pub const HTTP_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after a failed accept (out of file descriptors), so the loop
/// does not spin.
const ACCEPT_RETRY_PAUSE: Duration = Duration::from_millis(10);

/// Where a controlled shutdown is asked for.
pub const CONTROLLED_SHUTDOWN_PATH: &str = "/controlled-shutdown";

/// What the endpoint serves from.
#[derive(Debug, Clone)]
pub struct HttpEndpoint {
    /// The node's metrics.
    pub metrics: Arc<BrokerMetrics>,
    /// The broker once it is up.
    pub serving: ServingState,
}

/// One open HTTP connection, as the cap sees it.
#[derive(Debug)]
struct OpenHttpConnection {
    /// A request is being answered.
    busy: Arc<AtomicBool>,
    /// Closes the connection.
    evict: oneshot::Sender<()>,
}

/// The open HTTP connections, oldest first (ids grow).
#[derive(Debug, Default)]
struct HttpConnections {
    next_id: u64,
    open: BTreeMap<u64, OpenHttpConnection>,
}

/// Takes a connection out of the table when its task ends.
struct Registered {
    table: Arc<Mutex<HttpConnections>>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.table.lock().open.remove(&self.id);
    }
}

/// Marks a connection busy while a request is answered.
struct Busy(Arc<AtomicBool>);

impl Busy {
    fn start(flag: &Arc<AtomicBool>) -> Self {
        flag.store(true, Ordering::Release);
        Self(Arc::clone(flag))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Makes room for one more connection: none needed below the cap, else the
/// oldest idle connection is closed. `None` when every connection is busy.
fn admit(
    table: &Arc<Mutex<HttpConnections>>,
    metrics: &BrokerMetrics,
    peer: SocketAddr,
) -> Option<(Registered, Arc<AtomicBool>, oneshot::Receiver<()>)> {
    let mut t = table.lock();
    if t.open.len() >= HTTP_CONNECTIONS_MAX {
        let idle = t
            .open
            .iter()
            .find(|(_, c)| !c.busy.load(Ordering::Acquire))
            .map(|(id, _)| *id);
        let Some(victim) = idle else {
            metrics.http_connection_closed("full");
            tracing::info!(%peer, "refusing an HTTP connection: {HTTP_CONNECTIONS_MAX} open (HTTP_CONNECTIONS_MAX), all answering");
            return None;
        };
        if let Some(evicted) = t.open.remove(&victim) {
            let _ = evicted.evict.send(());
        }
        metrics.http_connection_closed("evicted");
    }
    let id = t.next_id;
    t.next_id += 1;
    let busy = Arc::new(AtomicBool::new(false));
    let (evict, evicted) = oneshot::channel();
    t.open.insert(
        id,
        OpenHttpConnection {
            busy: Arc::clone(&busy),
            evict,
        },
    );
    Some((
        Registered {
            table: Arc::clone(table),
            id,
        },
        busy,
        evicted,
    ))
}

/// Serves HTTP on `listener` until `shutdown`.
pub async fn serve_http(
    listener: TcpListener,
    endpoint: HttpEndpoint,
    mut shutdown: watch::Receiver<bool>,
) {
    let table = Arc::new(Mutex::new(HttpConnections::default()));
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown::signalled(&mut shutdown) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "HTTP accept failed");
                tokio::time::sleep(ACCEPT_RETRY_PAUSE).await;
                continue;
            }
        };
        // At the cap the oldest idle connection makes room; with every
        // connection busy, refuse at once rather than queue, so a probe
        // retried a moment later gets through.
        let Some((registered, busy, mut evicted)) = admit(&table, &endpoint.metrics, peer) else {
            continue;
        };
        // Only this host (or pod) may ask for a controlled shutdown: a
        // connection from the host itself leaves from the address it
        // reaches (the pod IP in Kubernetes).
        let local = stream.local_addr().is_ok_and(|a| a.ip() == peer.ip());
        let endpoint = endpoint.clone();
        connections.spawn(async move {
            let metrics = Arc::clone(&endpoint.metrics);
            let service = hyper::service::service_fn(move |request| {
                let endpoint = endpoint.clone();
                let busy = Busy::start(&busy);
                async move {
                    let response = respond(&endpoint, &request, local).await;
                    drop(busy);
                    Ok::<_, Infallible>(response)
                }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HTTP_HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                served = tokio::time::timeout(HTTP_CONNECTION_MAX_DURATION, connection) => match served {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) if e.is_timeout() => {
                        metrics.http_connection_closed("header_timeout");
                        tracing::info!(%peer, timeout_ms = HTTP_HEADER_READ_TIMEOUT.as_millis() as u64, "closing an HTTP connection: no complete request head within HTTP_HEADER_READ_TIMEOUT");
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "HTTP connection failed"),
                    Err(_) => {
                        metrics.http_connection_closed("too_long");
                        tracing::info!(%peer, "closing an HTTP connection open longer than HTTP_CONNECTION_MAX_DURATION");
                    }
                },
                Ok(()) = &mut evicted => {
                    tracing::info!(%peer, "closing an idle HTTP connection to make room: {HTTP_CONNECTIONS_MAX} open (HTTP_CONNECTIONS_MAX)");
                }
            }
            drop(registered);
        });
    }
    connections.abort_all();
}

/// Answers one request.
async fn respond(
    endpoint: &HttpEndpoint,
    request: &Request<Incoming>,
    from_this_host: bool,
) -> Response<Full<Bytes>> {
    let state = endpoint.serving.borrow().clone();
    let path = request.uri().path();
    if path == CONTROLLED_SHUTDOWN_PATH {
        if request.method() != Method::POST {
            return text(StatusCode::METHOD_NOT_ALLOWED, "POST it\n".into());
        }
        if !from_this_host {
            return text(
                StatusCode::FORBIDDEN,
                "a controlled shutdown is asked for from the broker's own host\n".into(),
            );
        }
        let Some(state) = state else {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "the node is still starting\n".into(),
            );
        };
        tracing::info!("controlled shutdown asked for over HTTP");
        return if state.controlled_shutdown().await {
            text(
                StatusCode::OK,
                "leadership moved away; stop the process with SIGTERM\n".into(),
            )
        } else {
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                "the controller did not confirm the controlled shutdown\n".into(),
            )
        };
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET is served\n".into(),
        );
    }
    match path {
        "/metrics" => {
            let mut response = text(StatusCode::OK, endpoint.metrics.render(state.as_deref()));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        "/livez" => text(StatusCode::OK, "ok\n".into()),
        "/readyz" => {
            let readiness = crate::readiness::assess(state.as_deref());
            let status = if readiness.is_ready() {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            text(status, readiness.report())
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /metrics, /livez or /readyz\n".into(),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
