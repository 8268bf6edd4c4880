//! A view of Kafka's v2 record batch header, read and patched in place.
//!
//! # Layout (magic v2, all integers big-endian)
//!
//! | offset | size | field                  | notes                                        |
//! |-------:|-----:|------------------------|----------------------------------------------|
//! |      0 |    8 | base_offset            | assigned by the broker on append             |
//! |      8 |    4 | batch_length           | bytes after this field (whole size − 12)     |
//! |     12 |    4 | partition_leader_epoch | set by the broker; not covered by the CRC    |
//! |     16 |    1 | magic                  | 2 (0 and 1 are the legacy message formats)   |
//! |     17 |    4 | crc                    | CRC-32C (Castagnoli) of bytes 21..end        |
//! |     21 |    2 | attributes             | bits 0-2 codec, 3 timestamp type, 4 transactional, 5 control, 6 delete horizon |
//! |     23 |    4 | last_offset_delta      |                                              |
//! |     27 |    8 | base_timestamp         |                                              |
//! |     35 |    8 | max_timestamp          | log-append time when attribute bit 3 is set  |
//! |     43 |    8 | producer_id            | −1 when not idempotent                       |
//! |     51 |    2 | producer_epoch         |                                              |
//! |     53 |    4 | base_sequence          |                                              |
//! |     57 |    4 | records_count          |                                              |
//! |     61 |    … | records                | compressed as a whole when the codec is set  |
//!
//! The magic byte sits at offset 16 in every message format, so a legacy
//! (v0/v1) message set is recognised from the same 17 bytes.
//!
//! A broker never re-encodes a batch: it checks the header and the CRC, then
//! rewrites `base_offset` and `partition_leader_epoch` (outside the CRC) and,
//! for topics with `message.timestamp.type=LogAppendTime`, the timestamp type
//! bit and `max_timestamp`, recomputing the CRC.

use kafka_protocol::records::{Compression, TimestampType};
use thiserror::Error;

/// Bytes of `base_offset` and `batch_length`, in front of every batch.
pub const LOG_OVERHEAD_BYTES: usize = 12;
/// Bytes of a whole v2 batch header, up to the first record.
pub const BATCH_HEADER_BYTES: usize = 61;
/// The only message format Strom stores.
pub const MAGIC_V2: i8 = 2;

const PARTITION_LEADER_EPOCH_OFFSET: usize = 12;
const MAGIC_OFFSET: usize = 16;
const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;
const MAX_TIMESTAMP_OFFSET: usize = 35;

const COMPRESSION_CODEC_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;

/// Why bytes are not a usable record batch.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BatchError {
    /// Fewer bytes than the header or the declared length needs.
    #[error("record batch truncated: {available} bytes where {needed} are needed")]
    Truncated {
        /// Bytes the batch needs.
        needed: usize,
        /// Bytes present.
        available: usize,
    },
    /// `batch_length` is smaller than a header or negative.
    #[error("record batch length {0} is invalid")]
    InvalidLength(i32),
    /// A legacy (or unknown) message format.
    #[error("record batch magic {0} is not supported (only magic v2)")]
    UnsupportedMagic(i8),
    /// The CRC32C does not match the bytes.
    #[error("record batch CRC32C mismatch: header {expected:#010x}, computed {computed:#010x}")]
    CrcMismatch {
        /// CRC in the header.
        expected: u32,
        /// CRC of the bytes.
        computed: u32,
    },
    /// Compression codec id 5, 6 or 7.
    #[error("unknown compression codec id {0}")]
    UnknownCompression(i16),
    /// The records inside the batch do not match its header or are malformed.
    #[error("invalid record: {0}")]
    InvalidRecord(String),
}

/// The decoded fixed-size header of a v2 record batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Bytes after the `batch_length` field.
    pub batch_length: i32,
    /// Leader epoch of the leader that appended the batch.
    pub partition_leader_epoch: i32,
    /// Message format version (always 2 once parsed).
    pub magic: i8,
    /// CRC-32C of bytes 21..end.
    pub crc: u32,
    /// Codec, timestamp type, transactional and control bits.
    pub attributes: i16,
    /// Offset of the last record relative to `base_offset`.
    pub last_offset_delta: i32,
    /// Timestamp of the first record.
    pub base_timestamp: i64,
    /// Largest record timestamp, or the log-append time.
    pub max_timestamp: i64,
    /// Idempotent producer id, −1 when none.
    pub producer_id: i64,
    /// Producer epoch.
    pub producer_epoch: i16,
    /// Sequence number of the first record.
    pub base_sequence: i32,
    /// Number of records.
    pub records_count: i32,
}

/// The `N` bytes at `at`, or zeros when out of bounds (callers check the
/// length first; this keeps a mistake from panicking).
fn bytes_at<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    b.get(at..at + N)
        .and_then(|s| s.try_into().ok())
        .unwrap_or([0; N])
}
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes(bytes_at(b, at))
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(bytes_at(b, at))
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(bytes_at(b, at))
}

