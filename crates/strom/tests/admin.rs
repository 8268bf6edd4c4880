//! Admin APIs against a real broker: Metadata (auto-creation, versions,
//! topic ids), CreateTopics validation, DeleteTopics, CreatePartitions,
//! DescribeConfigs sources, DescribeCluster and DescribeTopicPartitions
//! (pages, cursors, errors).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use strom_protocol::ErrorCode;
use strom_test_utils::KafkaConnection;

fn metadata(
    c: &mut KafkaConnection,
    version: i16,
    topics: Option<Vec<&str>>,
    auto_create: bool,
) -> MetadataResponse {
    let mut req = MetadataRequest::default().with_topics(topics.map(|t| {
        t.into_iter()
            .map(|n| metadata_request::MetadataRequestTopic::default().with_name(Some(name(n))))
            .collect()
    }));
    if version >= 4 {
        req.allow_auto_topic_creation = auto_create;
    }
    c.send(ApiKey::Metadata, version, &req).unwrap()
}

#[test]
fn metadata_auto_creates_and_describes_topics() {
    let b = broker(&["num.partitions=3"]);
    let mut c = connect(&b);
    let r = metadata(&mut c, 12, Some(vec!["auto"]), true);
    let t = &r.topics[0];
    assert_eq!(t.error_code, 0);
    assert_eq!(t.partitions.len(), 3);
    assert!(!t.topic_id.is_nil());
    for p in &t.partitions {
        assert_eq!((p.leader_id.0, p.leader_epoch), (1, 0));
        assert_eq!(p.isr_nodes.len(), 1);
    }
    assert_eq!(r.controller_id.0, 1, "controller id must be a real broker");
    assert_eq!(r.brokers[0].host.as_str(), "127.0.0.1");
    assert_eq!(r.cluster_id.as_ref().map(|s| s.len()), Some(22));
    // Not allowed: unknown stays unknown.
    let r = metadata(&mut c, 12, Some(vec!["manual"]), false);
    assert_eq!(
        r.topics[0].error_code,
        ErrorCode::UnknownTopicOrPartition.code()
    );
    // Invalid names are refused, never created.
    let r = metadata(&mut c, 12, Some(vec!["bad name"]), true);
    assert_eq!(
        r.topics[0].error_code,
        ErrorCode::InvalidTopicException.code()
    );
    // v0: an empty list means all topics; v1+: null means all.
    let r = metadata(&mut c, 0, Some(vec![]), false);
    assert_eq!(r.topics.len(), 1);
    assert_eq!(metadata(&mut c, 9, None, false).topics.len(), 1);
    assert_eq!(metadata(&mut c, 9, Some(vec![]), false).topics.len(), 0);
    // Every version decodes.
    for v in 0..=13 {
        let r = metadata(&mut c, v, None, false);
        assert_eq!(r.topics.len(), 1, "v{v}");
    }
    // v12+: by topic id.
    let id = metadata(&mut c, 12, Some(vec!["auto"]), false).topics[0].topic_id;
    let req = MetadataRequest::default().with_topics(Some(vec![
        metadata_request::MetadataRequestTopic::default()
            .with_topic_id(id)
            .with_name(None),
    ]));
    let r = c.send(ApiKey::Metadata, 12, &req).unwrap();
    assert_eq!(r.topics[0].name.as_ref().unwrap().0.as_str(), "auto");
}

#[test]
fn auto_creation_can_be_disabled() {
    let b = broker(&["auto.create.topics.enable=false"]);
    let mut c = connect(&b);
    let r = metadata(&mut c, 12, Some(vec!["auto"]), true);
    assert_eq!(
        r.topics[0].error_code,
        ErrorCode::UnknownTopicOrPartition.code()
    );
}

fn create(
    c: &mut KafkaConnection,
    version: i16,
    topics: Vec<CreatableTopic>,
    validate_only: bool,
) -> CreateTopicsResponse {
    c.send(
        ApiKey::CreateTopics,
        version,
        &CreateTopicsRequest::default()
            .with_topics(topics)
            .with_timeout_ms(5000)
            .with_validate_only(validate_only),
    )
    .unwrap()
}

fn topic(n: &str, partitions: i32, rf: i16) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(name(n))
        .with_num_partitions(partitions)
        .with_replication_factor(rf)
}

