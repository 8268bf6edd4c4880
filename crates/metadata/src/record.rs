//! Metadata records: the entries of the metadata log, applied in order to
//! build the [`crate::MetadataImage`].
//!
//! # Encoding
//!
//! Each record is one record of a v2 record batch in the metadata log
//! (`__cluster_metadata-0`), with a null key and as value the record as a
//! JSON object whose `"type"` names the variant, e.g.
//!
//! ```json
//! {"type":"Topic","name":"orders","topic_id":"6e1f...-uuid"}
//! {"type":"Partition","topic_id":"...","partition_id":0,"replicas":[1],"isr":[1],"leader":1,"leader_epoch":0,"partition_epoch":0}
//! {"type":"Config","resource_type":"Topic","resource_name":"orders","name":"retention.ms","value":"3600000"}
//! ```
//!
//! Fields added later must be optional (`#[serde(default)]`) so older logs
//! still load; a record type a broker does not know stops it from starting
//! rather than being skipped.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One endpoint a broker listens on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerEndpoint {
    /// Listener name.
    pub name: String,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: u16,
    /// Security protocol (always `PLAINTEXT` today).
    pub security_protocol: String,
}

/// A broker's registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    /// Node id.
    pub broker_id: i32,
    /// Random id of this process run.
    pub incarnation_id: Uuid,
    /// Epoch of the registration (the offset of its record).
    pub broker_epoch: i64,
    /// Advertised client endpoints.
    pub endpoints: Vec<BrokerEndpoint>,
    /// `broker.rack`.
    pub rack: Option<String>,
    /// Fenced brokers lead nothing and are not offered to clients.
    pub fenced: bool,
}

/// Which kind of resource a config record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ConfigResourceType {
    /// A topic, by name.
    Topic,
    /// A broker, by id ("" for the cluster default).
    Broker,
}

/// A record of the metadata log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum MetadataRecord {
    /// A broker registered (or re-registered after a restart).
    RegisterBroker(BrokerRegistration),
    /// A broker is fenced or unfenced.
    BrokerFencing {
        /// Node id.
        broker_id: i32,
        /// New state.
        fenced: bool,
    },
    /// A topic was created.
    Topic {
        /// Name.
        name: String,
        /// Id, unique over the cluster's life.
        topic_id: Uuid,
    },
    /// A partition was created.
    Partition {
        /// Topic id.
        topic_id: Uuid,
        /// Partition index.
        partition_id: i32,
        /// Replica broker ids, preferred leader first.
        replicas: Vec<i32>,
        /// In-sync replicas.
        isr: Vec<i32>,
        /// Leader broker id, −1 when none.
        leader: i32,
        /// Leader epoch.
        leader_epoch: i32,
        /// Partition epoch.
        partition_epoch: i32,
    },
    /// A partition's leader, ISR or replicas changed.
    PartitionChange {
        /// Topic id.
        topic_id: Uuid,
        /// Partition index.
        partition_id: i32,
        /// New leader, if changed (bumps the leader epoch).
        #[serde(default)]
        leader: Option<i32>,
        /// New ISR, if changed.
        #[serde(default)]
        isr: Option<Vec<i32>>,
        /// New replicas, if changed.
        #[serde(default)]
        replicas: Option<Vec<i32>>,
        /// New replicas being added by a reassignment, if changed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        adding_replicas: Option<Vec<i32>>,
        /// New replicas being removed by a reassignment, if changed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        removing_replicas: Option<Vec<i32>>,
    },
    /// A topic and its partitions and configs were deleted.
    RemoveTopic {
        /// Topic id.
        topic_id: Uuid,
    },
    /// A block of producer ids was handed to a broker; the next block
    /// starts at `next_producer_id`.
    ProducerIds {
        /// Broker that received the block.
        broker_id: i32,
        /// Its broker epoch.
        broker_epoch: i64,
        /// First id of the next block.
        next_producer_id: i64,
    },
    /// A config was set (`value` present) or removed.
    Config {
        /// Resource kind.
        resource_type: ConfigResourceType,
        /// Resource name.
        resource_name: String,
        /// Config key.
        name: String,
        /// Value; `None` removes the override.
        value: Option<String>,
    },
}

impl MetadataRecord {
    /// Encodes the record as a metadata log record value.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising these plain data types cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decodes a metadata log record value.
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_and_shape() {
        let r = MetadataRecord::Topic {
            name: "orders".into(),
            topic_id: Uuid::nil(),
        };
        let json = String::from_utf8(r.to_json()).unwrap();
        assert_eq!(
            json,
            r#"{"type":"Topic","name":"orders","topic_id":"00000000-0000-0000-0000-000000000000"}"#
        );
        assert_eq!(MetadataRecord::from_json(json.as_bytes()).unwrap(), r);
        let change = r#"{"type":"PartitionChange","topic_id":"00000000-0000-0000-0000-000000000000","partition_id":1}"#;
        assert!(matches!(
            MetadataRecord::from_json(change.as_bytes()).unwrap(),
            MetadataRecord::PartitionChange {
                leader: None,
                isr: None,
                ..
            }
        ));
        assert!(MetadataRecord::from_json(br#"{"type":"Nope"}"#).is_err());
    }
}
