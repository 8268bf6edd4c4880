//! Validation of record batches a client produces, Kafka's `LogValidator`
//! for magic v2, without re-encoding anything.
//!
//! In Kafka's order: the request must carry exactly one whole v2 batch (bytes
//! after it that do not form a batch are dropped), with base offset 0, no
//! larger than `max.message.bytes` (whole batch, offset and length fields
//! included), with a matching CRC32C, a consistent record count, no control
//! records, and a sequence when it has a producer id. Then every record is
//! walked (compressed batches are decompressed as a stream to do so, holding
//! no record's key or value, but stored as
//! received): records must be well-formed and as many as the header says,
//! with offset deltas 0, 1, … `last_offset_delta` in order, compressed or
//! not (offsets are assigned in place: base offset plus delta, so a record
//! out of line would sit outside its batch's offsets); compacted topics
//! need keys; CreateTime timestamps must lie within
//! `message.timestamp.before.max.ms`/`after.max.ms` of now; and the header's
//! max timestamp is corrected when it disagrees with the records.

use bytes::{Bytes, BytesMut};
use strom_config::{MessageTimestampType, TopicConfig};
use strom_protocol::batch::{self, BatchError, BatchHeader, BatchIter};
use strom_protocol::compression::for_each_record_summary;
use strom_protocol::kafka_protocol::records::{Compression, TimestampType};

use crate::error::{Result, StorageError};

/// Produce versions below this cannot carry zstd batches.
pub const MIN_PRODUCE_VERSION_FOR_ZSTD: i16 = 7;

/// Validates the records of one partition of a produce request and returns
/// the one batch to append, in a buffer the broker may patch in place.
pub fn validate_client_records(
    records: &Bytes,
    config: &TopicConfig,
    produce_version: i16,
    now_ms: i64,
) -> Result<BytesMut> {
    let invalid = |m: &str| StorageError::InvalidRecord(m.to_string());
    let mut batches = BatchIter::new(records);
    let (_, header) = match batches.next() {
        Some(Ok(b)) => b,
        Some(Err(BatchError::UnsupportedMagic(m))) => {
            return Err(StorageError::UnsupportedMagic(m))
        }
        Some(Err(BatchError::InvalidLength(l))) => {
            return Err(StorageError::CorruptBatch(BatchError::InvalidLength(l)))
        }
        Some(Err(_)) | None => {
            return Err(invalid(
                "produce requests must have at least one whole record batch per partition",
            ))
        }
    };
    let compression = header
        .compression()
        .map_err(|e| StorageError::UnknownCompression(e.to_string()))?;
    if compression == Compression::Zstd && produce_version < MIN_PRODUCE_VERSION_FOR_ZSTD {
        return Err(StorageError::UnsupportedCompression(produce_version));
    }
    if let Some(Ok(_)) = batches.next() {
        return Err(invalid(
            "produce requests may contain exactly one record batch per partition",
        ));
    }
    if header.base_offset != 0 {
        return Err(invalid(
            "the base offset of a produced record batch must be 0",
        ));
    }
    let size = header.size_bytes();
    if size > config.max_message_bytes.max(0) as usize {
        return Err(StorageError::MessageTooLarge {
            size_bytes: size,
            max_message_bytes: config.max_message_bytes,
        });
    }
    let whole = records.slice(..size);
    batch::check_batch(&whole).map_err(StorageError::CorruptBatch)?;
    if header.last_offset_delta < 0 {
        return Err(invalid("record batch has an invalid offset range"));
    }
    if header.records_count <= 0 {
        return Err(invalid("record batch has no records"));
    }
    if i64::from(header.last_offset_delta) + 1 != i64::from(header.records_count) {
        return Err(invalid(
            "record batch offset range and record count disagree",
        ));
    }
    if header.is_control() {
        return Err(invalid("clients are not allowed to write control records"));
    }
    if header.producer_id >= 0 && header.base_sequence < 0 {
        return Err(invalid(
            "record batch has a producer id but no sequence number",
        ));
    }
    let max_timestamp = check_records(&whole, &header, config, now_ms)?;
    let mut out = BytesMut::from(&whole[..]);
    if config.message_timestamp_type == MessageTimestampType::CreateTime
        && header.max_timestamp != max_timestamp
    {
        batch::set_max_timestamp(&mut out, max_timestamp);
    }
    Ok(out)
}

