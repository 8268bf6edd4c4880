//! Decompression of record batches as a stream with a hard bound on the
//! output, so a small batch that inflates to gigabytes (a decompression
//! bomb) costs a bounded amount of memory and time and is refused.
//!
//! Codecs, as Kafka producers write them:
//!
//! | id | codec  | format read here |
//! |---:|--------|------------------|
//! |  1 | gzip   | gzip members (RFC 1952), concatenated members allowed |
//! |  2 | snappy | xerial framing (`82 'SNAPPY' 00`, two int32 versions, then `int32 length + raw snappy block` repeated), or one raw snappy block |
//! |  3 | lz4    | LZ4 frames |
//! |  4 | zstd   | zstd frames, window at most 2^[`MAX_ZSTD_WINDOW_LOG`] bytes |
//!
//! [`for_each_record_summary`] walks the records of a batch holding no
//! record's key, value or headers at all (what validation and timestamp
//! lookups need: a few fields per record, read through a stream whose
//! buffer is [`RECORD_WALK_BUFFER_BYTES`]); [`for_each_record`] hands each
//! record's bytes to its visitor, one record at a time.

use std::io::{self, BufRead, BufReader, Read};

use kafka_protocol::records::Compression;

use crate::batch::{BatchError, BatchHeader};
use crate::records::{parse_record_body, RecordView};

/// Most bytes one batch may decompress to. Producers bound batches by
/// their uncompressed size (a few MB); this leaves room for extreme
/// compression ratios while refusing bombs.
pub const MAX_DECOMPRESSED_BATCH_BYTES: u64 = 256 << 20;
/// Largest zstd window (log2) accepted: frames asking for more are
/// refused instead of reserving the window.
pub const MAX_ZSTD_WINDOW_LOG: u32 = 25;

const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
const XERIAL_HEADER_BYTES: usize = 16;

fn invalid(what: impl Into<String>) -> BatchError {
    BatchError::InvalidRecord(what.into())
}

/// A reader that fails once more than `limit` bytes came out of `inner`.
struct Limited<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left = self.left.checked_sub(n as u64).ok_or_else(|| {
            io::Error::other(format!(
                "batch decompresses to more than {MAX_DECOMPRESSED_BATCH_BYTES} bytes"
            ))
        })?;
        Ok(n)
    }
}

/// Xerial-framed snappy, one block at a time, each block's declared size
/// checked against the remaining budget before it is allocated.
struct XerialSnappy<'a> {
    input: &'a [u8],
    block: Vec<u8>,
    pos: usize,
    left: u64,
}

impl Read for XerialSnappy<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.block.len() {
            if self.input.is_empty() {
                return Ok(0);
            }
            let len_bytes: [u8; 4] = self
                .input
                .get(..4)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| io::Error::other("truncated snappy block length"))?;
            let len = usize::try_from(i32::from_be_bytes(len_bytes))
                .map_err(|_| io::Error::other("negative snappy block length"))?;
            let compressed = self
                .input
                .get(4..4 + len)
                .ok_or_else(|| io::Error::other("truncated snappy block"))?;
            self.input = self.input.get(4 + len..).unwrap_or(&[]);
            self.block = snappy_block(compressed, &mut self.left)?;
            self.pos = 0;
        }
        let n = buf.len().min(self.block.len() - self.pos);
        buf.get_mut(..n)
            .zip(self.block.get(self.pos..self.pos + n))
            .map(|(dst, src)| dst.copy_from_slice(src))
            .ok_or_else(|| io::Error::other("snappy block bookkeeping"))?;
        self.pos += n;
        Ok(n)
    }
}

/// Decompresses one raw snappy block after checking its declared size.
fn snappy_block(compressed: &[u8], left: &mut u64) -> io::Result<Vec<u8>> {
    let len = snap::raw::decompress_len(compressed).map_err(io::Error::other)?;
    *left = left.checked_sub(len as u64).ok_or_else(|| {
        io::Error::other(format!(
            "batch decompresses to more than {MAX_DECOMPRESSED_BATCH_BYTES} bytes"
        ))
    })?;
    snap::raw::Decoder::new()
        .decompress_vec(compressed)
        .map_err(io::Error::other)
}

