//! Produce (key 0): append each partition's record batch.
//!
//! Checks in Kafka's order: `acks` must be −1, 0 or 1
//! (INVALID_REQUIRED_ACKS per partition); topics sent by id (v13) must
//! exist (UNKNOWN_TOPIC_ID); clients may not write Kafka's internal topics
//! (INVALID_TOPIC_EXCEPTION); then the replica manager validates and
//! appends, waiting for the in-sync replicas when `acks=-1`. With `acks=0`
//! nothing is answered, and a failed write closes the connection, as Kafka
//! does, so the producer notices.
//!
//! Versions 0–2 are advertised (as Kafka 4 does, because librdkafka's
//! feature detection looks for them) but carry legacy message formats that
//! are not stored; such a request closes the connection.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::VersionRange;
use strom_metadata::topic_name::is_internal_topic;
use strom_protocol::ErrorCode;
use strom_replication::ReplicaError;
use strom_storage::TopicPartition;

use super::{str_bytes, topic_name_of};
use crate::context::RequestContext;
use crate::registry::{count_partition_errors, Handler, Reply};

/// Produce.
pub struct ProduceHandler;

/// Where one partition's answer comes from: an append (index into the
/// replica manager's results) or a refusal decided up front.
struct AppendSlot {
    topic: usize,
    partition: i32,
    outcome: Result<usize, (ErrorCode, Option<String>)>,
}

/// Client id Kafka lets write internal topics.
const ADMIN_CLIENT_ID: &str = "__admin_client";

fn partition_error(
    index: i32,
    code: ErrorCode,
    message: Option<String>,
) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(code.code())
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
        .with_error_message(message.map(str_bytes))
}

impl Handler for ProduceHandler {
    type Request = ProduceRequest;
    type Response = ProduceResponse;
    const API_KEY: ApiKey = ApiKey::Produce;
    const VERSIONS: VersionRange = VersionRange { min: 3, max: 13 };
    const ADVERTISED_MIN_VERSION: i16 = 0;

    fn error_codes(r: &Self::Response, count: &mut dyn FnMut(i16)) {
        count_partition_errors(
            &r.responses,
            |t| &t.partition_responses,
            |p| p.error_code,
            count,
        );
    }

    async fn handle(ctx: RequestContext, request: ProduceRequest) -> Reply<ProduceResponse> {
        let version = ctx.api_version;
        // Everything of the request but its topics goes now: its strings
        // share the request frame's memory, which must not outlive the
        // append (an acks=all wait holds no frame).
        let (acks, timeout_ms, topic_data) = {
            let r = request;
            (r.acks, r.timeout_ms, r.topic_data)
        };
        let image = ctx.image();
        let may_write_internal = ctx.client_id.as_deref() == Some(ADMIN_CLIENT_ID);
        let fenced = ctx.broker.lifecycle.is_fenced();
        // Resolve every partition first; `slots` keeps the response order.
        let mut slots: Vec<AppendSlot> = Vec::new();
        // Each topic as asked for (name or id) and as resolved.
        let mut topics: Vec<(TopicName, uuid::Uuid, Option<String>)> = Vec::new();
        let mut entries: Vec<(TopicPartition, Bytes)> = Vec::new();
        for topic in topic_data {
            let name = topic_name_of(&image, version >= 13, &topic.name, &topic.topic_id);
            let topic_index = topics.len();
            // A copy, not a slice of the frame.
            let asked = TopicName(str_bytes(topic.name.as_str()));
            topics.push((asked, topic.topic_id, name.clone()));
            for p in topic.partition_data {
                let outcome = match &name {
                    None => Err((ErrorCode::UnknownTopicId, None)),
                    Some(_) if !matches!(acks, -1..=1) => {
                        Err((ErrorCode::InvalidRequiredAcks, None))
                    }
                    // Fenced: the controller may have given this broker's
                    // partitions to others.
                    Some(_) if fenced => Err((ErrorCode::NotLeaderOrFollower, None)),
                    Some(n) if is_internal_topic(n) && !may_write_internal => Err((
                        ErrorCode::InvalidTopicException,
                        Some(format!("Cannot append to internal topic {n}")),
                    )),
                    Some(n) => {
                        entries.push((
                            TopicPartition::new(n.clone(), p.index),
                            p.records.unwrap_or_default(),
                        ));
                        Ok(entries.len() - 1)
                    }
                };
                slots.push(AppendSlot {
                    topic: topic_index,
                    partition: p.index,
                    outcome,
                });
            }
        }
        let timeout = Duration::from_millis(timeout_ms.max(0) as u64);
        let results = ctx
            .broker
            .replica_manager
            .append_records(&image, entries, acks, timeout, version)
            .await;
        let mut any_error = false;
        let mut responses: Vec<TopicProduceResponse> = topics
            .iter()
            .map(|(name, id, _)| {
                TopicProduceResponse::default()
                    .with_name(name.clone())
                    .with_topic_id(*id)
            })
            .collect();
        for AppendSlot {
            topic: topic_index,
            partition: index,
            outcome,
        } in slots
        {
            let partition = match outcome {
                Err((code, message)) => {
                    any_error = true;
                    partition_error(index, code, message)
                }
                Ok(i) => match results.get(i) {
                    Some(Ok(info)) => {
                        if let Some((_, _, Some(topic))) = topics.get(topic_index) {
                            ctx.broker.metrics.count_in(
                                topic,
                                info.bytes as u64,
                                u64::try_from(info.records).unwrap_or(0),
                            );
                        }
                        PartitionProduceResponse::default()
                            .with_index(index)
                            .with_base_offset(info.base_offset)
                            .with_log_append_time_ms(info.log_append_time_ms)
                            .with_log_start_offset(info.log_start_offset)
                    }
                    Some(Err(e)) => {
                        any_error = true;
                        log_failure(&ctx, index, e);
                        partition_error(
                            index,
                            e.error_code(),
                            (version >= 8).then(|| e.to_string()),
                        )
                    }
                    None => {
                        any_error = true;
                        partition_error(index, ErrorCode::UnknownServerError, None)
                    }
                },
            };
            if let Some(t) = responses.get_mut(topic_index) {
                t.partition_responses.push(partition);
            }
        }
        if acks == 0 {
            return if any_error {
                Reply::Close("a produce request with acks=0 failed".into())
            } else {
                Reply::Silent
            };
        }
        Reply::Respond(ProduceResponse::default().with_responses(responses))
    }
}

fn log_failure(ctx: &RequestContext, partition: i32, e: &ReplicaError) {
    match e {
        ReplicaError::Storage(s) if s.error_code() == ErrorCode::KafkaStorageError => {
            tracing::error!(partition, error = %e, "append failed");
        }
        _ => {
            tracing::debug!(client = ctx.client_id.as_deref().unwrap_or(""), partition, error = %e, "produce refused")
        }
    }
}
