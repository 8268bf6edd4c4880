//! One client connection: frames in, responses out, in order.
//!
//! Requests on a connection are handled one after another, as Kafka does,
//! so a client's pipelined produce requests are appended in the order it
//! sent them. A frame larger than `socket.request.max.bytes` is refused
//! from its size prefix, before any room is reserved for it. A frame within
//! it takes its whole size from the broker-wide request budget
//! (`queued.max.requests`, `queued.max.request.bytes`;
//! [`crate::request_budget`]) before a byte of its body is read, waiting,
//! not reading, while the budget has no room; only then is room reserved
//! (all of it against a bytes budget, else as bytes arrive), and the
//! buffer's pages fill only as bytes arrive. Nothing past the end of
//! the frame is read until it has been handled, so pipelined requests wait
//! in the kernel's buffers (TCP flow control), as Kafka mutes a connection
//! while it serves a request. A malformed frame, an unknown API or an
//! unsupported version closes this connection only, with a log line.
//!
//! Idleness (`connections.max.idle.ms`) is measured per connection, not per
//! read. The connection is closed when, for that long, no complete request
//! has arrived and no response has been written, whatever trickle of bytes
//! arrives: a client that sends one byte a minute, or a frame's size prefix
//! and nothing more, is closed when the time runs out. The idle clock
//! starts when the connection opens and restarts when a frame is complete,
//! when its handling ends and when responses are written; it does not run
//! while a request is being handled (a fetch's long poll, an acks=all
//! produce waiting for the in-sync replicas, a group join), nor while the
//! connection waits for the broker-wide request budget: that wait is the
//! broker's (other clients hold the budget), not this client's idleness,
//! so the time spent waiting is added back to the clock, and the client
//! has its whole allowance to send the body once room is given. Kafka's
//! `Selector` expires by last socket activity of any kind (a single byte
//! read counts; a muted channel's clock runs on), so there a trickle keeps a
//! connection open and a long request may be expired; Strom's stricter rule
//! is what a broker needs against slow clients. Responses the client does
//! not read for `connections.max.idle.ms` close the connection too: each
//! connection is its own task, so a peer that stops reading holds only its
//! own task, never another connection's. Fetched records in unwritten
//! responses hold room in the fetch response budget until written, and a
//! connection holding it without reading may be closed sooner
//! ([`crate::fetch_memory`]). Buffers that grew past 64 KiB are freed once
//! the client has sent nothing for a second.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};
use parking_lot::Mutex;
use strom_protocol::frame::{split_frame, FrameStatus, FRAME_SIZE_PREFIX_BYTES};
use strom_protocol::header::{
    decode_request_header, encode_response_frame, HeaderError, RequestPreamble,
};
use strom_protocol::ErrorCode;
use strom_runtime::shutdown;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tracing::Instrument;

use crate::context::RequestContext;
use crate::fetch_memory::HeldUntilWritten;
use crate::registry::Reply;
use crate::request_budget::RequestPermit;
use crate::session::{Admission, Session};
use crate::state::BrokerState;

/// Most bytes read from the socket at once.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Responses are written once this many bytes are waiting.
const WRITE_FLUSH_BYTES: usize = 1 << 20;
/// Read and write buffers that grew past this for a large frame or
/// response are kept while the client keeps sending (no page faults for
/// each new 1 MB produce or fetch), and freed once it has sent nothing for
/// [`BUFFER_RELEASE_AFTER`]: ten thousand idle connections that each once
/// sent a 1 MB request would otherwise hold 10 GB.
const RETAINED_BUFFER_BYTES: usize = 64 * 1024;
/// How long a connection waits for its next request before its large
/// buffers are freed.
const BUFFER_RELEASE_AFTER: Duration = Duration::from_secs(1);

/// What handling one frame led to.
enum Outcome {
    Continue,
    Close,
}

