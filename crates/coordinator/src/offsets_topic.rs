//! The records of `__consumer_offsets`, in Kafka's own binary formats, and
//! which partition of it holds a group.
//!
//! # Record formats
//!
//! Every record has a key and a value (a null value is a tombstone). Keys
//! and values start with an `int16` version; strings are `int16` length +
//! UTF-8 (length −1 for null), bytes are `int32` length + data, arrays are
//! `int32` count + elements; integers are big-endian.
//!
//! **Committed offset** (key versions 0 and 1):
//!
//! ```text
//! key:   version int16 (1) | group string | topic string | partition int32
//! value: version int16 (3) | offset int64 | leader_epoch int32 | metadata string | commit_timestamp int64
//! ```
//!
//! Value versions 0–2 are read too: v0 has no leader epoch; v1 adds
//! `expire_timestamp int64` after `commit_timestamp`; v2 drops it. Kafka's
//! flexible v4 is not read (the record is skipped as corrupt).
//!
//! **Group metadata** (key version 2):
//!
//! ```text
//! key:   version int16 (2) | group string
//! value: version int16 (3) | protocol_type string | generation int32
//!        | protocol nullable-string | leader nullable-string
//!        | current_state_timestamp int64 | members array of:
//!            member_id string | group_instance_id nullable-string
//!            | client_id string | client_host string | rebalance_timeout int32
//!            | session_timeout int32 | subscription bytes | assignment bytes
//! ```
//!
//! Value versions 0–2 are read too (v0: no rebalance timeout, no state
//! timestamp, no instance id; v1 adds the rebalance timeout; v2 the state
//! timestamp). Keys of other versions (the newer consumer protocol's
//! records) are skipped when loading.
//!
//! # Partitioning
//!
//! A group lives in partition `abs(java_hash(group_id)) % partitions`, with
//! Java's `String.hashCode` over UTF-16 code units and Kafka's `Utils.abs`,
//! so a group maps to the same partition as in Kafka.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::CoordinatorError;

pub use strom_metadata::topic_name::CONSUMER_OFFSETS_TOPIC;

const OFFSET_KEY_VERSION: i16 = 1;
const GROUP_KEY_VERSION: i16 = 2;
const OFFSET_VALUE_VERSION: i16 = 3;
const GROUP_VALUE_VERSION: i16 = 3;

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitValue {
    /// The offset.
    pub offset: i64,
    /// Leader epoch of the record at the offset (−1: unknown).
    pub leader_epoch: i32,
    /// Client metadata.
    pub metadata: String,
    /// When it was committed.
    pub commit_timestamp: i64,
}

/// A member as stored in group metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberMetadataValue {
    /// Member id.
    pub member_id: String,
    /// Static member's instance id.
    pub group_instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// Session timeout.
    pub session_timeout_ms: i32,
    /// The member's metadata for the group's protocol.
    pub subscription: Bytes,
    /// The member's assignment.
    pub assignment: Bytes,
}

/// A group's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadataValue {
    /// Protocol type (`consumer`, `connect`, ...).
    pub protocol_type: String,
    /// Generation.
    pub generation: i32,
    /// Chosen protocol.
    pub protocol: Option<String>,
    /// Leader member id.
    pub leader: Option<String>,
    /// When the group entered its current state.
    pub current_state_timestamp: i64,
    /// Members.
    pub members: Vec<MemberMetadataValue>,
}

/// One record of `__consumer_offsets`; `None` values are tombstones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffsetsRecord {
    /// A committed offset (or its deletion).
    Offset {
        /// Group id.
        group: String,
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Value.
        value: Option<OffsetCommitValue>,
    },
    /// A group's metadata (or its deletion).
    Group {
        /// Group id.
        group: String,
        /// Value.
        value: Option<GroupMetadataValue>,
    },
}

/// Longest string these (non-flexible) record versions can hold; the
/// coordinator refuses longer group ids, instance ids and client ids
/// before anything is written.
pub const MAX_RECORD_STRING_BYTES: usize = i16::MAX as usize;

