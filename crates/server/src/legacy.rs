//! Request and response versions that Kafka 3.9 still accepted but Kafka 4
//! removed (KIP-896): ListOffsets v0, CreateTopics v0–1, DeleteTopics v0 and
//! DescribeConfigs v0.
//!
//! The current message schemas (`kafka-protocol` 0.18) no longer describe
//! them, so these versions are decoded and encoded with Kafka 3.9's schemas
//! (`kafka-protocol` 0.15, imported as `kafka_protocol_v3`). [`V3`] wraps one
//! of those messages so it plugs into the same [`crate::registry::Handler`]
//! machinery; each legacy handler lives in its API's file and converts to
//! and from the current messages.

use bytes::{Bytes, BytesMut};
use kafka_protocol::protocol::buf::{ByteBuf, ByteBufMut};
use kafka_protocol::protocol::{Decodable, Encodable};

/// A message of Kafka 3.9's schemas, usable where the current traits are
/// expected.
#[derive(Debug, Clone, Default)]
pub struct V3<T>(pub T);

impl<T: kafka_protocol_v3::protocol::Decodable> Decodable for V3<T> {
    fn decode<B: ByteBuf>(buf: &mut B, version: i16) -> anyhow::Result<Self> {
        let mut bytes: Bytes = buf.copy_to_bytes(buf.remaining());
        let message = T::decode(&mut bytes, version)?;
        Ok(V3(message))
    }
}

impl<T: kafka_protocol_v3::protocol::Encodable> Encodable for V3<T> {
    fn encode<B: ByteBufMut>(&self, buf: &mut B, version: i16) -> anyhow::Result<()> {
        let mut out = BytesMut::new();
        self.0.encode(&mut out, version)?;
        buf.put_slice(&out);
        Ok(())
    }

    fn compute_size(&self, version: i16) -> anyhow::Result<usize> {
        self.0.compute_size(version)
    }
}