#[test]
fn create_topics_validates_like_kafka() {
    let b = broker(&[]);
    let mut c = connect(&b);
    let cfg = |k: &str, v: Option<&str>| {
        CreatableTopicConfig::default()
            .with_name(StrBytes::from_string(k.into()))
            .with_value(v.map(|v| StrBytes::from_string(v.into())))
    };
    let r = create(
        &mut c,
        7,
        vec![
            topic("ok", 2, 1).with_configs(vec![
                cfg("retention.ms", Some("1000")),
                cfg("cleanup.policy", Some("delete")),
            ]),
            topic("bad name", 1, 1),
            topic("rf", 1, 3),
            topic("zero", 0, 1),
            topic("defaults", -1, -1),
            topic("badcfg", 1, 1).with_configs(vec![cfg("retention.ms", Some("soon"))]),
            topic("unknowncfg", 1, 1).with_configs(vec![cfg("no.such.config", Some("1"))]),
            topic("nullcfg", 1, 1).with_configs(vec![cfg("retention.ms", None)]),
            topic("dup", 1, 1),
            topic("dup", 1, 1),
        ],
        false,
    );
    let codes: Vec<(String, i16)> = r
        .topics
        .iter()
        .map(|t| (t.name.0.to_string(), t.error_code))
        .collect();
    use ErrorCode as E;
    assert_eq!(
        codes,
        vec![
            ("ok".into(), 0),
            ("bad name".into(), E::InvalidTopicException.code()),
            ("rf".into(), E::InvalidReplicationFactor.code()),
            ("zero".into(), E::InvalidPartitions.code()),
            ("defaults".into(), 0),
            ("badcfg".into(), E::InvalidConfig.code()),
            ("unknowncfg".into(), E::InvalidConfig.code()),
            ("nullcfg".into(), E::InvalidConfig.code()),
            ("dup".into(), E::InvalidRequest.code()),
            ("dup".into(), E::InvalidRequest.code()),
        ]
    );
    let ok = &r.topics[0];
    assert!(ok.error_message.is_none());
    assert_eq!((ok.num_partitions, ok.replication_factor), (2, 1));
    assert!(!ok.topic_id.is_nil());
    let retention = ok
        .configs
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.name.as_str() == "retention.ms")
        .unwrap();
    assert_eq!(
        (retention.value.as_deref(), retention.config_source),
        (Some("1000"), 1)
    );
    assert!(r.topics[2]
        .error_message
        .as_ref()
        .unwrap()
        .contains("replication factor"));
    // Already exists, and the `.`/`_` collision.
    let r = create(&mut c, 7, vec![topic("ok", 1, 1)], false);
    assert_eq!(r.topics[0].error_code, E::TopicAlreadyExists.code());
    create(&mut c, 7, vec![topic("a.b", 1, 1)], false);
    assert_eq!(
        create(&mut c, 7, vec![topic("a_b", 1, 1)], false).topics[0].error_code,
        E::InvalidTopicException.code()
    );
    // validate_only checks but creates nothing.
    let r = create(&mut c, 7, vec![topic("dry", 4, 1)], true);
    assert_eq!((r.topics[0].error_code, r.topics[0].num_partitions), (0, 4));
    let m = c
        .send(
            ApiKey::Metadata,
            12,
            &MetadataRequest::default().with_topics(None),
        )
        .unwrap();
    let names: Vec<&str> = m
        .topics
        .iter()
        .map(|t| t.name.as_ref().unwrap().0.as_str())
        .collect();
    assert!(
        names.contains(&"ok") && !names.contains(&"dry"),
        "{names:?}"
    );
    // Old versions decode too.
    for v in 2..=7 {
        let r = create(&mut c, v, vec![topic(&format!("v{v}"), 1, 1)], false);
        assert_eq!(r.topics[0].error_code, 0, "v{v}");
    }
}