impl BatchHeader {
    /// Parses the header at the start of `buf`. Only the header must be
    /// present; the rest of the batch may still be missing.
    pub fn parse(buf: &[u8]) -> Result<Self, BatchError> {
        let Some(&magic) = buf.get(MAGIC_OFFSET) else {
            return Err(BatchError::Truncated {
                needed: BATCH_HEADER_BYTES,
                available: buf.len(),
            });
        };
        let magic = magic as i8;
        if magic != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic(magic));
        }
        if buf.len() < BATCH_HEADER_BYTES {
            return Err(BatchError::Truncated {
                needed: BATCH_HEADER_BYTES,
                available: buf.len(),
            });
        }
        let batch_length = be_i32(buf, 8);
        if batch_length < (BATCH_HEADER_BYTES - LOG_OVERHEAD_BYTES) as i32 {
            return Err(BatchError::InvalidLength(batch_length));
        }
        Ok(Self {
            base_offset: be_i64(buf, 0),
            batch_length,
            partition_leader_epoch: be_i32(buf, PARTITION_LEADER_EPOCH_OFFSET),
            magic,
            crc: be_i32(buf, CRC_OFFSET) as u32,
            attributes: be_i16(buf, ATTRIBUTES_OFFSET),
            last_offset_delta: be_i32(buf, 23),
            base_timestamp: be_i64(buf, 27),
            max_timestamp: be_i64(buf, MAX_TIMESTAMP_OFFSET),
            producer_id: be_i64(buf, 43),
            producer_epoch: be_i16(buf, 51),
            base_sequence: be_i32(buf, 53),
            records_count: be_i32(buf, 57),
        })
    }

    /// Whole size of the batch in bytes, including offset and length fields.
    pub fn size_bytes(&self) -> usize {
        self.batch_length as usize + LOG_OVERHEAD_BYTES
    }

    /// Offset of the last record.
    pub fn last_offset(&self) -> i64 {
        // Saturating: a corrupt header read from disk must not overflow.
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }

    /// Offset after the last record: the log end offset once this batch is
    /// the last one.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }

    /// The compression codec.
    pub fn compression(&self) -> Result<Compression, BatchError> {
        match self.attributes & COMPRESSION_CODEC_MASK {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            other => Err(BatchError::UnknownCompression(other)),
        }
    }

    /// Whether `max_timestamp` is a log-append time.
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppend
        } else {
            TimestampType::Creation
        }
    }

    /// Whether the batch belongs to a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    /// Whether the batch holds control records (transaction markers).
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }
}

/// CRC-32C of a whole batch's covered bytes (21..end). `batch` must be
/// exactly one batch.
pub fn compute_crc(batch: &[u8]) -> u32 {
    batch.get(ATTRIBUTES_OFFSET..).map_or(0, crc32c::crc32c)
}

/// Parses the batch at the start of `buf`, checks that all of it is present
/// and that its CRC matches. Returns the header; the batch is
/// `&buf[..header.size_bytes()]`.
pub fn check_batch(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(buf)?;
    let size = header.size_bytes();
    let batch = buf.get(..size).ok_or(BatchError::Truncated {
        needed: size,
        available: buf.len(),
    })?;
    let computed = compute_crc(batch);
    if computed != header.crc {
        return Err(BatchError::CrcMismatch {
            expected: header.crc,
            computed,
        });
    }
    Ok(header)
}

/// The records part of a whole batch (after the 61-byte header).
pub fn records_payload(batch: &[u8]) -> &[u8] {
    batch.get(BATCH_HEADER_BYTES..).unwrap_or(&[])
}

fn put(batch: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(dst) = batch.get_mut(at..at + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

/// Rewrites the base offset in place (not covered by the CRC).
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    put(batch, 0, &base_offset.to_be_bytes());
}

/// Rewrites the partition leader epoch in place (not covered by the CRC).
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    put(batch, PARTITION_LEADER_EPOCH_OFFSET, &epoch.to_be_bytes());
}

/// Marks the batch as log-append time stamped at `timestamp_ms` and
/// recomputes its CRC. `batch` must be exactly one whole batch.
pub fn set_log_append_time(batch: &mut [u8], timestamp_ms: i64) {
    let Ok(header) = BatchHeader::parse(batch) else {
        return;
    };
    let attributes = header.attributes | TIMESTAMP_TYPE_BIT;
    put(batch, ATTRIBUTES_OFFSET, &attributes.to_be_bytes());
    put(batch, MAX_TIMESTAMP_OFFSET, &timestamp_ms.to_be_bytes());
    let crc = compute_crc(batch);
    put(batch, CRC_OFFSET, &crc.to_be_bytes());
}

/// Rewrites `max_timestamp` of a CreateTime batch and recomputes its CRC.
/// `batch` must be exactly one whole batch.
pub fn set_max_timestamp(batch: &mut [u8], timestamp_ms: i64) {
    put(batch, MAX_TIMESTAMP_OFFSET, &timestamp_ms.to_be_bytes());
    let crc = compute_crc(batch);
    put(batch, CRC_OFFSET, &crc.to_be_bytes());
}