/// A reader of the batch's records, decompressed, bounded.
pub fn decompressing_reader<'a>(
    compression: Compression,
    payload: &'a [u8],
) -> Result<Box<dyn Read + 'a>, BatchError> {
    let limit = MAX_DECOMPRESSED_BATCH_BYTES;
    let reader: Box<dyn Read + 'a> = match compression {
        Compression::None => Box::new(payload),
        Compression::Gzip => Box::new(Limited {
            inner: flate2::read::MultiGzDecoder::new(payload),
            left: limit,
        }),
        Compression::Snappy => {
            if payload.starts_with(&XERIAL_MAGIC) {
                Box::new(XerialSnappy {
                    input: payload.get(XERIAL_HEADER_BYTES..).unwrap_or(&[]),
                    block: Vec::new(),
                    pos: 0,
                    left: limit,
                })
            } else {
                let mut left = limit;
                let block = snappy_block(payload, &mut left)
                    .map_err(|e| invalid(format!("snappy: {e}")))?;
                Box::new(io::Cursor::new(block))
            }
        }
        Compression::Lz4 => Box::new(Limited {
            inner: lz4::Decoder::new(payload).map_err(|e| invalid(format!("lz4: {e}")))?,
            left: limit,
        }),
        Compression::Zstd => {
            let mut decoder = zstd::stream::read::Decoder::with_buffer(payload)
                .map_err(|e| invalid(format!("zstd: {e}")))?;
            decoder
                .window_log_max(MAX_ZSTD_WINDOW_LOG)
                .map_err(|e| invalid(format!("zstd: {e}")))?;
            Box::new(Limited {
                inner: decoder,
                left: limit,
            })
        }
    };
    Ok(reader)
}

/// The buffer a record walk reads decompressed bytes through.
pub const RECORD_WALK_BUFFER_BYTES: usize = 8 << 10;

/// What a record walk learns of a record without holding its key, value or
/// headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordSummary {
    /// Offset relative to the batch's base offset.
    pub offset_delta: i32,
    /// Timestamp relative to the batch's base timestamp.
    pub timestamp_delta: i64,
    /// Whether the key is non-null.
    pub has_key: bool,
    /// Number of headers.
    pub header_count: i32,
}

/// Reads the unsigned base-128 integer of at most `max_bytes` bytes that
/// varints and varlongs share; `Ok(None)` at a clean end of the stream.
fn read_raw_varint_stream<R: BufRead>(
    r: &mut R,
    max_bytes: u32,
) -> Result<Option<u64>, BatchError> {
    let mut raw: u64 = 0;
    for i in 0..max_bytes {
        let byte = match r.fill_buf().map_err(|e| invalid(e.to_string()))?.first() {
            Some(b) => *b,
            None if i == 0 => return Ok(None),
            None => return Err(invalid("a varint runs past the end of the batch")),
        };
        r.consume(1);
        raw |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some(raw));
        }
    }
    Err(invalid("varint too long"))
}

/// Reads a zig-zag varlong from a stream, which must hold one.
fn read_varlong_stream<R: BufRead>(r: &mut R) -> Result<i64, BatchError> {
    let raw = read_raw_varint_stream(r, 10)?
        .ok_or_else(|| invalid("field runs past the end of the record"))?;
    Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
}

/// Reads a zig-zag varint from a stream, which must hold one.
fn read_field_varint<R: BufRead>(r: &mut R) -> Result<i32, BatchError> {
    read_varint_stream(r)?.ok_or_else(|| invalid("field runs past the end of the record"))
}

/// Reads a nullable length (−1 for null) and passes over that many bytes,
/// handing them to `chunk` a buffer at a time; whether it was non-null.
fn pass_nullable_bytes<R: BufRead>(
    r: &mut R,
    mut chunk: impl FnMut(&[u8]) -> Result<(), BatchError>,
) -> Result<bool, BatchError> {
    let len = read_field_varint(r)?;
    if len == -1 {
        return Ok(false);
    }
    let mut left = u64::try_from(len).map_err(|_| invalid(format!("negative length {len}")))?;
    while left > 0 {
        let available = r.fill_buf().map_err(|e| invalid(e.to_string()))?;
        if available.is_empty() {
            return Err(invalid("field runs past the end of the record"));
        }
        let n = available
            .len()
            .min(usize::try_from(left).unwrap_or(usize::MAX));
        chunk(available.get(..n).unwrap_or(&[]))?;
        r.consume(n);
        left -= n as u64;
    }
    Ok(true)
}

/// Checks UTF-8 across chunk boundaries: `carry` holds the start of a
/// character cut by the previous chunk.
fn check_utf8_chunk(carry: &mut Vec<u8>, chunk: &[u8]) -> Result<(), BatchError> {
    let not_utf8 = || invalid("header key is not UTF-8");
    let mut joined;
    let bytes = if carry.is_empty() {
        chunk
    } else {
        joined = std::mem::take(carry);
        joined.extend_from_slice(chunk);
        &joined[..]
    };
    match std::str::from_utf8(bytes) {
        Ok(_) => Ok(()),
        // A character cut at the end: its first bytes wait for the next.
        Err(e) if e.error_len().is_none() => {
            carry.extend_from_slice(bytes.get(e.valid_up_to()..).unwrap_or(&[]));
            Ok(())
        }
        Err(_) => Err(not_utf8()),
    }
}