fn put_string(b: &mut BytesMut, s: &str) {
    // Longer strings are refused upstream; if one ever got here, write an
    // empty string rather than a corrupt record.
    let s = if s.len() <= MAX_RECORD_STRING_BYTES {
        s
    } else {
        ""
    };
    b.put_i16(s.len() as i16);
    b.put_slice(s.as_bytes());
}

fn put_nullable_string(b: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_string(b, s),
        None => b.put_i16(-1),
    }
}

fn put_bytes(b: &mut BytesMut, bytes: &[u8]) {
    b.put_i32(bytes.len() as i32);
    b.put_slice(bytes);
}

impl OffsetsRecord {
    /// The group this record belongs to.
    pub fn group(&self) -> &str {
        match self {
            OffsetsRecord::Offset { group, .. } | OffsetsRecord::Group { group, .. } => group,
        }
    }

    /// Encodes the key.
    pub fn encode_key(&self) -> Bytes {
        let mut b = BytesMut::new();
        match self {
            OffsetsRecord::Offset {
                group,
                topic,
                partition,
                ..
            } => {
                b.put_i16(OFFSET_KEY_VERSION);
                put_string(&mut b, group);
                put_string(&mut b, topic);
                b.put_i32(*partition);
            }
            OffsetsRecord::Group { group, .. } => {
                b.put_i16(GROUP_KEY_VERSION);
                put_string(&mut b, group);
            }
        }
        b.freeze()
    }

    /// Encodes the value; `None` for a tombstone.
    pub fn encode_value(&self) -> Option<Bytes> {
        let mut b = BytesMut::new();
        match self {
            OffsetsRecord::Offset { value, .. } => {
                let v = value.as_ref()?;
                b.put_i16(OFFSET_VALUE_VERSION);
                b.put_i64(v.offset);
                b.put_i32(v.leader_epoch);
                put_string(&mut b, &v.metadata);
                b.put_i64(v.commit_timestamp);
            }
            OffsetsRecord::Group { value, .. } => {
                let v = value.as_ref()?;
                b.put_i16(GROUP_VALUE_VERSION);
                put_string(&mut b, &v.protocol_type);
                b.put_i32(v.generation);
                put_nullable_string(&mut b, v.protocol.as_deref());
                put_nullable_string(&mut b, v.leader.as_deref());
                b.put_i64(v.current_state_timestamp);
                b.put_i32(v.members.len() as i32);
                for m in &v.members {
                    put_string(&mut b, &m.member_id);
                    put_nullable_string(&mut b, m.group_instance_id.as_deref());
                    put_string(&mut b, &m.client_id);
                    put_string(&mut b, &m.client_host);
                    b.put_i32(m.rebalance_timeout_ms);
                    b.put_i32(m.session_timeout_ms);
                    put_bytes(&mut b, &m.subscription);
                    put_bytes(&mut b, &m.assignment);
                }
            }
        }
        Some(b.freeze())
    }

    /// Decodes a record; `Ok(None)` for key versions this broker does not
    /// use (they belong to other record types of the topic).
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Option<Self>, CoordinatorError> {
        let mut k = Reader::new(key);
        let version = k.i16()?;
        let record = match version {
            0 | 1 => OffsetsRecord::Offset {
                group: k.string()?,
                topic: k.string()?,
                partition: k.i32()?,
                value: value.map(decode_offset_value).transpose()?,
            },
            2 => OffsetsRecord::Group {
                group: k.string()?,
                value: value.map(decode_group_value).transpose()?,
            },
            _ => return Ok(None),
        };
        Ok(Some(record))
    }
}

fn decode_offset_value(bytes: &[u8]) -> Result<OffsetCommitValue, CoordinatorError> {
    let mut r = Reader::new(bytes);
    let version = r.i16()?;
    // Version 4 is Kafka's first flexible (compact, tagged) version; Strom
    // writes version 3 and does not read flexible ones.
    if !(0..=3).contains(&version) {
        return Err(CoordinatorError::Corrupt(format!(
            "offset value version {version}"
        )));
    }
    let offset = r.i64()?;
    let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
    let metadata = r.string()?;
    let commit_timestamp = r.i64()?;
    if version == 1 {
        r.i64()?; // expire timestamp
    }
    Ok(OffsetCommitValue {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp,
    })
}