/// Serves one connection until the peer closes it, it misbehaves, it idles
/// past `connections.max.idle.ms`, or the broker shuts down.
pub async fn serve_connection<R, W>(
    mut reader: R,
    mut writer: W,
    peer: SocketAddr,
    state: Arc<BrokerState>,
    listener_name: Arc<str>,
    session: Arc<Session>,
    mut shutdown: watch::Receiver<bool>,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let _open = state.metrics.connection_opened(&listener_name);
    let max_frame_bytes = state.config.socket_request_max_bytes;
    let idle = Duration::from_millis(state.config.connections_max_idle_ms.max(1));
    // When the idle clock last restarted (see the module documentation).
    let mut last_activity = Instant::now();
    let out = ConnectionLabels {
        peer,
        listener_name: &listener_name,
        state: &state,
    };
    let mut rbuf = BytesMut::new();
    let mut wbuf = BytesMut::new();
    // Whether rbuf's allocation grew past RETAINED_BUFFER_BYTES.
    let mut large_rbuf = false;
    // The fetch response room the responses in `wbuf` hold until written.
    let registration = state.response_holders.register(peer);
    let held = registration.held();
    // The request budget held for the frame in `rbuf`, taken once its size
    // is known and before its body is read.
    let mut permit: Option<RequestPermit> = None;
    loop {
        let needed = loop {
            match split_frame(&mut rbuf, max_frame_bytes) {
                Ok(FrameStatus::Frame(frame)) => {
                    // Responses holding fetch response room go out before
                    // the next request runs: it may park (a long poll, an
                    // acks=all wait) and the room must not wait with it.
                    if held.held_bytes() > 0
                        && !wbuf.is_empty()
                        && !write_out(&mut writer, &mut wbuf, held, idle, &out).await
                    {
                        return;
                    }
                    // The frame shares rbuf's allocation, which rbuf keeps
                    // for the next frame, unless the request parks: then a
                    // large one is let go (see `ParkRelease`).
                    let large = frame.len() > RETAINED_BUFFER_BYTES && rbuf.is_empty();
                    large_rbuf |= large;
                    let release = ParkRelease {
                        permit: permit.take(),
                        read_buffer: large
                            .then(|| Arc::new(Mutex::new(Some(std::mem::take(&mut rbuf))))),
                    };
                    let spare = release.read_buffer.clone();
                    let scope = RequestScope {
                        state: &state,
                        peer,
                        listener_name: &listener_name,
                        held,
                        session: &session,
                    };
                    let handled = handle_frame(&scope, frame.freeze(), &mut wbuf, release);
                    let outcome = handled.await;
                    if let Some(spare) = spare {
                        match spare.lock().take() {
                            Some(kept) => rbuf = kept,
                            None => large_rbuf = false,
                        }
                    }
                    // A request being handled is never idle.
                    last_activity = Instant::now();
                    // A failed SASL exchange is answered, then closed.
                    let outcome = match outcome {
                        Outcome::Continue if session.must_close() => Outcome::Close,
                        other => other,
                    };
                    match outcome {
                        Outcome::Continue => {}
                        Outcome::Close => {
                            let _ = write_out(&mut writer, &mut wbuf, held, idle, &out).await;
                            return;
                        }
                    }
                    if wbuf.len() >= WRITE_FLUSH_BYTES {
                        if !write_out(&mut writer, &mut wbuf, held, idle, &out).await {
                            return;
                        }
                        last_activity = Instant::now();
                    }
                }
                Ok(FrameStatus::NeedBytes(n)) => break n,
                Err(e) => {
                    // A TLS record header (handshake, TLS 1.x) read as a
                    // frame size: a client configured for SSL.
                    if rbuf.starts_with(&[0x16, 0x03]) {
                        tracing::warn!(%peer, listener = %listener_name, "closing connection: a TLS handshake on a PLAINTEXT listener (the client is configured for SSL)");
                    } else {
                        tracing::warn!(%peer, error = %e, "closing connection: bad frame");
                    }
                    return;
                }
            }
        };
        if !wbuf.is_empty() {
            if !write_out(&mut writer, &mut wbuf, held, idle, &out).await {
                return;
            }
            last_activity = Instant::now();
        }
        if *shutdown.borrow() {
            return;
        }
        let missing = needed.saturating_sub(rbuf.len()).max(1);
        if rbuf.len() >= FRAME_SIZE_PREFIX_BYTES && permit.is_none() {
            // The frame's size is known and checked: its room in the budget
            // first, waiting here, not reading, while there is none.
            let frame_bytes = u64::try_from(needed).unwrap_or(u64::MAX);
            let waiting_since = Instant::now();
            tokio::select! {
                _ = shutdown::signalled(&mut shutdown) => return,
                taken = state.request_budget.acquire(frame_bytes, peer) => permit = Some(taken),
            }
            // Waiting for others to give room back is not idleness.
            last_activity = (last_activity + waiting_since.elapsed()).min(Instant::now());
        }
        // Against a bytes budget, the frame's whole room at once (the budget
        // bounds the sum; one allocation, no regrowth, no freed pieces left
        // in the allocator). Without one, room grows with the bytes that
        // arrive, so claimed sizes alone commit no memory.
        if state.request_budget.limits().max_bytes.is_some() {
            rbuf.reserve(missing);
        } else {
            rbuf.reserve(missing.min(READ_CHUNK_BYTES));
        }
        // Never past the end of this frame (or its size prefix).
        let mut frame_reader = (&mut reader).take(missing.min(READ_CHUNK_BYTES) as u64);
        let idle_deadline = tokio::time::Instant::from_std(last_activity + idle);
        // Between requests (nothing of the next frame yet, every response
        // written), large buffers are freed after a pause.
        let may_release = (large_rbuf || wbuf.capacity() > RETAINED_BUFFER_BYTES)
            && rbuf.is_empty()
            && wbuf.is_empty();
        let mut release = false;
        tokio::select! {
            _ = shutdown::signalled(&mut shutdown) => return,
            _ = tokio::time::sleep(BUFFER_RELEASE_AFTER), if may_release => release = true,
            read = tokio::time::timeout_at(idle_deadline, frame_reader.read_buf(&mut rbuf)) => match read {
                Ok(Ok(0)) => return,
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "connection read failed");
                    return;
                }
                Err(_) => {
                    state.metrics.connection_idle_closed(&listener_name);
                    if rbuf.is_empty() {
                        tracing::debug!(%peer, connections_max_idle_ms = state.config.connections_max_idle_ms, "closing idle connection: connections.max.idle.ms passed without a request");
                    } else {
                        // Part of a frame, and not the rest in time: a
                        // slow (or slowloris) client.
                        tracing::info!(%peer, connections_max_idle_ms = state.config.connections_max_idle_ms, partial_frame_bytes = rbuf.len(), "closing connection: connections.max.idle.ms passed without a complete request");
                    }
                    return;
                }
            },
        }
        if release && rbuf.is_empty() {
            rbuf = BytesMut::new();
            wbuf = BytesMut::new();
            large_rbuf = false;
        }
    }
}

