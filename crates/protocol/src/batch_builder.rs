//! The one builder of uncompressed v2 record batches. The broker stores
//! what producers send as it is; the batches it writes itself
//! (`__consumer_offsets` records, metadata log entries) are built here with
//! [`BatchBuilder::of_records`], and tests, tools and benchmarks use the
//! same builder with exact control over every header field (including
//! wrong ones). Compressed batches for tests, benchmarks and fuzz seeds
//! come from kafka-protocol's encoder, the way a client would make them
//! ([`compressed_batch_of_values`]).

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::batch::{compute_crc, BATCH_HEADER_BYTES, LOG_OVERHEAD_BYTES, MAGIC_V2};
use crate::varint::{write_varint, write_varlong};

/// One record to put in a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordSpec {
    /// Key (`None` = null).
    pub key: Option<Bytes>,
    /// Value (`None` = null).
    pub value: Option<Bytes>,
    /// Headers.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// Timestamp delta from the batch's base timestamp.
    pub timestamp_delta: i64,
}

/// A batch to build. Fields left `None` are derived from the records.
#[derive(Debug, Clone, Default)]
pub struct BatchBuilder {
    /// Base offset written in the header.
    pub base_offset: i64,
    /// Partition leader epoch.
    pub partition_leader_epoch: i32,
    /// Attributes (codec bits must be 0: records are not compressed).
    pub attributes: i16,
    /// Base timestamp.
    pub base_timestamp: i64,
    /// Producer id (−1 when not idempotent).
    pub producer_id: i64,
    /// Producer epoch.
    pub producer_epoch: i16,
    /// Base sequence.
    pub base_sequence: i32,
    /// Records.
    pub records: Vec<RecordSpec>,
    /// Overrides `max_timestamp` (default: largest record timestamp).
    pub max_timestamp: Option<i64>,
    /// Overrides `records_count`.
    pub records_count: Option<i32>,
    /// Overrides `last_offset_delta`.
    pub last_offset_delta: Option<i32>,
}

impl BatchBuilder {
    /// A batch of `values` (null keys, timestamps `base_timestamp + i`).
    pub fn of_values(base_timestamp: i64, values: &[&[u8]]) -> Self {
        Self::without_producer(
            base_timestamp,
            values
                .iter()
                .enumerate()
                .map(|(i, v)| RecordSpec {
                    value: Some(Bytes::copy_from_slice(v)),
                    timestamp_delta: i as i64,
                    ..Default::default()
                })
                .collect(),
        )
    }

    /// A batch of `(key, value)` records all stamped `timestamp` (create
    /// time), with no producer id and no leader epoch (the leader's append
    /// assigns offsets and epoch): the batches the broker writes itself.
    pub fn of_records(
        timestamp: i64,
        records: impl IntoIterator<Item = (Option<Bytes>, Option<Bytes>)>,
    ) -> Self {
        Self::without_producer(
            timestamp,
            records
                .into_iter()
                .map(|(key, value)| RecordSpec {
                    key,
                    value,
                    ..Default::default()
                })
                .collect(),
        )
    }

    fn without_producer(base_timestamp: i64, records: Vec<RecordSpec>) -> Self {
        Self {
            base_timestamp,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            partition_leader_epoch: -1,
            records,
            ..Default::default()
        }
    }

