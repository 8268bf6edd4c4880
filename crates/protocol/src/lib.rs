//! The Kafka wire protocol as pure data: no sockets, no files, no partitions.
//!
//! This crate sits at the very front and the very back of Strom's data flow
//! (see `docs/ARCHITECTURE.md`):
//!
//! * [`frame`] cuts size-prefixed frames out of a byte buffer and refuses a
//!   frame whose declared size exceeds `socket.request.max.bytes` before any
//!   memory is reserved for it.
//! * [`header`] decodes request headers (with the header version each API and
//!   version calls for) and encodes response frames.
//! * [`batch`] is a zero-copy view of a v2 record batch header with CRC32C
//!   checks and the in-place rewrites a broker performs (base offset,
//!   partition leader epoch, log-append time).
//! * [`records`] walks the records inside an uncompressed batch (or a
//!   decompressed payload) to validate them and to find timestamps.
//! * [`varint`] holds the zig-zag varint decoding those records use.
//!
//! Message structs come from the [`kafka_protocol`] crate, re-exported here so
//! every Strom crate uses the same version; Strom never hand-writes a struct
//! that crate has. Kafka error codes are [`ErrorCode`].

#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod batch;
pub mod batch_builder;
pub mod compression;
pub mod frame;
pub mod header;
pub mod records;
pub mod uuid_text;
pub mod varint;

pub use kafka_protocol;
/// Kafka's error codes, with their numeric values and retriability.
pub use kafka_protocol::error::ResponseError as ErrorCode;

/// The numeric code of an optional error: 0 when there is none.
pub fn error_code(error: Option<ErrorCode>) -> i16 {
    error.map_or(0, |e| e.code())
}