#[test]
fn delete_topics_and_partitions() {
    let b = broker(&[]);
    let mut c = connect(&b);
    create_topic(&mut c, "gone", 2, &[]);
    produce(&mut c, "gone", 0, &[b"x"]);
    create_topic(&mut c, "grow", 1, &[]);
    // CreatePartitions.
    let grow = |c: &mut KafkaConnection, n: &str, count: i32, validate_only: bool| {
        let req = CreatePartitionsRequest::default()
            .with_topics(vec![
                create_partitions_request::CreatePartitionsTopic::default()
                    .with_name(name(n))
                    .with_count(count)
                    .with_assignments(None),
            ])
            .with_timeout_ms(5000)
            .with_validate_only(validate_only);
        c.send(ApiKey::CreatePartitions, 3, &req).unwrap().results[0].clone()
    };
    assert_eq!(grow(&mut c, "grow", 3, true).error_code, 0);
    assert_eq!(grow(&mut c, "grow", 3, false).error_code, 0);
    assert_eq!(
        grow(&mut c, "grow", 3, false).error_code,
        ErrorCode::InvalidPartitions.code()
    );
    assert_eq!(
        grow(&mut c, "grow", 2, false).error_code,
        ErrorCode::InvalidPartitions.code()
    );
    assert_eq!(
        grow(&mut c, "nope", 2, false).error_code,
        ErrorCode::UnknownTopicOrPartition.code()
    );
    assert_eq!(produce(&mut c, "grow", 2, &[b"new partition"]), (0, 0));
    // DeleteTopics by name (v5) and by id (v6).
    let r = c
        .send(
            ApiKey::DeleteTopics,
            5,
            &DeleteTopicsRequest::default()
                .with_topic_names(vec![name("gone"), name("nope")])
                .with_timeout_ms(5000),
        )
        .unwrap();
    assert_eq!(r.responses[0].error_code, 0);
    assert_eq!(
        r.responses[1].error_code,
        ErrorCode::UnknownTopicOrPartition.code()
    );
    assert_eq!(
        produce_raw(&mut c, 9, "gone", 0, values_batch(&[b"x"]), -1).responses[0]
            .partition_responses[0]
            .error_code,
        ErrorCode::UnknownTopicOrPartition.code()
    );
    assert!(
        !b.data_dir.join("gone-0").exists(),
        "the log directory is removed"
    );
    let m = c
        .send(
            ApiKey::Metadata,
            12,
            &MetadataRequest::default().with_topics(None),
        )
        .unwrap();
    let id = m
        .topics
        .iter()
        .find(|t| t.name.as_ref().unwrap().0.as_str() == "grow")
        .unwrap()
        .topic_id;
    let req = DeleteTopicsRequest::default()
        .with_topics(vec![
            delete_topics_request::DeleteTopicState::default().with_topic_id(id),
            delete_topics_request::DeleteTopicState::default().with_topic_id(uuid::Uuid::new_v4()),
        ])
        .with_timeout_ms(5000);
    let r = c.send(ApiKey::DeleteTopics, 6, &req).unwrap();
    assert_eq!(r.responses[0].error_code, 0);
    assert_eq!(r.responses[0].name.as_ref().unwrap().0.as_str(), "grow");
    assert_eq!(r.responses[1].error_code, ErrorCode::UnknownTopicId.code());
    // A re-created topic starts empty, with a new id.
    create_topic(&mut c, "gone", 1, &[]);
    assert_eq!(list_offset(&mut c, 7, "gone", 0, -1).offset, 0);
}

#[test]
fn topic_deletion_can_be_disabled() {
    let b = broker(&["delete.topic.enable=false"]);
    let mut c = connect(&b);
    create_topic(&mut c, "stay", 1, &[]);
    let r = c
        .send(
            ApiKey::DeleteTopics,
            5,
            &DeleteTopicsRequest::default()
                .with_topic_names(vec![name("stay")])
                .with_timeout_ms(5000),
        )
        .unwrap();
    assert_eq!(
        r.responses[0].error_code,
        ErrorCode::TopicDeletionDisabled.code()
    );
}

fn describe(
    c: &mut KafkaConnection,
    resource_type: i8,
    resource: &str,
    keys: Option<Vec<&str>>,
) -> describe_configs_response::DescribeConfigsResult {
    let req = DescribeConfigsRequest::default()
        .with_resources(vec![
            describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(StrBytes::from_string(resource.into()))
                .with_configuration_keys(keys.map(|k| {
                    k.into_iter()
                        .map(|s| StrBytes::from_string(s.into()))
                        .collect()
                })),
        ])
        .with_include_synonyms(true)
        .with_include_documentation(true);
    c.send(ApiKey::DescribeConfigs, 4, &req).unwrap().results[0].clone()
}

