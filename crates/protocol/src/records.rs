//! The records inside a v2 batch, walked without copying.
//!
//! # Record layout (after the 61-byte batch header, or after decompressing it)
//!
//! ```text
//! length          varint   bytes of the record after this field
//! attributes      int8     unused, 0
//! timestampDelta  varlong  from the batch's base_timestamp
//! offsetDelta     varint   from the batch's base_offset
//! keyLength       varint   −1 for a null key
//! key             bytes
//! valueLength     varint   −1 for a null value
//! value           bytes
//! headerCount     varint
//!   headerKeyLength   varint (≥ 0)
//!   headerKey         bytes (UTF-8)
//!   headerValueLength varint (−1 for null)
//!   headerValue       bytes
//! ```

use crate::batch::{BatchError, BatchHeader};
use crate::varint::{read_varint, read_varlong};

/// One record, borrowed from its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    /// Offset relative to the batch's base offset.
    pub offset_delta: i32,
    /// Timestamp relative to the batch's base timestamp.
    pub timestamp_delta: i64,
    /// Key, `None` when null.
    pub key: Option<&'a [u8]>,
    /// Value, `None` when null.
    pub value: Option<&'a [u8]>,
    /// Number of headers.
    pub header_count: i32,
}

fn invalid(what: impl Into<String>) -> BatchError {
    BatchError::InvalidRecord(what.into())
}

fn take<'a>(buf: &'a [u8], pos: &mut usize, len: usize) -> Result<&'a [u8], BatchError> {
    let end = pos
        .checked_add(len)
        .ok_or_else(|| invalid("length overflow"))?;
    let out = buf
        .get(*pos..end)
        .ok_or_else(|| invalid("field runs past the end of the record"))?;
    *pos = end;
    Ok(out)
}

fn nullable_bytes<'a>(buf: &'a [u8], pos: &mut usize) -> Result<Option<&'a [u8]>, BatchError> {
    let len = read_varint(buf, pos).map_err(|e| invalid(e.to_string()))?;
    match len {
        -1 => Ok(None),
        n if n < -1 => Err(invalid(format!("negative length {n}"))),
        n => take(buf, pos, n as usize).map(Some),
    }
}

/// Parses one record occupying exactly `body` (the bytes after its length).
pub fn parse_record_body(body: &[u8]) -> Result<RecordView<'_>, BatchError> {
    let mut pos = 0;
    take(body, &mut pos, 1)?; // attributes
    let timestamp_delta = read_varlong(body, &mut pos).map_err(|e| invalid(e.to_string()))?;
    let offset_delta = read_varint(body, &mut pos).map_err(|e| invalid(e.to_string()))?;
    let key = nullable_bytes(body, &mut pos)?;
    let value = nullable_bytes(body, &mut pos)?;
    let header_count = read_varint(body, &mut pos).map_err(|e| invalid(e.to_string()))?;
    if header_count < 0 {
        return Err(invalid(format!("negative header count {header_count}")));
    }
    for _ in 0..header_count {
        let key = nullable_bytes(body, &mut pos)?.ok_or_else(|| invalid("null header key"))?;
        std::str::from_utf8(key).map_err(|_| invalid("header key is not UTF-8"))?;
        nullable_bytes(body, &mut pos)?;
    }
    if pos != body.len() {
        return Err(invalid(format!(
            "record declares {} bytes but its fields use {pos}",
            body.len()
        )));
    }
    Ok(RecordView {
        offset_delta,
        timestamp_delta,
        key,
        value,
        header_count,
    })
}

/// Iterates the records of an uncompressed (or decompressed) payload.
pub struct RecordIter<'a> {
    buf: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> RecordIter<'a> {
    /// Walks `payload`, the bytes after the batch header.
    pub fn new(payload: &'a [u8]) -> Self {
        Self {
            buf: payload,
            pos: 0,
            failed: false,
        }
    }
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<RecordView<'a>, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.buf.len() {
            return None;
        }
        let result = (|| {
            let len = read_varint(self.buf, &mut self.pos).map_err(|e| invalid(e.to_string()))?;
            if len < 0 {
                return Err(invalid(format!("negative record length {len}")));
            }
            let body = take(self.buf, &mut self.pos, len as usize)?;
            parse_record_body(body)
        })();
        if result.is_err() {
            self.failed = true;
        }
        Some(result)
    }
}

/// Checks that `payload` holds exactly `header.records_count` well-formed
/// records whose offset deltas run 0, 1, 2, … up to `last_offset_delta`.
pub fn validate_records(payload: &[u8], header: &BatchHeader) -> Result<(), BatchError> {
    let mut expected_delta = 0i32;
    for record in RecordIter::new(payload) {
        let record = record?;
        if record.offset_delta != expected_delta {
            return Err(invalid(format!(
                "record offset delta {} where {expected_delta} was expected",
                record.offset_delta
            )));
        }
        expected_delta += 1;
    }
    if expected_delta != header.records_count {
        return Err(invalid(format!(
            "batch header counts {} records but holds {expected_delta}",
            header.records_count
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{check_batch, records_payload, tests::build_batch};

    #[test]
    fn walks_and_validates_records() {
        let b = build_batch(100, &[b"one", b"two"]);
        let h = check_batch(&b).unwrap();
        let payload = records_payload(&b);
        let records: Vec<_> = RecordIter::new(payload).map(|r| r.unwrap()).collect();
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].value, Some(&b"two"[..]));
        assert_eq!(records[1].offset_delta, 1);
        assert_eq!(records[1].timestamp_delta, 1);
        validate_records(payload, &h).unwrap();
        let mut wrong = h;
        wrong.records_count = 3;
        assert!(validate_records(payload, &wrong).is_err());
        for len in 0..payload.len() {
            assert!(
                validate_records(&payload[..len], &h).is_err(),
                "truncated payload at {len} accepted"
            );
        }
    }
}
