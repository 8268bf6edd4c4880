//! Batches for the storage tests.

use bytes::Bytes;
use strom_protocol::batch_builder::BatchBuilder;

/// What to vary in a test batch.
#[derive(Debug, Clone)]
pub struct BatchSpec {
    pub base_timestamp: i64,
    pub values: Vec<Vec<u8>>,
    pub attributes: i16,
    pub max_timestamp_override: Option<i64>,
    pub records_count_override: Option<i32>,
}

impl Default for BatchSpec {
    fn default() -> Self {
        Self {
            base_timestamp: 0,
            values: vec![b"value".to_vec()],
            attributes: 0,
            max_timestamp_override: None,
            records_count_override: None,
        }
    }
}

pub fn batch_with(spec: BatchSpec) -> Bytes {
    let values: Vec<&[u8]> = spec.values.iter().map(Vec::as_slice).collect();
    let mut b = BatchBuilder::of_values(spec.base_timestamp, &values);
    b.attributes = spec.attributes;
    b.max_timestamp = spec.max_timestamp_override;
    b.records_count = spec.records_count_override;
    Bytes::from(b.build())
}

/// A batch of one record per entry of `offset_deltas` (in that order; the
/// smallest must be 0, as the encoder bases the batch on it), whose header is consistent with a well-formed batch of that many records
/// (`last_offset_delta` = n − 1, count n) whatever the deltas say.
pub fn batch_with_offset_deltas(
    offset_deltas: &[i64],
    compression: strom_protocol::kafka_protocol::records::Compression,
    timestamp: i64,
) -> Bytes {
    use bytes::BytesMut;
    use strom_protocol::kafka_protocol::records::{
        Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    let records: Vec<Record> = offset_deltas
        .iter()
        .map(|delta| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: *delta,
            // The encoder keeps records in one batch while offset minus
            // sequence stays the same.
            sequence: (*delta as i32).wrapping_sub(1),
            timestamp,
            key: None,
            value: Some(Bytes::from_static(b"value")),
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
    let last_offset_delta = offset_deltas.len() as i32 - 1;
    buf[23..27].copy_from_slice(&last_offset_delta.to_be_bytes());
    let crc = strom_protocol::batch::compute_crc(&buf);
    buf[17..21].copy_from_slice(&crc.to_be_bytes());
    buf.freeze()
}
