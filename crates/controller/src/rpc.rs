//! The controller RPC: what controllers (and brokers) send each other over
//! the controller listener, and how it is framed.
//!
//! # Framing
//!
//! The framing starts like a Kafka request, so one listener could serve
//! both (a Kafka request's API key is never in Strom's range):
//!
//! ```text
//! request:  size int32 | api_key int16 (32100) | api_version int16 (0) | correlation_id int32 | body
//! response: size int32 | correlation_id int32 | body
//! ```
//!
//! `size` counts the bytes after it and is checked against
//! [`MAX_RPC_FRAME_BYTES`] before anything is allocated; the frame's buffer
//! then grows only as its bytes arrive, and a frame whose bytes stop coming
//! for [`FRAME_TIMEOUT`] is dropped with its connection (so is a write the
//! peer does not take within it). The body is a JSON
//! [`RpcRequest`] or [`RpcResponse`]. Every request names the sender's
//! cluster id; a node answers a request from another cluster with
//! [`RpcResponse::Refused`] and logs it, so two clusters never mix.
//! Requests on one connection are answered in order, one at a time.
//!
//! Quorum RPC is served only on the controller listeners of voters. A
//! broker that does not vote (an observer) connects out to each voter and
//! opens the connection with [`RpcRequest::ObserverLink`]; from then on the
//! roles turn: the voter sends requests (the leader's AppendEntries and
//! InstallSnapshot) and the observer answers them
//! ([`crate::observer_links`]). Nothing on a broker's own listeners speaks
//! this RPC.

use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::ops::{ControllerOp, ControllerOpResult};
use crate::quorum_election::{PreVoteRequest, PreVoteResponse};
use crate::raft_types::MetadataRaft;

/// The API key of controller RPCs (outside Kafka's range).
pub const RPC_API_KEY: i16 = 32100;

/// Largest frame accepted (a snapshot chunk encoded as JSON fits easily).
pub const MAX_RPC_FRAME_BYTES: usize = 64 << 20;

/// How long the rest of a frame may take once its size arrived, and how
/// long a peer may take to accept a frame written to it.
pub const FRAME_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A request and who sends it.
#[derive(Debug, Serialize, Deserialize)]
pub struct RpcEnvelope {
    /// The sender's cluster id.
    pub cluster_id: String,
    /// The sender's node id.
    pub from: u64,
    /// The request.
    pub request: RpcRequest,
}

/// A controller RPC request.
#[derive(Debug, Serialize, Deserialize)]
pub enum RpcRequest {
    /// Raft log replication (and heartbeats).
    AppendEntries(AppendEntriesRequest<MetadataRaft>),
    /// A candidate asks for a vote.
    Vote(VoteRequest<u64>),
    /// A voter asks whether it would get a vote, before calling an
    /// election.
    PreVote(PreVoteRequest),
    /// The leader, stopping, asks a voter to call an election at once.
    ElectNow,
    /// An observer (the envelope's sender) offers this connection to the
    /// voter for replicating the metadata log to it; answered with
    /// [`RpcResponse::ObserverLink`], after which the voter sends the
    /// requests on it.
    ObserverLink,
    /// A snapshot chunk.
    InstallSnapshot(InstallSnapshotRequest<MetadataRaft>),
    /// An operation for the active controller.
    Controller(ControllerOp),
}

/// A controller RPC response.
#[derive(Debug, Serialize, Deserialize)]
pub enum RpcResponse {
    /// To [`RpcRequest::AppendEntries`].
    AppendEntries(Result<AppendEntriesResponse<u64>, RaftError<u64>>),
    /// To [`RpcRequest::Vote`].
    Vote(Result<VoteResponse<u64>, RaftError<u64>>),
    /// To [`RpcRequest::PreVote`].
    PreVote(PreVoteResponse),
    /// To [`RpcRequest::ElectNow`]: whether the voter called an election.
    ElectNow(bool),
    /// To [`RpcRequest::ObserverLink`]: the voter took the connection.
    ObserverLink,
    /// To [`RpcRequest::InstallSnapshot`].
    InstallSnapshot(Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>),
    /// To [`RpcRequest::Controller`].
    Controller(ControllerOpResult),
    /// The request was not served (another cluster, a malformed body).
    Refused(String),
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The connection failed or closed.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// The frame is larger than [`MAX_RPC_FRAME_BYTES`] or malformed.
    #[error("bad frame: {0}")]
    Bad(String),
    /// The peer stopped sending a frame, or taking one, for
    /// [`FRAME_TIMEOUT`].
    #[error("the peer stalled mid-frame")]
    Stalled,
}

