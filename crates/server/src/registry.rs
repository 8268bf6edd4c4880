//! The handler registry: which Kafka APIs this broker serves, at which
//! versions, and the dispatch of a decoded request header to its handler.
//!
//! Each handler (one file per API in `handlers/`) implements [`Handler`],
//! declaring its API key and version range. ApiVersions responses are built
//! from this registry, so the broker advertises exactly what it serves.

use std::collections::BTreeMap;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Decodable, Encodable, VersionRange};
use strom_protocol::header::{encode_response_frame, EncodeError};

use crate::context::RequestContext;

/// What a handler answers.
pub enum Reply<R> {
    /// Send this response.
    Respond(R),
    /// Send nothing (acks=0 produce that succeeded).
    Silent,
    /// Close the connection (acks=0 produce that failed, as Kafka does).
    Close(String),
}

/// One Kafka API.
pub trait Handler: Send + Sync + 'static {
    /// Request message (encodable and with a default too, so the fuzz
    /// targets can make a seed of every served version).
    type Request: Decodable + Encodable + Default + Send + 'static;
    /// Response message.
    type Response: Encodable + Send + 'static;
    /// The API.
    const API_KEY: ApiKey;
    /// Versions this handler serves.
    const VERSIONS: VersionRange;
    /// Lowest version advertised in ApiVersions. Lower than
    /// `VERSIONS.min` only where Kafka 4 does the same for old clients'
    /// feature detection; a request at such a version closes the connection.
    const ADVERTISED_MIN_VERSION: i16 = Self::VERSIONS.min;

    /// Calls `count` with each error code in `response` (top-level and per
    /// partition, group or topic), for `strom_request_errors_total`.
    fn error_codes(_response: &Self::Response, _count: &mut dyn FnMut(i16)) {}

    /// Handles one request.
    fn handle(
        ctx: RequestContext,
        request: Self::Request,
    ) -> impl Future<Output = Reply<Self::Response>> + Send;
}

/// Calls `count` with the error code of each partition of each topic: the
/// walk most responses' [`Handler::error_codes`] share, whatever the types.
pub fn count_partition_errors<T, P>(
    topics: &[T],
    partitions: impl Fn(&T) -> &[P],
    error_code: impl Fn(&P) -> i16,
    count: &mut dyn FnMut(i16),
) {
    topics
        .iter()
        .flat_map(partitions)
        .for_each(|p| count(error_code(p)));
}

/// A response ready to be framed.
pub trait AnyResponse: Send {
    /// Appends the response frame to `out`.
    fn encode_frame(
        &self,
        out: &mut BytesMut,
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
    ) -> Result<(), EncodeError>;
}

impl<M: Encodable + Send> AnyResponse for M {
    fn encode_frame(
        &self,
        out: &mut BytesMut,
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
    ) -> Result<(), EncodeError> {
        encode_response_frame(out, api_key, version, correlation_id, self)
    }
}

/// Why a request could not be handled; the connection is closed.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// An API key this broker does not serve.
    #[error("unsupported api key {0}")]
    UnsupportedApi(i16),
    /// A version outside the served range.
    #[error("unsupported version {version} of {api:?} (supported {min}..={max})")]
    UnsupportedVersion {
        /// API.
        api: ApiKey,
        /// Version asked for.
        version: i16,
        /// Lowest served.
        min: i16,
        /// Highest served.
        max: i16,
    },
    /// The request body does not decode.
    #[error("malformed {api:?} v{version} request: {reason}")]
    Malformed {
        /// API.
        api: ApiKey,
        /// Version.
        version: i16,
        /// Decoder message.
        reason: String,
    },
}

type BoxedReply =
    Pin<Box<dyn Future<Output = Result<Reply<Box<dyn AnyResponse>>, DispatchError>> + Send>>;

trait ErasedHandler: Send + Sync {
    fn versions(&self) -> VersionRange;
    fn advertised_min(&self) -> i16;
    fn call(&self, ctx: RequestContext, body: Bytes) -> BoxedReply;
    fn decode_only(&self, version: i16, body: Bytes) -> Result<(), DispatchError>;
    fn encode_default(&self, version: i16) -> Option<Bytes>;
}

fn decode_request<H: Handler>(version: i16, mut body: Bytes) -> Result<H::Request, DispatchError> {
    H::Request::decode(&mut body, version).map_err(|e| DispatchError::Malformed {
        api: H::API_KEY,
        version,
        reason: e.to_string(),
    })
}

struct Adapter<H>(PhantomData<fn() -> H>);

impl<H: Handler> ErasedHandler for Adapter<H> {
    fn versions(&self) -> VersionRange {
        H::VERSIONS
    }

    fn advertised_min(&self) -> i16 {
        H::ADVERTISED_MIN_VERSION
    }

    fn decode_only(&self, version: i16, body: Bytes) -> Result<(), DispatchError> {
        decode_request::<H>(version, body).map(drop)
    }