#[test]
fn describe_configs_reports_every_config_with_its_source() {
    let b = broker(&["log.retention.hours=5"]);
    let mut c = connect(&b);
    create_topic(&mut c, "cfg", 1, &[("max.message.bytes", "4096")]);
    let r = describe(&mut c, 2, "cfg", None);
    assert_eq!(r.error_code, 0);
    assert!(r.error_message.is_none(), "no error means a null message");
    let get = |n: &str| {
        r.configs
            .iter()
            .find(|c| c.name.as_str() == n)
            .unwrap()
            .clone()
    };
    assert!(
        r.configs.len() >= 20,
        "all topic configs, not only overrides"
    );
    let m = get("max.message.bytes");
    assert_eq!((m.value.as_deref(), m.config_source), (Some("4096"), 1));
    let ret = get("retention.ms");
    assert_eq!(
        (ret.value.as_deref(), ret.config_source),
        (Some("18000000"), 4),
        "from log.retention.hours"
    );
    assert!(ret
        .synonyms
        .iter()
        .any(|s| s.name.as_str() == "log.retention.hours" && s.source == 4));
    let seg = get("segment.bytes");
    assert_eq!(
        (seg.value.as_deref(), seg.config_source, seg.config_type),
        (Some("1073741824"), 5, 3)
    );
    assert!(seg.documentation.is_some());
    // Filtered keys.
    assert_eq!(
        describe(&mut c, 2, "cfg", Some(vec!["cleanup.policy"]))
            .configs
            .len(),
        1
    );
    // Broker configs.
    let r = describe(&mut c, 4, "1", None);
    assert_eq!(r.error_code, 0);
    let hours = r
        .configs
        .iter()
        .find(|c| c.name.as_str() == "log.retention.hours")
        .unwrap();
    assert_eq!(
        (hours.value.as_deref(), hours.config_source),
        (Some("5"), 4)
    );
    assert_eq!(describe(&mut c, 4, "", None).error_code, 0);
    assert_eq!(
        describe(&mut c, 4, "2", None).error_code,
        ErrorCode::InvalidRequest.code()
    );
    assert_eq!(
        describe(&mut c, 2, "missing", None).error_code,
        ErrorCode::UnknownTopicOrPartition.code()
    );
    assert_eq!(
        describe(&mut c, 2, "bad name", None).error_code,
        ErrorCode::InvalidTopicException.code()
    );
}

#[test]
fn describe_cluster() {
    let b = broker(&["broker.rack=r1"]);
    let mut c = connect(&b);
    for v in 0..=2 {
        let r = c
            .send(
                ApiKey::DescribeCluster,
                v,
                &DescribeClusterRequest::default().with_endpoint_type(1),
            )
            .unwrap();
        assert_eq!(r.error_code, 0, "v{v}");
        assert_eq!(r.brokers.len(), 1);
        assert_eq!(r.brokers[0].port as u16, b.port);
        assert_eq!(r.brokers[0].rack.as_deref(), Some("r1"));
        assert_eq!(r.controller_id.0, 1);
    }
    let r = c
        .send(
            ApiKey::DescribeCluster,
            1,
            &DescribeClusterRequest::default().with_endpoint_type(2),
        )
        .unwrap();
    assert_eq!(r.error_code, ErrorCode::MismatchedEndpointType.code());
}