/// What a connection lets go of when the request it is handling parks
/// (waits on other clients): the frame's share of the request budget, and a
/// large frame's read buffer, which the connection otherwise keeps for its
/// next frame. With the buffer gone, what the parked request still holds of
/// its frame is only what its handler kept (a produce keeps nothing once
/// appended), so a thousand acks=all produces waiting for their replicas
/// do not hold a thousand frames.
struct ParkRelease {
    permit: Option<RequestPermit>,
    read_buffer: Option<Arc<Mutex<Option<BytesMut>>>>,
}

/// What every request of a connection is handled with.
#[derive(Clone, Copy)]
struct RequestScope<'a> {
    state: &'a Arc<BrokerState>,
    peer: SocketAddr,
    listener_name: &'a Arc<str>,
    held: &'a HeldUntilWritten,
    session: &'a Arc<Session>,
}

/// A bare SASL token after a v0 SaslHandshake (Kafka's pre-KIP-152 flow):
/// answered with a bare frame (PLAIN's is empty) on success; a failure
/// closes the connection, as Kafka does.
fn raw_sasl_token(
    scope: &RequestScope<'_>,
    mechanism: strom_config::sasl::SaslMechanism,
    token: &[u8],
    out: &mut BytesMut,
) -> Outcome {
    let Some(authenticator) = scope.session.authenticator() else {
        return Outcome::Close;
    };
    match authenticator.authenticate(mechanism, token) {
        Ok(principal) => {
            tracing::info!(peer = %scope.peer, listener = %scope.listener_name, %principal, mechanism = mechanism.name(), "client authenticated (SaslHandshake v0)");
            scope
                .session
                .set_state(crate::session::SaslState::Authenticated {
                    principal,
                    mechanism: Some(mechanism),
                    expires_at: None,
                });
            out.extend_from_slice(&0i32.to_be_bytes());
            Outcome::Continue
        }
        Err(failure) => {
            tracing::info!(peer = %scope.peer, listener = %scope.listener_name, mechanism = mechanism.name(), reason = %failure.detail, "closing connection: SASL authentication failed");
            Outcome::Close
        }
    }
}

