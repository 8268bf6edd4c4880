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
//! [`for_each_record`] walks the records of a batch without holding more
//! than one record's bytes.

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

/// Reads a zig-zag varint from a stream; `Ok(None)` at a clean end.
fn read_varint_stream<R: BufRead>(r: &mut R) -> Result<Option<i32>, BatchError> {
    let mut raw: u32 = 0;
    for i in 0..5 {
        let byte = match r.fill_buf().map_err(|e| invalid(e.to_string()))?.first() {
            Some(b) => *b,
            None if i == 0 => return Ok(None),
            None => return Err(invalid("record length runs past the end")),
        };
        r.consume(1);
        raw |= u32::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some(((raw >> 1) as i32) ^ -((raw & 1) as i32)));
        }
    }
    Err(invalid("record length varint too long"))
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
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::records::{Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

    fn batch(compression: Compression, values: &[Vec<u8>]) -> Bytes {
        let records: Vec<Record> = values
            .iter()
            .enumerate()
            .map(|(i, v)| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: i as i32 - 1,
                timestamp: 1000 + i as i64,
                key: None,
                value: Some(Bytes::from(v.clone())),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .unwrap();
        buf.freeze()
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
