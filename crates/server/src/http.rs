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
//!
//! It comes up first when the node starts, so probes are answered (not
//! ready) while the logs are recovered and the quorum forms, and goes down
//! last. Connections are limited in number and lifetime: a stuck scraper
//! cannot pile them up.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use strom_replication::shutdown_signalled;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::listener::ServingState;
use crate::metrics::BrokerMetrics;

/// HTTP connections served at once; more wait to be accepted.
const HTTP_CONNECTIONS_MAX: usize = 64;
/// The longest one HTTP connection may stay open.
const HTTP_CONNECTION_MAX_DURATION: Duration = Duration::from_secs(60);

/// What the endpoint serves from.
#[derive(Debug, Clone)]
pub struct HttpEndpoint {
    /// The node's metrics.
    pub metrics: Arc<BrokerMetrics>,
    /// The broker once it is up.
    pub serving: ServingState,
}

/// Serves HTTP on `listener` until `shutdown`.
pub async fn serve_http(
    listener: TcpListener,
    endpoint: HttpEndpoint,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(HTTP_CONNECTIONS_MAX));
    let mut connections = JoinSet::new();
    loop {
        let permit = tokio::select! {
            _ = shutdown_signalled(&mut shutdown) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            _ = shutdown_signalled(&mut shutdown) => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "HTTP accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let endpoint = endpoint.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let endpoint = endpoint.clone();
                async move { Ok::<_, Infallible>(respond(&endpoint, &request)) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            match tokio::time::timeout(HTTP_CONNECTION_MAX_DURATION, connection).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "HTTP connection failed"),
                Err(_) => tracing::debug!(%peer, "closing an HTTP connection open too long"),
            }
            drop(permit);
        });
    }
    connections.abort_all();
}

/// Answers one request.
fn respond(endpoint: &HttpEndpoint, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET is served\n".into(),
        );
    }
    let state = endpoint.serving.borrow().clone();
    match request.uri().path() {
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