/// Who a connection's log lines and metrics are about.
struct ConnectionLabels<'a> {
    peer: SocketAddr,
    listener_name: &'a str,
    state: &'a BrokerState,
}

/// Writes the pending responses and gives back the fetch response room
/// they held; false when the connection is broken, the client stopped
/// reading for `connections.max.idle.ms`, or the connection was evicted for
/// holding room without reading ([`crate::fetch_memory`]).
async fn write_out<W: AsyncWrite + Unpin>(
    writer: &mut W,
    wbuf: &mut BytesMut,
    held: &HeldUntilWritten,
    idle: Duration,
    labels: &ConnectionLabels<'_>,
) -> bool {
    let deadline = tokio::time::Instant::now() + idle;
    let mut written = 0;
    held.write_started();
    let done = loop {
        let rest = wbuf.get(written..).unwrap_or_default();
        // Everything written: flushed (TLS may hold the last records).
        let flushing = rest.is_empty();
        let step = async {
            if flushing {
                writer.flush().await.map(|()| 0)
            } else {
                writer.write(rest).await
            }
        };
        tokio::select! {
            w = tokio::time::timeout_at(deadline, step) => match w {
                Ok(Ok(0)) if flushing => break true,
                Ok(Ok(0)) | Ok(Err(_)) => break false,
                Ok(Ok(n)) => {
                    written += n;
                    held.progressed();
                }
                Err(_) => {
                    labels
                        .state
                        .metrics
                        .connection_idle_closed(labels.listener_name);
                    tracing::info!(
                        peer = %labels.peer,
                        connections_max_idle_ms = labels.state.config.connections_max_idle_ms,
                        unwritten_bytes = rest.len(),
                        "closing connection: the client did not read its responses for connections.max.idle.ms"
                    );
                    break false;
                }
            },
            // Logged and counted by the reclaimer.
            _ = held.evicted() => break false,
        }
    };
    held.write_ended();
    if !done {
        return false;
    }
    wbuf.clear();
    held.release();
    true
}

/// Handles one request frame, appending any response to `out`. The
/// frame's share of the request budget is given back when its handling
/// ends, or as soon as it waits on other clients
/// (`strom_runtime::parking::parked`).
async fn handle_frame(
    scope: &RequestScope<'_>,
    frame: Bytes,
    out: &mut BytesMut,
    release: ParkRelease,
) -> Outcome {
    let give_back = Box::new(move || {
        let ParkRelease {
            permit,
            read_buffer,
        } = release;
        drop(permit);
        if let Some(b) = read_buffer {
            drop(b.lock().take());
        }
    });
    strom_runtime::parking::with_park_hook(give_back, handle_request(scope, frame, out)).await
}

