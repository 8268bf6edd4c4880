//! Request headers in, response frames out.
//!
//! A request frame starts with `api_key: int16, api_version: int16,
//! correlation_id: int32`; what follows (client id, tagged fields) depends on
//! the request header version that the API and its version call for. The
//! response frame is `size: int32`, the response header (correlation id, plus
//! tagged fields for flexible versions; ApiVersions always uses header v0),
//! then the body.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use thiserror::Error;

use crate::frame::FRAME_SIZE_PREFIX_BYTES;

/// The fixed first eight bytes of every request, readable even when the rest
/// of the header is not (used to log and to answer unknown requests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestPreamble {
    /// Kafka API key.
    pub api_key: i16,
    /// API version the client used.
    pub api_version: i16,
    /// Correlation id to echo in the response.
    pub correlation_id: i32,
}

impl RequestPreamble {
    /// Reads the preamble from the start of a frame body.
    pub fn peek(frame: &[u8]) -> Option<Self> {
        let b: [u8; 8] = frame.get(..8)?.try_into().ok()?;
        let [k0, k1, v0, v1, c0, c1, c2, c3] = b;
        Some(Self {
            api_key: i16::from_be_bytes([k0, k1]),
            api_version: i16::from_be_bytes([v0, v1]),
            correlation_id: i32::from_be_bytes([c0, c1, c2, c3]),
        })
    }
}

/// Why a request header could not be decoded.
#[derive(Debug, Error)]
pub enum HeaderError {
    /// The API key is not one Kafka defines.
    #[error("unknown api key {0}")]
    UnknownApiKey(i16),
    /// The header bytes do not parse.
    #[error("malformed request header: {0}")]
    Malformed(String),
}

/// Why a response could not be encoded.
#[derive(Debug, Error)]
#[error("cannot encode {api_key:?} v{api_version} response: {reason}")]
pub struct EncodeError {
    /// API whose response failed.
    pub api_key: ApiKey,
    /// Version it was encoded at.
    pub api_version: i16,
    /// What the encoder said.
    pub reason: String,
}

/// Decodes the request header at the front of `frame`, leaving `frame` at the
/// start of the request body.
pub fn decode_request_header(frame: &mut Bytes) -> Result<(ApiKey, RequestHeader), HeaderError> {
    let preamble = RequestPreamble::peek(frame)
        .ok_or_else(|| HeaderError::Malformed("frame shorter than 8 bytes".into()))?;
    let api_key = ApiKey::try_from(preamble.api_key)
        .map_err(|_| HeaderError::UnknownApiKey(preamble.api_key))?;
    let header_version = api_key.request_header_version(preamble.api_version);
    let header = RequestHeader::decode(frame, header_version)
        .map_err(|e| HeaderError::Malformed(e.to_string()))?;
    Ok((api_key, header))
}

/// Appends one whole response frame (size, header, body) to `out`. On error
/// nothing is appended.
pub fn encode_response_frame<M: Encodable>(
    out: &mut BytesMut,
    api_key: ApiKey,
    api_version: i16,
    correlation_id: i32,
    body: &M,
) -> Result<(), EncodeError> {
    let start = out.len();
    let result = encode_inner(out, api_key, api_version, correlation_id, body);
    if result.is_err() {
        out.truncate(start);
    }
    result.map_err(|e| EncodeError {
        api_key,
        api_version,
        reason: e,
    })
}

fn encode_inner<M: Encodable>(
    out: &mut BytesMut,
    api_key: ApiKey,
    api_version: i16,
    correlation_id: i32,
    body: &M,
) -> Result<(), String> {
    // The generated encoders report `anyhow` errors; only their text is kept.
    let header_version = api_key.response_header_version(api_version);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_bytes = header
        .compute_size(header_version)
        .map_err(|e| e.to_string())?;
    let body_bytes = body.compute_size(api_version).map_err(|e| e.to_string())?;
    let size = i32::try_from(header_bytes + body_bytes)
        .map_err(|_| format!("response of {} bytes", header_bytes + body_bytes))?;
    out.reserve(FRAME_SIZE_PREFIX_BYTES + header_bytes + body_bytes);
    out.extend_from_slice(&size.to_be_bytes());
    header
        .encode(out, header_version)
        .map_err(|e| e.to_string())?;
    body.encode(out, api_version).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiVersionsResponse, MetadataRequest};

    #[test]
    fn request_header_round_trip() {
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::Metadata as i16)
            .with_request_api_version(12)
            .with_correlation_id(7)
            .with_client_id(Some("c".into()));
        let mut buf = BytesMut::new();
        header.encode(&mut buf, 2).unwrap();
        MetadataRequest::default().encode(&mut buf, 12).unwrap();
        let mut frame = buf.freeze();
        let (key, decoded) = decode_request_header(&mut frame).unwrap();
        assert_eq!(key, ApiKey::Metadata);
        assert_eq!(decoded.correlation_id, 7);
        assert_eq!(decoded.client_id.as_deref(), Some("c"));
        assert!(MetadataRequest::decode(&mut frame, 12).is_ok());
    }

    #[test]
    fn unknown_api_key_and_short_frames_are_errors() {
        let mut frame = Bytes::from_static(&[0x7f, 0x00, 0, 0, 0, 0, 0, 1, 0, 0]);
        assert!(matches!(
            decode_request_header(&mut frame),
            Err(HeaderError::UnknownApiKey(0x7f00))
        ));
        let mut frame = Bytes::from_static(&[0, 3, 0]);
        assert!(matches!(
            decode_request_header(&mut frame),
            Err(HeaderError::Malformed(_))
        ));
    }

    #[test]
    fn api_versions_response_uses_header_v0() {
        let mut out = BytesMut::new();
        encode_response_frame(
            &mut out,
            ApiKey::ApiVersions,
            3,
            42,
            &ApiVersionsResponse::default(),
        )
        .unwrap();
        // size, correlation id, then the body starts with error_code: no tagged
        // header fields byte in between.
        assert_eq!(&out[4..8], &42i32.to_be_bytes());
        assert_eq!(&out[8..10], &[0, 0]);
        let size = i32::from_be_bytes([out[0], out[1], out[2], out[3]]) as usize;
        assert_eq!(size + 4, out.len());
    }
}