    /// Encodes the batch with a correct CRC.
    pub fn build(&self) -> Vec<u8> {
        let mut records = Vec::new();
        for (i, r) in self.records.iter().enumerate() {
            let mut body = vec![0u8];
            write_varlong(&mut body, r.timestamp_delta);
            write_varint(&mut body, i as i32);
            write_bytes(&mut body, r.key.as_deref());
            write_bytes(&mut body, r.value.as_deref());
            write_varint(&mut body, r.headers.len() as i32);
            for (k, v) in &r.headers {
                write_bytes(&mut body, Some(k.as_bytes()));
                write_bytes(&mut body, v.as_deref());
            }
            write_varint(&mut records, body.len() as i32);
            records.extend_from_slice(&body);
        }
        let n = self.records.len() as i32;
        let max_ts = self.max_timestamp.unwrap_or_else(|| {
            self.base_timestamp
                + self
                    .records
                    .iter()
                    .map(|r| r.timestamp_delta)
                    .max()
                    .unwrap_or(0)
        });
        let mut b = Vec::with_capacity(BATCH_HEADER_BYTES + records.len());
        b.extend_from_slice(&self.base_offset.to_be_bytes());
        b.extend_from_slice(
            &((BATCH_HEADER_BYTES - LOG_OVERHEAD_BYTES + records.len()) as i32).to_be_bytes(),
        );
        b.extend_from_slice(&self.partition_leader_epoch.to_be_bytes());
        b.push(MAGIC_V2 as u8);
        b.extend_from_slice(&[0; 4]);
        b.extend_from_slice(&self.attributes.to_be_bytes());
        b.extend_from_slice(&self.last_offset_delta.unwrap_or(n - 1).to_be_bytes());
        b.extend_from_slice(&self.base_timestamp.to_be_bytes());
        b.extend_from_slice(&max_ts.to_be_bytes());
        b.extend_from_slice(&self.producer_id.to_be_bytes());
        b.extend_from_slice(&self.producer_epoch.to_be_bytes());
        b.extend_from_slice(&self.base_sequence.to_be_bytes());
        b.extend_from_slice(&self.records_count.unwrap_or(n).to_be_bytes());
        b.extend_from_slice(&records);
        let crc = compute_crc(&b);
        if let Some(slot) = b.get_mut(17..21) {
            slot.copy_from_slice(&crc.to_be_bytes());
        }
        b
    }
}

/// `values` as one batch compressed with `compression` by kafka-protocol's
/// encoder, as a client sends it: null keys, timestamps
/// `base_timestamp + i`, no producer id.
pub fn compressed_batch_of_values(
    base_timestamp: i64,
    values: impl IntoIterator<Item = Bytes>,
    compression: Compression,
) -> anyhow::Result<Bytes> {
    let records: Vec<Record> = values
        .into_iter()
        .enumerate()
        .map(|(i, value)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder keeps records in one batch while offset minus
            // sequence stays the same.
            sequence: i as i32 - 1,
            timestamp: base_timestamp + i as i64,
            key: None,
            value: Some(value),
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
    )?;
    Ok(buf.freeze())
}

fn write_bytes(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => write_varint(out, -1),
        Some(b) => {
            write_varint(out, b.len() as i32);
            out.extend_from_slice(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::check_batch;
    use kafka_protocol::records::RecordBatchDecoder;

    #[test]
    fn a_built_batch_decodes_with_kafka_protocol_and_its_crc_holds() {
        let records = [
            (
                Some(Bytes::from_static(b"k1")),
                Some(Bytes::from_static(b"v1")),
            ),
            (Some(Bytes::from_static(b"k2")), None),
            (None, Some(Bytes::from_static(b"v3"))),
        ];
        let built = BatchBuilder::of_records(1_700_000_000_000, records.clone()).build();
        let header = check_batch(&built).unwrap();
        assert_eq!(header.last_offset_delta, 2);
        assert_eq!(header.records_count, 3);
        assert_eq!(header.producer_id, -1);
        assert_eq!(header.base_sequence, -1);
        assert_eq!(header.max_timestamp, 1_700_000_000_000);

        let mut bytes = Bytes::from(built);
        let decoded = RecordBatchDecoder::decode(&mut bytes).unwrap();
        let got: Vec<_> = decoded
            .records
            .iter()
            .map(|r| (r.offset, r.timestamp, r.key.clone(), r.value.clone()))
            .collect();
        let want: Vec<_> = records
            .iter()
            .enumerate()
            .map(|(i, (k, v))| (i as i64, 1_700_000_000_000, k.clone(), v.clone()))
            .collect();
        assert_eq!(got, want);
    }
}