/// Walks the records (compressed batches as a bounded stream, holding no
/// record's key or value); returns the largest record timestamp.
fn check_records(
    whole: &Bytes,
    header: &BatchHeader,
    config: &TopicConfig,
    now_ms: i64,
) -> Result<i64> {
    let create_time = config.message_timestamp_type == MessageTimestampType::CreateTime;
    let batch_log_append = header.timestamp_type() == TimestampType::LogAppend;
    let mut count = 0i32;
    let mut max_timestamp = -1i64;
    for_each_record_summary(whole, header, |record| {
        // Offsets are assigned in place (base offset + delta), so a record
        // out of line would get an offset outside its batch.
        if record.offset_delta != count {
            return Err(StorageError::InvalidRecord(format!(
                "record {count} of the batch has offset delta {}; inner offset deltas must run 0 to {} in order",
                record.offset_delta,
                header.last_offset_delta
            )));
        }
        if config.cleanup_compact && !record.has_key {
            return Err(StorageError::InvalidRecord(
                "compacted topic cannot accept a record without a key".into(),
            ));
        }
        let timestamp = header
            .base_timestamp
            .checked_add(record.timestamp_delta)
            .ok_or(StorageError::InvalidTimestamp {
                timestamp: header.base_timestamp,
                min: i64::MIN,
                max: i64::MAX,
            })?;
        if create_time && timestamp != -1 {
            let too_old = now_ms.saturating_sub(timestamp) > config.message_timestamp_before_max_ms;
            let too_new = timestamp.saturating_sub(now_ms) > config.message_timestamp_after_max_ms;
            if too_old || too_new {
                return Err(StorageError::InvalidTimestamp {
                    timestamp,
                    min: now_ms.saturating_sub(config.message_timestamp_before_max_ms),
                    max: now_ms.saturating_add(config.message_timestamp_after_max_ms),
                });
            }
        } else if batch_log_append {
            return Err(StorageError::InvalidTimestamp {
                timestamp: header.max_timestamp,
                min: -1,
                max: -1,
            });
        }
        max_timestamp = max_timestamp.max(timestamp);
        count = count.saturating_add(1);
        Ok(())
    })?;
    if count != header.records_count {
        return Err(StorageError::InvalidRecord(format!(
            "record batch header counts {} records but holds {count}",
            header.records_count
        )));
    }
    Ok(max_timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_batches::{batch_with, BatchSpec};

    fn config() -> TopicConfig {
        TopicConfig::kafka_defaults()
    }

    fn code(r: Result<BytesMut>) -> strom_protocol::ErrorCode {
        r.unwrap_err().error_code()
    }

    #[test]
    fn accepts_a_well_formed_batch_and_fixes_max_timestamp() {
        let now = 1_700_000_000_000;
        let b = batch_with(BatchSpec {
            base_timestamp: now,
            values: vec![b"a".to_vec(), b"b".to_vec()],
            max_timestamp_override: Some(now - 5),
            ..Default::default()
        });
        let out = validate_client_records(&b, &config(), 9, now).unwrap();
        let h = batch::check_batch(&out).unwrap();
        assert_eq!(h.max_timestamp, now + 1);
    }

    #[test]
    fn inner_offsets_must_run_from_0_to_n_minus_1_in_order() {
        use crate::test_batches::batch_with_offset_deltas;
        let now = 1_700_000_000_000;
        let c = config();
        for compression in [Compression::None, Compression::Gzip, Compression::Lz4] {
            let ok = batch_with_offset_deltas(&[0, 1, 2], compression, now);
            validate_client_records(&ok, &c, 9, now).unwrap();
            for deltas in [&[0, 1_000_000][..], &[1, 0], &[0, 0], &[0, 2], &[0, 2, 1]] {
                let bad = batch_with_offset_deltas(deltas, compression, now);
                let err = validate_client_records(&bad, &c, 9, now).unwrap_err();
                assert_eq!(
                    err.error_code(),
                    strom_protocol::ErrorCode::InvalidRecord,
                    "{compression:?} {deltas:?}"
                );
                assert!(
                    err.to_string().contains("offset delta"),
                    "{compression:?} {deltas:?}: {err}"
                );
            }
        }
    }

    #[test]
    fn rejects_like_kafka() {
        use strom_protocol::ErrorCode as E;
        let now = 1_700_000_000_000;
        let ok = batch_with(BatchSpec {
            base_timestamp: now,
            ..Default::default()
        });
        let c = config();
        // Empty and truncated requests.
        assert_eq!(
            code(validate_client_records(&Bytes::new(), &c, 9, now)),
            E::InvalidRecord
        );
        assert_eq!(
            code(validate_client_records(
                &ok.slice(..ok.len() - 1),
                &c,
                9,
                now
            )),
            E::InvalidRecord
        );
        // Two batches.
        let mut two = ok.to_vec();
        two.extend_from_slice(&ok);
        assert_eq!(
            code(validate_client_records(&Bytes::from(two), &c, 9, now)),
            E::InvalidRecord
        );
        // Bad CRC.
        let mut bad = ok.to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        assert_eq!(
            code(validate_client_records(&Bytes::from(bad), &c, 9, now)),
            E::CorruptMessage
        );
        // Legacy magic.
        let mut legacy = ok.to_vec();
        legacy[16] = 1;
        assert_eq!(
            code(validate_client_records(&Bytes::from(legacy), &c, 9, now)),
            E::InvalidRecord
        );
        // Too large.
        let mut small = config();
        small.max_message_bytes = (ok.len() - 1) as i32;
        assert_eq!(
            code(validate_client_records(&ok, &small, 9, now)),
            E::MessageTooLarge
        );
        // Timestamp an hour and a bit in the future (Kafka 4 default window).
        let future = batch_with(BatchSpec {
            base_timestamp: now + 3_700_000,
            ..Default::default()
        });
        assert_eq!(
            code(validate_client_records(&future, &c, 9, now)),
            E::InvalidTimestamp
        );
        // Non-zero base offset.
        let mut based = ok.to_vec();
        based[7] = 5;
        assert_eq!(
            code(validate_client_records(&Bytes::from(based), &c, 9, now)),
            E::InvalidRecord
        );
        // Count disagreeing with the records.
        let wrong_count = batch_with(BatchSpec {
            base_timestamp: now,
            records_count_override: Some(2),
            ..Default::default()
        });
        assert_eq!(
            code(validate_client_records(&wrong_count, &c, 9, now)),
            E::InvalidRecord
        );
        // Control batch.
        let control = batch_with(BatchSpec {
            base_timestamp: now,
            attributes: 0x20,
            ..Default::default()
        });
        assert_eq!(
            code(validate_client_records(&control, &c, 9, now)),
            E::InvalidRecord
        );
        // Unknown codec.
        let codec = batch_with(BatchSpec {
            base_timestamp: now,
            attributes: 0x07,
            ..Default::default()
        });
        assert_eq!(
            code(validate_client_records(&codec, &c, 9, now)),
            E::UnknownServerError
        );
        // Compacted topic without key.
        let mut compact = config();
        compact.cleanup_compact = true;
        assert_eq!(
            code(validate_client_records(&ok, &compact, 9, now)),
            E::InvalidRecord
        );
    }
}
