//! A Kafka-protocol connection from this broker to another: what a
//! follower fetches from its leader with. Requests go one at a time; each
//! waits at most a timeout; a response frame larger than
//! [`MAX_RESPONSE_FRAME_BYTES`] is refused before anything is allocated
//! for it. Any error leaves the connection unusable (the caller drops it
//! and connects again).

use std::net::IpAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// The largest response frame accepted: a fetch response is bounded by
/// `replica.fetch.response.max.bytes`, except that it always carries at
/// least one whole batch (up to `message.max.bytes`), so this is generous.
pub const MAX_RESPONSE_FRAME_BYTES: usize = 128 << 20;

/// What went wrong on the connection.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting, writing or reading failed.
    #[error("connection to {address}: {source}")]
    Io {
        /// The broker.
        address: String,
        /// Why.
        source: std::io::Error,
    },
    /// No answer in time.
    #[error("no answer from {0} in time")]
    Timeout(String),
    /// The answer could not be read.
    #[error("bad response from {address}: {reason}")]
    Protocol {
        /// The broker.
        address: String,
        /// Why.
        reason: String,
    },
}

/// One connection to a broker.
#[derive(Debug)]
pub struct BrokerClient {
    address: String,
    stream: TcpStream,
    client_id: String,
    next_correlation_id: i32,
}

impl BrokerClient {
    /// Connects to `address`, from `local` when given, within `timeout`.
    pub async fn connect(
        address: &str,
        local: Option<IpAddr>,
        client_id: String,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let io = |source| ClientError::Io {
            address: address.to_string(),
            source,
        };
        let attempt = async {
            let target = tokio::net::lookup_host(address)
                .await?
                .next()
                .ok_or_else(|| std::io::Error::other(format!("no address for {address}")))?;
            let socket = if target.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            if let Some(ip) = local.filter(|ip| ip.is_ipv4() == target.is_ipv4()) {
                socket.bind(std::net::SocketAddr::new(ip, 0))?;
            }
            let stream = socket.connect(target).await?;
            stream.set_nodelay(true)?;
            Ok(stream)
        };
        let stream = tokio::time::timeout(timeout, attempt)
            .await
            .map_err(|_| ClientError::Timeout(address.to_string()))?
            .map_err(io)?;
        Ok(Self {
            address: address.to_string(),
            stream,
            client_id,
            next_correlation_id: 0,
        })
    }

    /// Sends `request` at `version` and waits at most `timeout` for its
    /// response.
    pub async fn send<R>(
        &mut self,
        version: i16,
        request: &R,
        timeout: Duration,
    ) -> Result<R::Response, ClientError>
    where
        R: Request + Encodable,
        R::Response: Decodable,
    {
        let api = ApiKey::try_from(R::KEY).map_err(|_| self.protocol("unknown api key"))?;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let correlation_id = self.next_correlation_id;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_string(self.client_id.clone())));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, api.request_header_version(version))
            .map_err(|e| self.protocol(&e.to_string()))?;
        request
            .encode(&mut body, version)
            .map_err(|e| self.protocol(&e.to_string()))?;
        let size = i32::try_from(body.len()).map_err(|_| self.protocol("request too large"))?;
        let exchange = async {
            self.stream.write_all(&size.to_be_bytes()).await?;
            self.stream.write_all(&body).await?;
            let declared = self.stream.read_i32().await?;
            let size = usize::try_from(declared)
                .ok()
                .filter(|s| *s <= MAX_RESPONSE_FRAME_BYTES)
                .ok_or_else(|| std::io::Error::other(format!("response of {declared} bytes")))?;
            let mut frame = vec![0u8; size];
            self.stream.read_exact(&mut frame).await?;
            Ok::<_, std::io::Error>(Bytes::from(frame))
        };
        let mut frame = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| ClientError::Timeout(self.address.clone()))?
            .map_err(|source| ClientError::Io {
                address: self.address.clone(),
                source,
            })?;
        let header = ResponseHeader::decode(&mut frame, api.response_header_version(version))
            .map_err(|e| self.protocol(&e.to_string()))?;
        if header.correlation_id != correlation_id {
            return Err(self.protocol("response out of order"));
        }
        R::Response::decode(&mut frame, version).map_err(|e| self.protocol(&e.to_string()))
    }

    fn protocol(&self, reason: &str) -> ClientError {
        ClientError::Protocol {
            address: self.address.clone(),
            reason: reason.to_string(),
        }
    }
}