#[test]
fn describe_quorum_of_a_single_node() {
    let b = broker(&[]);
    let mut c = connect(&b);
    let ask = describe_quorum_request("__cluster_metadata", 0);
    for version in 0..=2 {
        let r: DescribeQuorumResponse = c.send(ApiKey::DescribeQuorum, version, &ask).unwrap();
        let p = &r.topics[0].partitions[0];
        assert_eq!(p.error_code, 0);
        assert_eq!(p.leader_id.0, 1);
        assert!(p.leader_epoch >= 1);
        assert_eq!(p.current_voters.len(), 1);
        assert_eq!(p.current_voters[0].replica_id.0, 1);
        assert!(p.high_watermark > 0);
        assert_eq!(p.current_voters[0].log_end_offset, p.high_watermark);
        assert!(p.observers.is_empty());
    }
    // Not the metadata log: each partition asked for is unknown.
    let wrong = DescribeQuorumRequest::default().with_topics(vec![
        describe_quorum_request::TopicData::default()
            .with_topic_name(name("chat"))
            .with_partitions(vec![
                describe_quorum_request::PartitionData::default().with_partition_index(0),
                describe_quorum_request::PartitionData::default().with_partition_index(1),
            ]),
    ]);
    let r: DescribeQuorumResponse = c.send(ApiKey::DescribeQuorum, 2, &wrong).unwrap();
    let codes: Vec<i16> = r.topics[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect();
    assert_eq!(codes, vec![ErrorCode::UnknownTopicOrPartition.code(); 2]);
}

#[test]
fn elect_leaders_on_a_single_node() {
    let b = broker(&[]);
    let mut c = connect(&b);
    let created = create(&mut c, 7, vec![topic("elect", 2, 1)], false);
    assert_eq!(created.topics[0].error_code, 0);
    let ask = |partitions: Option<Vec<i32>>, election_type: i8| {
        ElectLeadersRequest::default()
            .with_election_type(election_type)
            .with_timeout_ms(5_000)
            .with_topic_partitions(partitions.map(|p| {
                vec![elect_leaders_request::TopicPartitions::default()
                    .with_topic(name("elect"))
                    .with_partitions(p)]
            }))
    };
    let r: ElectLeadersResponse = c
        .send(ApiKey::ElectLeaders, 2, &ask(Some(vec![0, 1, 5]), 0))
        .unwrap();
    let codes: Vec<(i32, i16)> = r.replica_election_results[0]
        .partition_result
        .iter()
        .map(|p| (p.partition_id, p.error_code))
        .collect();
    assert_eq!(
        codes,
        vec![
            (0, ErrorCode::ElectionNotNeeded.code()),
            (1, ErrorCode::ElectionNotNeeded.code()),
            (5, ErrorCode::UnknownTopicOrPartition.code()),
        ]
    );
    // v0 is always preferred; null means every partition, and those that
    // need no election are left out.
    let r: ElectLeadersResponse = c.send(ApiKey::ElectLeaders, 0, &ask(None, 0)).unwrap();
    assert!(r
        .replica_election_results
        .iter()
        .all(|t| t.partition_result.is_empty()));
    // An unknown election type.
    let r: ElectLeadersResponse = c
        .send(ApiKey::ElectLeaders, 1, &ask(Some(vec![0]), 7))
        .unwrap();
    assert_eq!(r.error_code, ErrorCode::InvalidRequest.code());
}

fn describe_partitions(
    c: &mut KafkaConnection,
    topics: &[&str],
    limit: i32,
    cursor: Option<(&str, i32)>,
) -> DescribeTopicPartitionsResponse {
    let req = DescribeTopicPartitionsRequest::default()
        .with_topics(
            topics
                .iter()
                .map(|t| {
                    describe_topic_partitions_request::TopicRequest::default().with_name(name(t))
                })
                .collect(),
        )
        .with_response_partition_limit(limit)
        .with_cursor(cursor.map(|(t, p)| {
            describe_topic_partitions_request::Cursor::default()
                .with_topic_name(name(t))
                .with_partition_index(p)
        }));
    c.send(ApiKey::DescribeTopicPartitions, 0, &req).unwrap()
}

/// One described topic: name, error code, partition indexes.
type DescribedTopic = (String, i16, Vec<i32>);

/// The topics of a response, and its next cursor.
fn pages(r: &DescribeTopicPartitionsResponse) -> (Vec<DescribedTopic>, Option<(String, i32)>) {
    let topics = r
        .topics
        .iter()
        .map(|t| {
            (
                t.name.as_ref().unwrap().to_string(),
                t.error_code,
                t.partitions.iter().map(|p| p.partition_index).collect(),
            )
        })
        .collect();
    let cursor = r
        .next_cursor
        .as_ref()
        .map(|c| (c.topic_name.to_string(), c.partition_index));
    (topics, cursor)
}

#[test]
fn describe_topic_partitions_in_pages() {
    let b = broker(&[]);
    let mut c = connect(&b);
    let created = create(
        &mut c,
        7,
        vec![topic("dtp-b", 3, 1), topic("dtp-a", 4, 1)],
        false,
    );
    assert!(
        created.topics.iter().all(|t| t.error_code == 0),
        "{created:?}"
    );
    let s = |v: &str| v.to_string();

    // Everything fits: name order, every partition, no cursor.
    let r = describe_partitions(&mut c, &["dtp-b", "dtp-a"], 100, None);
    assert_eq!(
        pages(&r),
        (
            vec![
                (s("dtp-a"), 0, vec![0, 1, 2, 3]),
                (s("dtp-b"), 0, vec![0, 1, 2])
            ],
            None
        )
    );
    let p = &r.topics[0].partitions[0];
    assert_eq!((p.leader_id.0, p.leader_epoch), (1, 0));
    assert_eq!(p.replica_nodes, vec![BrokerId(1)]);
    assert_eq!(p.isr_nodes, vec![BrokerId(1)]);
    assert!(p.offline_replicas.is_empty());
    // Empty lists, not null: the Java client reads them unchecked.
    assert_eq!(p.eligible_leader_replicas, Some(vec![]));
    assert_eq!(p.last_known_elr, Some(vec![]));
    assert!(!r.topics[0].topic_id.is_nil());

    // Three at a time: the cursor walks through both topics.
    let r = describe_partitions(&mut c, &["dtp-a", "dtp-b"], 3, None);
    assert_eq!(
        pages(&r),
        (vec![(s("dtp-a"), 0, vec![0, 1, 2])], Some((s("dtp-a"), 3)))
    );
    let r = describe_partitions(&mut c, &["dtp-a", "dtp-b"], 3, Some(("dtp-a", 3)));
    assert_eq!(
        pages(&r),
        (
            vec![(s("dtp-a"), 0, vec![3]), (s("dtp-b"), 0, vec![0, 1])],
            Some((s("dtp-b"), 2))
        )
    );
    let r = describe_partitions(&mut c, &["dtp-a", "dtp-b"], 3, Some(("dtp-b", 2)));
    assert_eq!(pages(&r), (vec![(s("dtp-b"), 0, vec![2])], None));
    // A page that ends with a topic points at the next one.
    let r = describe_partitions(&mut c, &["dtp-a", "dtp-b"], 4, None);
    assert_eq!(
        pages(&r),
        (
            vec![(s("dtp-a"), 0, vec![0, 1, 2, 3])],
            Some((s("dtp-b"), 0))
        )
    );

    // Unknown and illegal names are errors of their own; the rest is described.
    let r = describe_partitions(&mut c, &["dtp-a", "dtp-none", "bad/name"], 100, None);
    assert_eq!(
        pages(&r).0,
        vec![
            (
                s("bad/name"),
                ErrorCode::InvalidTopicException.code(),
                vec![]
            ),
            (s("dtp-a"), 0, vec![0, 1, 2, 3]),
            (
                s("dtp-none"),
                ErrorCode::UnknownTopicOrPartition.code(),
                vec![]
            ),
        ]
    );
    // A cursor on a topic not asked for: INVALID_REQUEST on every topic.
    let r = describe_partitions(&mut c, &["dtp-a"], 100, Some(("dtp-b", 0)));
    assert_eq!(
        pages(&r).0,
        vec![(s("dtp-a"), ErrorCode::InvalidRequest.code(), vec![])]
    );
    // No names: every existing topic from the cursor on.
    let r = describe_partitions(&mut c, &[], 100, Some(("dtp-b", 1)));
    assert_eq!(pages(&r), (vec![(s("dtp-b"), 0, vec![1, 2])], None));
}

/// The cluster-wide dynamic broker defaults (the empty broker name): listed
/// for the default resource when set, and inherited by the broker with
/// their source, behind its own value.
#[test]
fn dynamic_broker_configs_are_described_with_their_sources() {
    let b = broker(&[]);
    let mut c = connect(&b);
    const BROKER: i8 = 4;
    let (leader, follower) = (
        "leader.replication.throttled.rate",
        "follower.replication.throttled.rate",
    );
    assert!(describe(&mut c, BROKER, "", None).configs.is_empty());
    assert_eq!(
        alter_configs(&b, BROKER, "", &[(follower, 0, Some("500"))]),
        0
    );
    assert_eq!(
        alter_configs(&b, BROKER, "", &[(leader, 0, Some("700"))]),
        0
    );
    assert_eq!(
        alter_configs(&b, BROKER, "1", &[(leader, 0, Some("900"))]),
        0
    );
    let cluster = describe(&mut c, BROKER, "", None);
    let names: Vec<String> = cluster.configs.iter().map(|c| c.name.to_string()).collect();
    assert_eq!(names, vec![leader.to_string(), follower.to_string()]);
    assert!(cluster.configs.iter().all(|c| c.config_source == 3));
    let own = describe(&mut c, BROKER, "1", Some(vec![leader, follower]));
    let find = |name: &str| {
        own.configs
            .iter()
            .find(|c| c.name.as_str() == name)
            .unwrap()
            .clone()
    };
    let l = find(leader);
    assert_eq!(l.value.as_deref(), Some("900"));
    assert_eq!(l.config_source, 2);
    assert!(!l.read_only);
    let chain: Vec<(Option<String>, i8)> = l
        .synonyms
        .iter()
        .map(|s| (s.value.as_ref().map(|v| v.to_string()), s.source))
        .collect();
    assert_eq!(
        chain,
        vec![
            (Some("900".into()), 2),
            (Some("700".into()), 3),
            (Some(i64::MAX.to_string()), 5)
        ]
    );
    let f = find(follower);
    assert_eq!((f.value.as_deref(), f.config_source), (Some("500"), 3));
}