fn decode_group_value(bytes: &[u8]) -> Result<GroupMetadataValue, CoordinatorError> {
    let mut r = Reader::new(bytes);
    let version = r.i16()?;
    if !(0..=3).contains(&version) {
        return Err(CoordinatorError::Corrupt(format!(
            "group value version {version}"
        )));
    }
    let protocol_type = r.string()?;
    let generation = r.i32()?;
    let protocol = r.nullable_string()?;
    let leader = r.nullable_string()?;
    let current_state_timestamp = if version >= 2 { r.i64()? } else { -1 };
    let count = r.array_len()?;
    let mut members = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let member_id = r.string()?;
        let group_instance_id = if version >= 3 {
            r.nullable_string()?
        } else {
            None
        };
        let client_id = r.string()?;
        let client_host = r.string()?;
        // v1+ stores the rebalance timeout before the session timeout; v0
        // has none (the session timeout served as both).
        let rebalance_timeout_ms = if version >= 1 { Some(r.i32()?) } else { None };
        let session_timeout_ms = r.i32()?;
        let rebalance_timeout_ms = rebalance_timeout_ms.unwrap_or(session_timeout_ms);
        members.push(MemberMetadataValue {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms,
            session_timeout_ms,
            subscription: r.bytes()?,
            assignment: r.bytes()?,
        });
    }
    Ok(GroupMetadataValue {
        protocol_type,
        generation,
        protocol,
        leader,
        current_state_timestamp,
        members,
    })
}

/// Reads Kafka's classic (non-flexible) encoding from a slice.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CoordinatorError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| CoordinatorError::Corrupt("record shorter than its fields".into()))?;
        let out = self.buf.get(self.pos..end).unwrap_or(&[]);
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CoordinatorError> {
        self.take(N)?
            .try_into()
            .map_err(|_| CoordinatorError::Corrupt("short field".into()))
    }

    fn i16(&mut self) -> Result<i16, CoordinatorError> {
        self.array().map(i16::from_be_bytes)
    }

    fn i32(&mut self) -> Result<i32, CoordinatorError> {
        self.array().map(i32::from_be_bytes)
    }

    fn i64(&mut self) -> Result<i64, CoordinatorError> {
        self.array().map(i64::from_be_bytes)
    }

    fn nullable_string(&mut self) -> Result<Option<String>, CoordinatorError> {
        let len = self.i16()?;
        if len < 0 {
            return Ok(None);
        }
        let raw = self.take(len as usize)?;
        String::from_utf8(raw.to_vec())
            .map(Some)
            .map_err(|_| CoordinatorError::Corrupt("string is not UTF-8".into()))
    }

    fn string(&mut self) -> Result<String, CoordinatorError> {
        self.nullable_string()?
            .ok_or_else(|| CoordinatorError::Corrupt("null where a string is required".into()))
    }

    fn bytes(&mut self) -> Result<Bytes, CoordinatorError> {
        let len = self.i32()?;
        if len < 0 {
            return Ok(Bytes::new());
        }
        Ok(Bytes::copy_from_slice(self.take(len as usize)?))
    }

    fn array_len(&mut self) -> Result<usize, CoordinatorError> {
        let n = self.i32()?;
        usize::try_from(n).map_err(|_| CoordinatorError::Corrupt(format!("array length {n}")))
    }
}