/// Iterates over consecutive batches in a buffer, yielding each batch's
/// position and header. Stops with an error at the first batch that is
/// partial or malformed; CRCs are not checked (use [`check_batch`]).
pub struct BatchIter<'a> {
    buf: &'a [u8],
    position: usize,
    failed: bool,
}

impl<'a> BatchIter<'a> {
    /// Starts at the beginning of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self {
            buf,
            position: 0,
            failed: false,
        }
    }

    /// Position of the next batch (after iteration: bytes fully consumed).
    pub fn position(&self) -> usize {
        self.position
    }
}

impl Iterator for BatchIter<'_> {
    type Item = Result<(usize, BatchHeader), BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.position >= self.buf.len() {
            return None;
        }
        let rest = self.buf.get(self.position..).unwrap_or(&[]);
        let header = match BatchHeader::parse(rest) {
            Ok(h) if h.size_bytes() <= rest.len() => h,
            Ok(h) => {
                self.failed = true;
                return Some(Err(BatchError::Truncated {
                    needed: h.size_bytes(),
                    available: rest.len(),
                }));
            }
            Err(e) => {
                self.failed = true;
                return Some(Err(e));
            }
        };
        let at = self.position;
        self.position += header.size_bytes();
        Some(Ok((at, header)))
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
pub(crate) mod tests {
    use super::*;
    use crate::varint::{write_varint, write_varlong};

    /// Builds an uncompressed v2 batch of `values` by hand, the way a
    /// producer would.
    pub(crate) fn build_batch(base_timestamp: i64, values: &[&[u8]]) -> Vec<u8> {
        let mut records = Vec::new();
        for (i, v) in values.iter().enumerate() {
            let mut body = vec![0u8]; // attributes
            write_varlong(&mut body, i as i64); // timestamp delta
            write_varint(&mut body, i as i32); // offset delta
            write_varint(&mut body, -1); // null key
            write_varint(&mut body, v.len() as i32);
            body.extend_from_slice(v);
            write_varint(&mut body, 0); // headers
            write_varint(&mut records, body.len() as i32);
            records.extend_from_slice(&body);
        }
        let mut b = Vec::new();
        b.extend_from_slice(&0i64.to_be_bytes());
        b.extend_from_slice(&((49 + records.len()) as i32).to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.push(2);
        b.extend_from_slice(&[0; 4]);
        b.extend_from_slice(&0i16.to_be_bytes());
        b.extend_from_slice(&((values.len() as i32) - 1).to_be_bytes());
        b.extend_from_slice(&base_timestamp.to_be_bytes());
        b.extend_from_slice(&(base_timestamp + values.len() as i64 - 1).to_be_bytes());
        b.extend_from_slice(&(-1i64).to_be_bytes());
        b.extend_from_slice(&(-1i16).to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.extend_from_slice(&(values.len() as i32).to_be_bytes());
        b.extend_from_slice(&records);
        let crc = compute_crc(&b);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    #[test]
    fn parse_check_and_patch() {
        let mut b = build_batch(1000, &[b"a", b"bb", b"ccc"]);
        let h = check_batch(&b).unwrap();
        assert_eq!(h.records_count, 3);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.size_bytes(), b.len());
        assert_eq!(h.compression().unwrap(), Compression::None);
        set_base_offset(&mut b, 42);
        set_partition_leader_epoch(&mut b, 7);
        let h = check_batch(&b).unwrap();
        assert_eq!(
            (h.base_offset, h.last_offset(), h.next_offset()),
            (42, 44, 45)
        );
        assert_eq!(h.partition_leader_epoch, 7);
        set_log_append_time(&mut b, 5555);
        let h = check_batch(&b).unwrap();
        assert_eq!(h.max_timestamp, 5555);
        assert_eq!(h.timestamp_type(), TimestampType::LogAppend);
    }

    #[test]
    fn corruption_is_detected() {
        let b = build_batch(1000, &[b"hello"]);
        for i in 21..b.len() {
            let mut c = b.clone();
            c[i] ^= 0x01;
            assert!(
                matches!(check_batch(&c), Err(BatchError::CrcMismatch { .. })),
                "bit flip at {i} not caught"
            );
        }
        for len in 0..b.len() {
            assert!(
                check_batch(&b[..len]).is_err(),
                "truncation at {len} not caught"
            );
        }
        let mut legacy = b.clone();
        legacy[16] = 1;
        assert_eq!(check_batch(&legacy), Err(BatchError::UnsupportedMagic(1)));
    }

    #[test]
    fn iterator_walks_batches_and_stops_at_a_torn_tail() {
        let a = build_batch(1, &[b"x"]);
        let b = build_batch(2, &[b"y", b"z"]);
        let mut buf = a.clone();
        buf.extend_from_slice(&b);
        let positions: Vec<usize> = BatchIter::new(&buf).map(|r| r.unwrap().0).collect();
        assert_eq!(positions, vec![0, a.len()]);
        buf.truncate(buf.len() - 3);
        let results: Vec<_> = BatchIter::new(&buf).collect();
        assert_eq!(results.len(), 2);
        assert!(results[0].is_ok());
        assert!(matches!(results[1], Err(BatchError::Truncated { .. })));
    }
}