/// Opens a connection to `address` from `local` (a node's own address, so
/// traffic between nodes carries it and per-node network rules apply; any
/// address when `None`), giving up after `timeout`.
pub async fn connect(
    address: &str,
    local: Option<std::net::IpAddr>,
    timeout: std::time::Duration,
) -> std::io::Result<tokio::net::TcpStream> {
    let attempt = async {
        let target = tokio::net::lookup_host(address)
            .await?
            .next()
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("no address for {address}"),
                )
            })?;
        let socket = if target.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        if let Some(ip) = local.filter(|ip| ip.is_ipv4() == target.is_ipv4()) {
            socket.bind(std::net::SocketAddr::new(ip, 0))?;
        }
        let stream = socket.connect(target).await?;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or_else(|_| {
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("connecting to {address}"),
            ))
        })
}

/// Writes a request frame.
pub async fn write_request<W: AsyncWrite + Unpin>(
    w: &mut W,
    correlation_id: i32,
    body: &[u8],
) -> Result<(), FrameError> {
    let size = i32::try_from(body.len() + 8).map_err(|_| FrameError::Bad("too large".into()))?;
    let mut frame = Vec::with_capacity(body.len() + 12);
    frame.extend_from_slice(&size.to_be_bytes());
    frame.extend_from_slice(&RPC_API_KEY.to_be_bytes());
    frame.extend_from_slice(&0i16.to_be_bytes());
    frame.extend_from_slice(&correlation_id.to_be_bytes());
    frame.extend_from_slice(body);
    write_frame(w, &frame).await
}

/// Writes a whole frame, or fails when the peer does not take it within
/// [`FRAME_TIMEOUT`].
async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, frame: &[u8]) -> Result<(), FrameError> {
    tokio::time::timeout(FRAME_TIMEOUT, async {
        w.write_all(frame).await?;
        w.flush().await
    })
    .await
    .map_err(|_| FrameError::Stalled)??;
    Ok(())
}

/// Writes a response frame.
pub async fn write_response<W: AsyncWrite + Unpin>(
    w: &mut W,
    correlation_id: i32,
    body: &[u8],
) -> Result<(), FrameError> {
    let size = i32::try_from(body.len() + 4).map_err(|_| FrameError::Bad("too large".into()))?;
    let mut frame = Vec::with_capacity(body.len() + 8);
    frame.extend_from_slice(&size.to_be_bytes());
    frame.extend_from_slice(&correlation_id.to_be_bytes());
    frame.extend_from_slice(body);
    write_frame(w, &frame).await
}