/// Decodes one request frame's header, dispatches it and encodes the reply.
async fn handle_request(scope: &RequestScope<'_>, mut frame: Bytes, out: &mut BytesMut) -> Outcome {
    let RequestScope {
        state,
        peer,
        listener_name,
        held,
        session,
    } = *scope;
    // After a v0 SaslHandshake the frame is the client's bare token.
    if let Some(mechanism) = session.raw_token_mechanism() {
        return raw_sasl_token(scope, mechanism, &frame, out);
    }
    let Some(preamble) = RequestPreamble::peek(&frame) else {
        tracing::warn!(%peer, "closing connection: request shorter than its header");
        return Outcome::Close;
    };
    let (api, header) = match decode_request_header(&mut frame) {
        Ok(h) => h,
        Err(HeaderError::UnknownApiKey(key)) => {
            tracing::warn!(%peer, api_key = key, correlation_id = preamble.correlation_id, "closing connection: unknown api key");
            return Outcome::Close;
        }
        Err(e) => {
            tracing::warn!(%peer, api_key = preamble.api_key, api_version = preamble.api_version, correlation_id = preamble.correlation_id, error = %e, "closing connection: malformed request header");
            return Outcome::Close;
        }
    };
    if let Admission::Refuse(reason) = session.admits(api, Instant::now()) {
        tracing::warn!(%peer, listener = %listener_name, api = ?api, correlation_id = preamble.correlation_id, "closing connection: {reason}");
        return Outcome::Close;
    }
    let version = header.request_api_version;
    let correlation_id = header.correlation_id;
    let client_id: Option<Arc<str>> = header.client_id.as_deref().map(Arc::from);
    // The header's strings share the frame's memory: gone before the
    // request runs, so a request parked on others holds only what its
    // handler keeps.
    drop(header);
    let span = tracing::debug_span!(
        "request",
        api = ?api,
        api_version = version,
        correlation_id,
        client_id = client_id.as_deref().unwrap_or(""),
        %peer
    );
    async {
        // KIP-511: an ApiVersions version this broker does not know is
        // answered in the v0 format with UNSUPPORTED_VERSION and the
        // versions of ApiVersions it does know, so the client can retry.
        if api == ApiKey::ApiVersions {
            if let Some(range) = state.registry.advertised_range(ApiKey::ApiVersions as i16) {
                if version > range.max {
                    let response = ApiVersionsResponse::default()
                        .with_error_code(ErrorCode::UnsupportedVersion.code())
                        .with_api_keys(vec![ApiVersion::default()
                            .with_api_key(ApiKey::ApiVersions as i16)
                            .with_min_version(range.min)
                            .with_max_version(range.max)]);
                    tracing::debug!("unsupported ApiVersions version: answering in v0 (KIP-511)");
                    return match encode_response_frame(out, api, 0, correlation_id, &response) {
                        Ok(()) => Outcome::Continue,
                        Err(e) => {
                            tracing::error!(error = %e, "cannot encode response");
                            Outcome::Close
                        }
                    };
                }
            }
        }
        let ctx = RequestContext {
            broker: Arc::clone(state),
            api_version: version,
            correlation_id,
            client_id,
            peer,
            listener_name: Arc::clone(listener_name),
            held_until_written: held.clone(),
            session: Arc::clone(session),
        };
        let started = Instant::now();
        let reply = state.registry.dispatch(api, ctx, frame).await;
        let outcome = match reply {
            Ok(Reply::Respond(response)) => {
                match response.encode_frame(out, api, version, correlation_id) {
                    Ok(()) => Outcome::Continue,
                    Err(e) => {
                        tracing::error!(error = %e, "closing connection: cannot encode response");
                        Outcome::Close
                    }
                }
            }
            Ok(Reply::Silent) => Outcome::Continue,
            Ok(Reply::Close(reason)) => {
                tracing::info!(reason, "closing connection as the request asks");
                Outcome::Close
            }
            Err(e) => {
                tracing::warn!(error = %e, "closing connection");
                Outcome::Close
            }
        };
        let elapsed = started.elapsed();
        state
            .metrics
            .observe_request(api, version, elapsed.as_secs_f64());
        tracing::debug!(elapsed_us = elapsed.as_micros() as u64, "request handled");
        outcome
    }
    .instrument(span)
    .await
}
