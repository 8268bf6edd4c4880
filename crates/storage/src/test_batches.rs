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