    fn encode_default(&self, version: i16) -> Option<Bytes> {
        let mut out = BytesMut::new();
        H::Request::default().encode(&mut out, version).ok()?;
        Some(out.freeze())
    }

    fn call(&self, ctx: RequestContext, body: Bytes) -> BoxedReply {
        Box::pin(async move {
            let version = ctx.api_version;
            let request = decode_request::<H>(version, body)?;
            let metrics = Arc::clone(&ctx.broker.metrics);
            Ok(match H::handle(ctx, request).await {
                Reply::Respond(r) => {
                    H::error_codes(&r, &mut |code| metrics.count_error(H::API_KEY, code));
                    Reply::Respond(Box::new(r) as Box<dyn AnyResponse>)
                }
                Reply::Silent => Reply::Silent,
                Reply::Close(reason) => Reply::Close(reason),
            })
        })
    }
}

/// The APIs this broker serves. An API may have several handlers covering
/// adjacent version ranges (current schemas, and Kafka 3.9's for versions
/// Kafka 4 removed).
pub struct HandlerRegistry {
    handlers: BTreeMap<i16, Vec<Box<dyn ErasedHandler>>>,
}

impl std::fmt::Debug for HandlerRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.ranges().into_iter().map(|(k, a, s, m)| (k, (a, s, m))))
            .finish()
    }
}

impl HandlerRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self {
            handlers: BTreeMap::new(),
        }
    }

    /// Adds a handler. Handlers of one API must cover adjacent, distinct
    /// version ranges.
    pub fn register<H: Handler>(&mut self) -> &mut Self {
        let list = self.handlers.entry(H::API_KEY as i16).or_default();
        list.push(Box::new(Adapter::<H>(PhantomData)));
        list.sort_by_key(|h| h.versions().min);
        self
    }

    /// `(api key, advertised min, served min, max)` of every API, by key.
    pub fn ranges(&self) -> Vec<(i16, i16, i16, i16)> {
        self.handlers
            .iter()
            .filter_map(|(k, list)| {
                let advertised = list.iter().map(|h| h.advertised_min()).min()?;
                let served = list.iter().map(|h| h.versions().min).min()?;
                let max = list.iter().map(|h| h.versions().max).max()?;
                Some((*k, advertised, served, max))
            })
            .collect()
    }

    /// `(api key, advertised min, max)` of every API served, by key.
    pub fn advertised(&self) -> Vec<(i16, i16, i16)> {
        self.ranges()
            .into_iter()
            .map(|(k, a, _, m)| (k, a, m))
            .collect()
    }

    /// The advertised range of one API.
    pub fn advertised_range(&self, api_key: i16) -> Option<VersionRange> {
        self.ranges()
            .into_iter()
            .find(|(k, ..)| *k == api_key)
            .map(|(_, min, _, max)| VersionRange { min, max })
    }

    /// The handler serving `version` of `api`.
    fn handler_for(&self, api: ApiKey, version: i16) -> Result<&dyn ErasedHandler, DispatchError> {
        let list = self
            .handlers
            .get(&(api as i16))
            .ok_or(DispatchError::UnsupportedApi(api as i16))?;
        list.iter()
            .find(|h| {
                let v = h.versions();
                v.min <= version && version <= v.max
            })
            .map(|h| h.as_ref())
            .ok_or_else(|| DispatchError::UnsupportedVersion {
                api,
                version,
                min: list.iter().map(|h| h.versions().min).min().unwrap_or(0),
                max: list.iter().map(|h| h.versions().max).max().unwrap_or(0),
            })
    }

    /// Runs the handler for `api`.
    pub async fn dispatch(
        &self,
        api: ApiKey,
        ctx: RequestContext,
        body: Bytes,
    ) -> Result<Reply<Box<dyn AnyResponse>>, DispatchError> {
        self.handler_for(api, ctx.api_version)?
            .call(ctx, body)
            .await
    }

    /// Decodes a request body as [`Self::dispatch`] would, without handling
    /// it (the fuzz targets' way in).
    pub fn decode_only(&self, api: ApiKey, version: i16, body: Bytes) -> Result<(), DispatchError> {
        self.handler_for(api, version)?.decode_only(version, body)
    }

    /// `(api key, version, body)` of a default request at every served
    /// version, encoded: seeds for fuzzing the decoders.
    pub fn default_requests(&self) -> Vec<(i16, i16, Bytes)> {
        self.handlers
            .iter()
            .flat_map(|(key, list)| {
                list.iter().flat_map(move |h| {
                    let v = h.versions();
                    (v.min..=v.max).filter_map(move |version| {
                        Some((*key, version, h.encode_default(version)?))
                    })
                })
            })
            .collect()
    }
}

impl Default for HandlerRegistry {
    fn default() -> Self {
        Self::new()
    }
}
