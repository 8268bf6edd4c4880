//! The API versions Kafka 3.9 still accepted and Kafka 4 removed
//! (ListOffsets v0, CreateTopics v0–1, DeleteTopics v0, DescribeConfigs v0),
//! spoken with Kafka 3.9's message schemas.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use bytes::BytesMut;
use common::*;
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable as _, Encodable as _, StrBytes};
use kafka_protocol_v3::messages as v3;
use kafka_protocol_v3::protocol::{Decodable, Encodable};
use strom_protocol::ErrorCode;
use strom_test_utils::KafkaConnection;

fn send_v3<Req: Encodable, Resp: Decodable>(
    c: &mut KafkaConnection,
    api: ApiKey,
    version: i16,
    body: &Req,
) -> Resp {
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(77)
        .with_client_id(Some(StrBytes::from_static_str("legacy")));
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, api.request_header_version(version))
        .unwrap();
    body.encode(&mut buf, version).unwrap();
    let mut frame = (buf.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&buf);
    c.send_raw(&frame).unwrap();
    let mut response = c.recv_frame().unwrap().expect("response");
    let h = ResponseHeader::decode(&mut response, api.response_header_version(version)).unwrap();
    assert_eq!(h.correlation_id, 77);
    Resp::decode(&mut response, version).unwrap()
}

fn v3_name(s: &str) -> v3::TopicName {
    v3::TopicName(kafka_protocol_v3::protocol::StrBytes::from_string(s.into()))
}

#[test]
fn create_describe_delete_and_list_offsets_at_old_versions() {
    let b = broker(&[]);
    let mut c = connect(&b);
    use v3::create_topics_request::CreatableTopic;
    let create = |c: &mut KafkaConnection,
                  version: i16,
                  name: &str,
                  validate_only: bool|
     -> v3::CreateTopicsResponse {
        let req = v3::CreateTopicsRequest::default()
            .with_topics(vec![CreatableTopic::default()
                .with_name(v3_name(name))
                .with_num_partitions(1)
                .with_replication_factor(1)])
            .with_timeout_ms(5000)
            .with_validate_only(validate_only);
        send_v3(c, ApiKey::CreateTopics, version, &req)
    };
    assert_eq!(create(&mut c, 0, "old0", false).topics[0].error_code, 0);
    let again = create(&mut c, 0, "old0", false);
    assert_eq!(
        again.topics[0].error_code,
        ErrorCode::TopicAlreadyExists.code()
    );
    let again = create(&mut c, 1, "old0", false);
    assert!(
        again.topics[0].error_message.is_some(),
        "v1 carries error messages"
    );
    assert_eq!(create(&mut c, 1, "dry", true).topics[0].error_code, 0);

    // Three segments' worth of data.
    create_topic(&mut c, "seg", 1, &[("segment.bytes", "300")]);
    for i in 0..12 {
        produce(
            &mut c,
            "seg",
            0,
            &[format!("record-{i}-{}", "v".repeat(60)).as_bytes()],
        );
    }
    use v3::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    let offsets = |c: &mut KafkaConnection, timestamp: i64, max: i32| -> Vec<i64> {
        let req = v3::ListOffsetsRequest::default()
            .with_replica_id(v3::BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(v3_name("seg"))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(timestamp)
                    .with_max_num_offsets(max)])]);
        let r: v3::ListOffsetsResponse = send_v3(c, ApiKey::ListOffsets, 0, &req);
        assert_eq!(r.topics[0].partitions[0].error_code, 0);
        r.topics[0].partitions[0].old_style_offsets.clone()
    };
    assert_eq!(offsets(&mut c, -1, 1), vec![12]);
    assert_eq!(offsets(&mut c, -2, 1), vec![0]);
    let all = offsets(&mut c, -1, 100);
    assert_eq!(all.first(), Some(&12));
    assert_eq!(all.last(), Some(&0));
    assert!(all.windows(2).all(|w| w[0] > w[1]), "descending: {all:?}");
    assert!(all.len() >= 4, "segment starts and the log end: {all:?}");
    assert_eq!(
        offsets(&mut c, 0, 10),
        Vec::<i64>::new(),
        "nothing was modified before 1970"
    );

    // DescribeConfigs v0: is_default instead of a source.
    use v3::describe_configs_request::DescribeConfigsResource;
    let req = v3::DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(kafka_protocol_v3::protocol::StrBytes::from_static_str(
                "seg",
            ))
            .with_configuration_keys(None),
    ]);
    let r: v3::DescribeConfigsResponse = send_v3(&mut c, ApiKey::DescribeConfigs, 0, &req);
    let configs = &r.results[0].configs;
    let seg = configs
        .iter()
        .find(|c| c.name.as_str() == "segment.bytes")
        .unwrap();
    assert_eq!((seg.value.as_deref(), seg.is_default), (Some("300"), false));
    let ret = configs
        .iter()
        .find(|c| c.name.as_str() == "retention.ms")
        .unwrap();
    assert!(ret.is_default);

    // DeleteTopics v0.
    let req = v3::DeleteTopicsRequest::default()
        .with_topic_names(vec![v3_name("old0"), v3_name("never")])
        .with_timeout_ms(5000);
    let r: v3::DeleteTopicsResponse = send_v3(&mut c, ApiKey::DeleteTopics, 0, &req);
    assert_eq!(r.responses[0].error_code, 0);
    assert_eq!(
        r.responses[1].error_code,
        ErrorCode::UnknownTopicOrPartition.code()
    );
}