/// Java's `String.hashCode`.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// The `__consumer_offsets` partition of a group (Kafka's `Utils.abs` of
/// the Java hash, modulo the partition count).
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    let h = java_string_hash(group_id);
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_hash_and_partitioning_match_kafka() {
        // java.lang.String.hashCode: s[0]*31^(n-1) + ... + s[n-1], wrapping.
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("my-group"), -1_906_497_762);
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        assert_eq!(partition_for("my-group", 50), 1_906_497_762 % 50);
        // Non-ASCII hashes UTF-16 code units (a surrogate pair is two).
        assert_eq!(java_string_hash("é"), 0xe9);
        assert_eq!(java_string_hash("😀"), 0xd83d * 31 + 0xde00);
    }

    fn group_record() -> OffsetsRecord {
        OffsetsRecord::Group {
            group: "g".into(),
            value: Some(GroupMetadataValue {
                protocol_type: "consumer".into(),
                generation: 3,
                protocol: Some("range".into()),
                leader: Some("m1".into()),
                current_state_timestamp: 1234,
                members: vec![MemberMetadataValue {
                    member_id: "m1".into(),
                    group_instance_id: Some("i1".into()),
                    client_id: "c".into(),
                    client_host: "/127.0.0.1".into(),
                    rebalance_timeout_ms: 300_000,
                    session_timeout_ms: 45_000,
                    subscription: Bytes::from_static(b"sub"),
                    assignment: Bytes::from_static(b"asg"),
                }],
            }),
        }
    }

    #[test]
    fn records_round_trip_and_tombstones() {
        let offset = OffsetsRecord::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 7,
            value: Some(OffsetCommitValue {
                offset: 42,
                leader_epoch: 5,
                metadata: "meta".into(),
                commit_timestamp: 99,
            }),
        };
        for r in [offset, group_record()] {
            let key = r.encode_key();
            let value = r.encode_value();
            assert_eq!(
                OffsetsRecord::decode(&key, value.as_deref()).unwrap(),
                Some(r.clone())
            );
        }
        let tomb = OffsetsRecord::Group {
            group: "g".into(),
            value: None,
        };
        assert_eq!(tomb.encode_value(), None);
        assert_eq!(
            OffsetsRecord::decode(&tomb.encode_key(), None).unwrap(),
            Some(tomb)
        );
        // Unknown key versions are skipped, not errors.
        assert_eq!(
            OffsetsRecord::decode(&[0, 9, 0, 0], Some(&[1])).unwrap(),
            None
        );
    }

    #[test]
    fn known_kafka_bytes_decode() {
        // An OffsetCommitKey v1 and OffsetCommitValue v1 as Kafka 2.0 wrote them.
        let mut key = vec![0, 1, 0, 1, b'g', 0, 1, b't'];
        key.extend_from_slice(&3i32.to_be_bytes());
        let mut value = vec![0, 1];
        value.extend_from_slice(&10i64.to_be_bytes());
        value.extend_from_slice(&[0, 0]);
        value.extend_from_slice(&77i64.to_be_bytes());
        value.extend_from_slice(&(-1i64).to_be_bytes());
        match OffsetsRecord::decode(&key, Some(&value)).unwrap() {
            Some(OffsetsRecord::Offset {
                partition: 3,
                value: Some(v),
                ..
            }) => {
                assert_eq!((v.offset, v.leader_epoch, v.commit_timestamp), (10, -1, 77));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn truncated_records_are_errors_not_panics() {
        let r = group_record();
        let key = r.encode_key();
        let value = r.encode_value().unwrap();
        for len in 0..value.len() {
            assert!(
                OffsetsRecord::decode(&key, Some(&value[..len])).is_err(),
                "len {len}"
            );
        }
        for len in 0..key.len() {
            assert!(
                OffsetsRecord::decode(&key[..len], Some(&value)).is_err(),
                "key len {len}"
            );
        }
    }

    #[test]
    fn flexible_offset_values_are_refused_not_misread() {
        let key = OffsetsRecord::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 0,
            value: None,
        }
        .encode_key();
        // v4: offset, leader epoch, compact string "m", timestamp, no tags.
        let mut value = vec![0, 4];
        value.extend_from_slice(&7i64.to_be_bytes());
        value.extend_from_slice(&(-1i32).to_be_bytes());
        value.extend_from_slice(&[2, b'm']);
        value.extend_from_slice(&1i64.to_be_bytes());
        value.push(0);
        assert!(OffsetsRecord::decode(&key, Some(&value)).is_err());
    }
}