async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    header_bytes: usize,
) -> Result<Vec<u8>, FrameError> {
    // Waiting for a frame to start has no bound (a quiet connection is
    // fine); once it started, the rest comes within FRAME_TIMEOUT.
    let mut size = [0u8; 4];
    r.read_exact(&mut size[..1]).await?;
    tokio::time::timeout(FRAME_TIMEOUT, async {
        r.read_exact(&mut size[1..]).await?;
        let size = i32::from_be_bytes(size);
        let size = usize::try_from(size).map_err(|_| FrameError::Bad(format!("size {size}")))?;
        if size > MAX_RPC_FRAME_BYTES || size < header_bytes {
            return Err(FrameError::Bad(format!("size {size}")));
        }
        // Grows as the bytes arrive, never to a size only claimed.
        let mut frame = Vec::new();
        (&mut *r).take(size as u64).read_to_end(&mut frame).await?;
        if frame.len() < size {
            return Err(FrameError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        Ok(frame)
    })
    .await
    .map_err(|_| FrameError::Stalled)?
}

/// `N` bytes of `frame` at `at` (the frame is at least as long as its
/// header, checked by [`read_frame`]).
fn bytes_at<const N: usize>(frame: &[u8], at: usize) -> Result<[u8; N], FrameError> {
    frame
        .get(at..at + N)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| FrameError::Bad("short header".into()))
}

/// Reads a request frame: (correlation id, body).
pub async fn read_request<R: AsyncRead + Unpin>(r: &mut R) -> Result<(i32, Vec<u8>), FrameError> {
    let mut frame = read_frame(r, 8).await?;
    let api_key = i16::from_be_bytes(bytes_at(&frame, 0)?);
    if api_key != RPC_API_KEY {
        return Err(FrameError::Bad(format!(
            "api key {api_key} is not a controller RPC"
        )));
    }
    let correlation_id = i32::from_be_bytes(bytes_at(&frame, 4)?);
    let body = frame.split_off(8);
    Ok((correlation_id, body))
}

/// Reads a response frame: (correlation id, body).
pub async fn read_response<R: AsyncRead + Unpin>(r: &mut R) -> Result<(i32, Vec<u8>), FrameError> {
    let mut frame = read_frame(r, 4).await?;
    let correlation_id = i32::from_be_bytes(bytes_at(&frame, 0)?);
    let body = frame.split_off(4);
    Ok((correlation_id, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_bad_frames_are_refused() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        write_request(&mut a, 7, b"{\"x\":1}").await.unwrap();
        assert_eq!(
            read_request(&mut b).await.unwrap(),
            (7, b"{\"x\":1}".to_vec())
        );
        write_response(&mut b, 7, b"ok").await.unwrap();
        assert_eq!(read_response(&mut a).await.unwrap(), (7, b"ok".to_vec()));

        // A Kafka request (another API key) is not a controller RPC.
        let mut kafka = 8i32.to_be_bytes().to_vec();
        kafka.extend_from_slice(&[0, 18, 0, 3, 0, 0, 0, 1]);
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        tokio::io::AsyncWriteExt::write_all(&mut a, &kafka)
            .await
            .unwrap();
        assert!(matches!(
            read_request(&mut b).await,
            Err(FrameError::Bad(_))
        ));

        // Sizes are checked before allocating.
        for size in [-1i32, 3, (MAX_RPC_FRAME_BYTES + 1) as i32] {
            let (mut a, mut b) = tokio::io::duplex(64);
            tokio::io::AsyncWriteExt::write_all(&mut a, &size.to_be_bytes())
                .await
                .unwrap();
            assert!(
                matches!(read_request(&mut b).await, Err(FrameError::Bad(_))),
                "{size}"
            );
        }
        // A frame cut short is a connection error, not a panic.
        let (mut a, mut b) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut a, &100i32.to_be_bytes())
            .await
            .unwrap();
        drop(a);
        assert!(matches!(read_request(&mut b).await, Err(FrameError::Io(_))));
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_stalls_mid_frame_is_dropped() {
        // The size arrived, then half the frame, then nothing.
        let (mut a, mut b) = tokio::io::duplex(64);
        let mut partial = 100i32.to_be_bytes().to_vec();
        partial.extend_from_slice(&[0; 50]);
        tokio::io::AsyncWriteExt::write_all(&mut a, &partial)
            .await
            .unwrap();
        let started = tokio::time::Instant::now();
        assert!(matches!(
            read_request(&mut b).await,
            Err(FrameError::Stalled)
        ));
        assert!(started.elapsed() >= FRAME_TIMEOUT);
        // Even the size itself cut short.
        let (mut a, mut b) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut a, &[0, 0])
            .await
            .unwrap();
        assert!(matches!(
            read_request(&mut b).await,
            Err(FrameError::Stalled)
        ));
        // A peer that takes nothing: the write gives up.
        let (mut a, _b) = tokio::io::duplex(16);
        assert!(matches!(
            write_request(&mut a, 1, &[0; 1024]).await,
            Err(FrameError::Stalled)
        ));
        drop(a);
    }
}