/// Reads one record of `len` bytes from `r`, holding none of its key,
/// value or headers; the same checks as [`parse_record_body`].
fn summarize_record<R: BufRead>(r: &mut R, len: u64) -> Result<RecordSummary, BatchError> {
    let mut record = r.take(len);
    let mut attributes = [0u8; 1];
    record
        .read_exact(&mut attributes)
        .map_err(|_| invalid("field runs past the end of the record"))?;
    let timestamp_delta = read_varlong_stream(&mut record)?;
    let offset_delta = read_field_varint(&mut record)?;
    let has_key = pass_nullable_bytes(&mut record, |_| Ok(()))?;
    pass_nullable_bytes(&mut record, |_| Ok(()))?;
    let header_count = read_field_varint(&mut record)?;
    if header_count < 0 {
        return Err(invalid(format!("negative header count {header_count}")));
    }
    for _ in 0..header_count {
        let mut carry = Vec::new();
        let non_null = pass_nullable_bytes(&mut record, |c| check_utf8_chunk(&mut carry, c))?;
        if !non_null {
            return Err(invalid("null header key"));
        }
        if !carry.is_empty() {
            return Err(invalid("header key is not UTF-8"));
        }
        pass_nullable_bytes(&mut record, |_| Ok(()))?;
    }
    if record.limit() != 0 {
        return Err(invalid(format!(
            "record declares {len} bytes but its fields use {}",
            len - record.limit()
        )));
    }
    Ok(RecordSummary {
        offset_delta,
        timestamp_delta,
        has_key,
        header_count,
    })
}

/// Calls `visit` with each record's summary, decompressing as a bounded
/// stream through a buffer of [`RECORD_WALK_BUFFER_BYTES`] and holding no
/// record's bytes, however large. Stops at the first error, the
/// visitor's or the batch's.
pub fn for_each_record_summary<E: From<BatchError>>(
    batch: &[u8],
    header: &BatchHeader,
    mut visit: impl FnMut(&RecordSummary) -> Result<(), E>,
) -> Result<(), E> {
    let payload = batch
        .get(crate::batch::BATCH_HEADER_BYTES..header.size_bytes().min(batch.len()))
        .unwrap_or(&[]);
    let mut reader = BufReader::with_capacity(
        RECORD_WALK_BUFFER_BYTES,
        decompressing_reader(header.compression()?, payload)?,
    );
    while let Some(len) = read_varint_stream(&mut reader)? {
        let len =
            u64::try_from(len).map_err(|_| invalid(format!("negative record length {len}")))?;
        visit(&summarize_record(&mut reader, len)?)?;
    }
    Ok(())
}

/// Reads a zig-zag varint from a stream; `Ok(None)` at a clean end.
fn read_varint_stream<R: BufRead>(r: &mut R) -> Result<Option<i32>, BatchError> {
    Ok(read_raw_varint_stream(r, 5)?.map(|raw| {
        let raw = raw as u32;
        ((raw >> 1) as i32) ^ -((raw & 1) as i32)
    }))
}

/// Calls `visit` for each record of the batch whose whole bytes are
/// `batch`, decompressing as a bounded stream. Holds one record at a time.
/// Stops at the first error, the visitor's or the batch's.
pub fn for_each_record<E: From<BatchError>>(
    batch: &[u8],
    header: &BatchHeader,
    mut visit: impl FnMut(&RecordView<'_>) -> Result<(), E>,
) -> Result<(), E> {
    let payload = batch
        .get(crate::batch::BATCH_HEADER_BYTES..header.size_bytes().min(batch.len()))
        .unwrap_or(&[]);
    let mut reader = BufReader::new(decompressing_reader(header.compression()?, payload)?);
    let mut body = Vec::new();
    while let Some(len) = read_varint_stream(&mut reader)? {
        let len =
            u64::try_from(len).map_err(|_| invalid(format!("negative record length {len}")))?;
        body.clear();
        // Grows only as bytes actually arrive.
        (&mut reader)
            .take(len)
            .read_to_end(&mut body)
            .map_err(|e| invalid(e.to_string()))?;
        if body.len() as u64 != len {
            return Err(invalid("record runs past the end of the batch").into());
        }
        visit(&parse_record_body(&body)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn batch(compression: Compression, values: &[Vec<u8>]) -> Bytes {
        let values = values.iter().map(|v| Bytes::from(v.clone()));
        crate::batch_builder::compressed_batch_of_values(1000, values, compression).unwrap()
    }

    #[test]
    fn every_codec_round_trips() {
        let values: Vec<Vec<u8>> = (0..50)
            .map(|i| format!("value-{i}-{}", "z".repeat(i)).into_bytes())
            .collect();
        for c in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let b = batch(c, &values);
            let h = BatchHeader::parse(&b).unwrap();
            let mut seen = Vec::new();
            for_each_record::<BatchError>(&b, &h, |r| {
                seen.push(r.value.unwrap().to_vec());
                Ok(())
            })
            .unwrap();
            assert_eq!(seen, values, "{c:?}");
        }
    }

    #[test]
    fn summaries_agree_with_parsed_records_for_every_codec() {
        let values: Vec<Vec<u8>> = (0..50)
            .map(|i| format!("value-{i}-{}", "z".repeat(i * 100)).into_bytes())
            .collect();
        for c in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let b = batch(c, &values);
            let h = BatchHeader::parse(&b).unwrap();
            let mut parsed = Vec::new();
            for_each_record::<BatchError>(&b, &h, |r| {
                parsed.push(RecordSummary {
                    offset_delta: r.offset_delta,
                    timestamp_delta: r.timestamp_delta,
                    has_key: r.key.is_some(),
                    header_count: r.header_count,
                });
                Ok(())
            })
            .unwrap();
            let mut summarized = Vec::new();
            for_each_record_summary::<BatchError>(&b, &h, |r| {
                summarized.push(*r);
                Ok(())
            })
            .unwrap();
            assert_eq!(summarized, parsed, "{c:?}");
            assert_eq!(summarized.len(), 50);
        }
    }

    #[test]
    fn summaries_check_what_parsing_checks() {
        use crate::batch_builder::{BatchBuilder, RecordSpec};
        let record = |headers: Vec<(String, Option<Vec<u8>>)>| {
            let mut b = BatchBuilder::of_values(0, &[b"v"]);
            b.records = vec![RecordSpec {
                value: Some(Bytes::from_static(b"v")),
                headers,
                ..Default::default()
            }];
            b.build()
        };
        let ok = record(vec![("h\u{e9}".into(), Some(b"x".to_vec()))]);
        let h = BatchHeader::parse(&ok).unwrap();
        assert!(for_each_record_summary::<BatchError>(&ok, &h, |_| Ok(())).is_ok());
        // Invalid UTF-8 in a header key, and a record longer than its fields.
        let mut bad = record(vec![("ab".into(), None)]);
        let at = bad.windows(2).position(|w| w == b"ab").unwrap();
        bad[at] = 0xff;
        let h = BatchHeader::parse(&bad).unwrap();
        assert!(for_each_record::<BatchError>(&bad, &h, |_| Ok(())).is_err());
        assert!(for_each_record_summary::<BatchError>(&bad, &h, |_| Ok(())).is_err());
        let mut long = ok.clone();
        long.extend_from_slice(&[0, 0]);
        long[61] += 4; // the record's length varint (zig-zag: +2 bytes)
        let h = BatchHeader::parse(&long).unwrap();
        assert!(for_each_record_summary::<BatchError>(&long, &h, |_| Ok(())).is_err());
    }

    #[test]
    fn a_record_inflating_to_hundreds_of_megabytes_is_walked_in_a_small_buffer() {
        // One 200 MiB value: summarizing holds none of it.
        let big = vec![vec![7u8; 200 << 20]];
        let b = batch(Compression::Zstd, &big);
        let h = BatchHeader::parse(&b).unwrap();
        let mut n = 0;
        for_each_record_summary::<BatchError>(&b, &h, |_| {
            n += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn bombs_are_refused_without_inflating_them() {
        // 300 MiB of zeros compresses to a few hundred KiB.
        let big = vec![vec![0u8; 300 << 20]];
        for c in [
            Compression::Gzip,
            Compression::Lz4,
            Compression::Zstd,
            Compression::Snappy,
        ] {
            let b = batch(c, &big);
            let h = BatchHeader::parse(&b).unwrap();
            let r = for_each_record::<BatchError>(&b, &h, |_| Ok(()));
            assert!(r.is_err(), "{c:?} bomb of {} bytes accepted", b.len());
        }
        // A raw snappy block declaring 4 GiB is refused from its header.
        let mut raw = vec![0x80, 0x80, 0x80, 0x80, 0x10];
        raw.extend_from_slice(&[0; 10]);
        assert!(decompressing_reader(Compression::Snappy, &raw).is_err());
    }
}
