//! The group APIs against a real broker, at the wire: FindCoordinator,
//! the JoinGroup/SyncGroup/Heartbeat/LeaveGroup protocol, OffsetCommit and
//! OffsetFetch at every version, the admin APIs, and the Kafka error code
//! every kind of bad input gets.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use bytes::Bytes;
use common::*;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use strom_protocol::ErrorCode;
use strom_test_utils::{BrokerProcess, KafkaConnection};

/// Groups rebalance at once instead of after Kafka's 3 s delay.
const FAST_GROUPS: &str = "group.initial.rebalance.delay.ms=0";

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn gid(v: &str) -> GroupId {
    GroupId(s(v))
}

fn code(e: ErrorCode) -> i16 {
    e.code()
}

fn join_request(group: &str, member_id: &str, session_timeout_ms: i32) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(gid(group))
        .with_member_id(s(member_id))
        .with_session_timeout_ms(session_timeout_ms)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(Bytes::from_static(b"subscription"))])
}

fn join(c: &mut KafkaConnection, version: i16, group: &str, member_id: &str) -> JoinGroupResponse {
    c.send(
        ApiKey::JoinGroup,
        version,
        &join_request(group, member_id, 10_000),
    )
    .unwrap()
}

/// Joins a new group as its only member (through MEMBER_ID_REQUIRED);
/// returns (member id, generation).
fn join_alone(c: &mut KafkaConnection, group: &str) -> (String, i32) {
    let first = join(c, 9, group, "");
    assert_eq!(first.error_code, code(ErrorCode::MemberIdRequired));
    let member = first.member_id.to_string();
    assert!(!member.is_empty());
    let r = join(c, 9, group, &member);
    assert_eq!(r.error_code, 0);
    assert_eq!(r.leader.as_str(), member);
    (member, r.generation_id)
}

fn sync(
    c: &mut KafkaConnection,
    group: &str,
    member: &str,
    generation: i32,
    assignment: &'static [u8],
) -> SyncGroupResponse {
    let req = SyncGroupRequest::default()
        .with_group_id(gid(group))
        .with_member_id(s(member))
        .with_generation_id(generation)
        .with_protocol_type(Some(s("consumer")))
        .with_protocol_name(Some(s("range")))
        .with_assignments(vec![SyncGroupRequestAssignment::default()
            .with_member_id(s(member))
            .with_assignment(Bytes::from_static(assignment))]);
    c.send(ApiKey::SyncGroup, 5, &req).unwrap()
}

fn heartbeat(c: &mut KafkaConnection, group: &str, member: &str, generation: i32) -> i16 {
    let req = HeartbeatRequest::default()
        .with_group_id(gid(group))
        .with_member_id(s(member))
        .with_generation_id(generation);
    c.send(ApiKey::Heartbeat, 4, &req).unwrap().error_code
}

fn commit_request(
    group: &str,
    generation: i32,
    member: &str,
    offsets: &[(&str, i32, i64, &str)],
) -> OffsetCommitRequest {
    let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
    for (topic, partition, offset, metadata) in offsets {
        let p = OffsetCommitRequestPartition::default()
            .with_partition_index(*partition)
            .with_committed_offset(*offset)
            .with_committed_metadata(Some(s(metadata)));
        match topics.iter_mut().find(|t| t.name.0.as_str() == *topic) {
            Some(t) => t.partitions.push(p),
            None => topics.push(
                OffsetCommitRequestTopic::default()
                    .with_name(name(topic))
                    .with_partitions(vec![p]),
            ),
        }
    }
    OffsetCommitRequest::default()
        .with_group_id(gid(group))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member))
        .with_topics(topics)
}

/// Commits; returns the error of every partition in request order.
fn commit(
    c: &mut KafkaConnection,
    version: i16,
    group: &str,
    generation: i32,
    member: &str,
    offsets: &[(&str, i32, i64, &str)],
) -> Vec<i16> {
    let r = c
        .send(
            ApiKey::OffsetCommit,
            version,
            &commit_request(group, generation, member, offsets),
        )
        .unwrap();
    r.topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
        .collect()
}

/// A committed offset as OffsetFetch reports it: (topic, partition, offset,
/// metadata, error).
type FetchedRow = (String, i32, i64, String, i16);

/// OffsetFetch v1–7 for one group: (top-level error, rows).
fn fetch_offsets(
    c: &mut KafkaConnection,
    version: i16,
    group: &str,
    topics: Option<&[(&str, &[i32])]>,
) -> (i16, Vec<FetchedRow>) {
    let req = OffsetFetchRequest::default()
        .with_group_id(gid(group))
        .with_topics(topics.map(|ts| {
            ts.iter()
                .map(|(t, ps)| {
                    OffsetFetchRequestTopic::default()
                        .with_name(name(t))
                        .with_partition_indexes(ps.to_vec())
                })
                .collect()
        }));
    let r = c.send(ApiKey::OffsetFetch, version, &req).unwrap();
    let rows = r
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    t.name.0.to_string(),
                    p.partition_index,
                    p.committed_offset,
                    p.metadata
                        .as_ref()
                        .map(|m| m.to_string())
                        .unwrap_or_default(),
                    p.error_code,
                )
            })
        })
        .collect();
    (r.error_code, rows)
}

fn describe(
    c: &mut KafkaConnection,
    version: i16,
    group: &str,
) -> describe_groups_response::DescribedGroup {
    let req = DescribeGroupsRequest::default()
        .with_groups(vec![gid(group)])
        .with_include_authorized_operations(version >= 3);
    let mut r = c.send(ApiKey::DescribeGroups, version, &req).unwrap();
    r.groups.remove(0)
}

fn delete_group(c: &mut KafkaConnection, group: &str) -> i16 {
    let req = DeleteGroupsRequest::default().with_groups_names(vec![gid(group)]);
    c.send(ApiKey::DeleteGroups, 2, &req).unwrap().results[0].error_code
}

/// Finds the coordinator (which creates `__consumer_offsets`, as a
/// client's first group request does) and waits until every partition's
/// groups are loaded.
fn coordinator_ready(c: &mut KafkaConnection) {
    let req = FindCoordinatorRequest::default().with_key(s("any"));
    assert_eq!(
        c.send(ApiKey::FindCoordinator, 3, &req).unwrap().error_code,
        0
    );
    let loaded = strom_test_utils::wait_until(std::time::Duration::from_secs(30), || {
        let r = c
            .send(ApiKey::ListGroups, 4, &ListGroupsRequest::default())
            .unwrap();
        r.error_code == 0
    });
    assert!(loaded, "the group coordinator never loaded");
}

fn started() -> (BrokerProcess, KafkaConnection) {
    let b = broker(&[FAST_GROUPS]);
    let mut c = connect(&b);
    assert_eq!(create_topic(&mut c, "t", 2, &[]).topics[0].error_code, 0);
    coordinator_ready(&mut c);
    (b, c)
}

#[test]
fn find_coordinator_creates_the_offsets_topic_and_answers_every_version() {
    let b = broker(&[]);
    let mut c = connect(&b);
    let port = i32::from(b.port);
    for v in 0..=3 {
        let req = FindCoordinatorRequest::default().with_key(s(&format!("group-{v}")));
        let r = c.send(ApiKey::FindCoordinator, v, &req).unwrap();
        assert_eq!(r.error_code, 0, "v{v}");
        assert_eq!(
            (r.node_id.0, r.host.as_str(), r.port),
            (1, "127.0.0.1", port)
        );
    }
    for v in 4..=6 {
        let req =
            FindCoordinatorRequest::default().with_coordinator_keys(vec![s("a"), s("b"), s("")]);
        let r = c.send(ApiKey::FindCoordinator, v, &req).unwrap();
        let keys: Vec<_> = r
            .coordinators
            .iter()
            .map(|c| (c.key.to_string(), c.error_code, c.node_id.0, c.port))
            .collect();
        assert_eq!(
            keys,
            vec![
                ("a".into(), 0, 1, port),
                ("b".into(), 0, 1, port),
                ("".into(), 0, 1, port)
            ],
            "v{v}"
        );
    }
    // Transactions are not coordinated yet; unknown key types are invalid.
    let req = FindCoordinatorRequest::default()
        .with_key_type(1)
        .with_coordinator_keys(vec![s("txn")]);
    let r = c.send(ApiKey::FindCoordinator, 6, &req).unwrap();
    assert_eq!(
        r.coordinators[0].error_code,
        code(ErrorCode::CoordinatorNotAvailable)
    );
    let req = FindCoordinatorRequest::default()
        .with_key_type(7)
        .with_key(s("x"));
    let r = c.send(ApiKey::FindCoordinator, 3, &req).unwrap();
    assert_eq!(r.error_code, code(ErrorCode::InvalidRequest));
    assert_eq!(r.node_id.0, -1);

    // The internal topic: Kafka's 50 partitions, internal, compacted.
    let req = MetadataRequest::default()
        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
        )
        .with_name(Some(name("__consumer_offsets")))]));
    let r = c.send(ApiKey::Metadata, 12, &req).unwrap();
    let t = &r.topics[0];
    assert_eq!(t.error_code, 0);
    assert!(t.is_internal);
    assert_eq!(t.partitions.len(), 50);
    // Clients may not write to it.
    let (err, _) = produce(&mut c, "__consumer_offsets", 0, &[b"forged"]);
    assert_eq!(err, code(ErrorCode::InvalidTopicException));
}

#[test]
fn join_sync_heartbeat_and_leave_with_kafka_error_codes() {
    let (_b, mut c) = started();
    // Bad joins.
    assert_eq!(
        join(&mut c, 9, "", "").error_code,
        code(ErrorCode::InvalidGroupId)
    );
    let r = c
        .send(ApiKey::JoinGroup, 9, &join_request("g", "", 1_000))
        .unwrap();
    assert_eq!(r.error_code, code(ErrorCode::InvalidSessionTimeout));
    let no_protocols = join_request("g", "", 10_000).with_protocols(vec![]);
    let r = c.send(ApiKey::JoinGroup, 9, &no_protocols).unwrap();
    assert_eq!(r.error_code, code(ErrorCode::InconsistentGroupProtocol));
    assert_eq!(
        join(&mut c, 9, "g", "made-up").error_code,
        code(ErrorCode::UnknownMemberId)
    );

    let (member, generation) = join_alone(&mut c, "g");
    assert_eq!(generation, 1);
    // Another protocol type cannot join this group.
    let other = join_request("g", "", 10_000).with_protocol_type(s("connect"));
    let r = c.send(ApiKey::JoinGroup, 9, &other).unwrap();
    assert_eq!(r.error_code, code(ErrorCode::InconsistentGroupProtocol));

    // SyncGroup and Heartbeat check the member and the generation.
    assert_eq!(
        sync(&mut c, "g", &member, generation + 1, b"x").error_code,
        code(ErrorCode::IllegalGeneration)
    );
    assert_eq!(
        sync(&mut c, "g", "stranger", generation, b"x").error_code,
        code(ErrorCode::UnknownMemberId)
    );
    let r = sync(&mut c, "g", &member, generation, b"assignment-bytes");
    assert_eq!(r.error_code, 0);
    assert_eq!(&r.assignment[..], b"assignment-bytes");
    assert_eq!(r.protocol_name.as_deref(), Some("range"));
    assert_eq!(heartbeat(&mut c, "g", &member, generation), 0);
    assert_eq!(
        heartbeat(&mut c, "g", &member, generation + 5),
        code(ErrorCode::IllegalGeneration)
    );
    assert_eq!(
        heartbeat(&mut c, "g", "stranger", generation),
        code(ErrorCode::UnknownMemberId)
    );
    assert_eq!(
        heartbeat(&mut c, "nope", &member, generation),
        code(ErrorCode::UnknownMemberId)
    );

    // Commits from the member need its generation.
    assert_eq!(
        commit(&mut c, 9, "g", generation, &member, &[("t", 0, 7, "m")]),
        vec![0]
    );
    assert_eq!(
        commit(&mut c, 9, "g", generation + 1, &member, &[("t", 0, 8, "m")]),
        vec![code(ErrorCode::IllegalGeneration)]
    );
    assert_eq!(
        commit(&mut c, 9, "g", -1, "", &[("t", 0, 9, "")]),
        vec![code(ErrorCode::UnknownMemberId)],
        "a group with members refuses commits without a generation"
    );

    // DescribeGroups sees the member with its assignment.
    let d = describe(&mut c, 5, "g");
    assert_eq!(d.error_code, 0);
    assert_eq!(d.group_state.as_str(), "Stable");
    assert_eq!(d.protocol_type.as_str(), "consumer");
    assert_eq!(d.protocol_data.as_str(), "range");
    assert_eq!(d.authorized_operations, (1 << 3) | (1 << 6) | (1 << 8));
    let m = &d.members[0];
    assert_eq!(m.member_id.as_str(), member);
    assert_eq!(m.client_host.as_str(), "/127.0.0.1");
    assert_eq!(&m.member_assignment[..], b"assignment-bytes");
    assert_eq!(&m.member_metadata[..], b"subscription");
    assert_eq!(delete_group(&mut c, "g"), code(ErrorCode::NonEmptyGroup));

    // LeaveGroup v3+: one error per member.
    let req = LeaveGroupRequest::default()
        .with_group_id(gid("g"))
        .with_members(vec![
            MemberIdentity::default().with_member_id(s("stranger")),
            MemberIdentity::default().with_member_id(s(&member)),
        ]);
    let r = c.send(ApiKey::LeaveGroup, 5, &req).unwrap();
    assert_eq!(r.error_code, 0);
    let errors: Vec<i16> = r.members.iter().map(|m| m.error_code).collect();
    assert_eq!(errors, vec![code(ErrorCode::UnknownMemberId), 0]);
    // v0: one member, one error.
    let req = LeaveGroupRequest::default()
        .with_group_id(gid("g"))
        .with_member_id(s(&member));
    let r = c.send(ApiKey::LeaveGroup, 0, &req).unwrap();
    assert_eq!(r.error_code, code(ErrorCode::UnknownMemberId));

    let d = describe(&mut c, 5, "g");
    assert_eq!(d.group_state.as_str(), "Empty");
    assert!(d.members.is_empty());
    assert_eq!(
        heartbeat(&mut c, "g", &member, generation),
        code(ErrorCode::UnknownMemberId)
    );
    // The committed offset outlives the members; the group can be deleted.
    let (_, rows) = fetch_offsets(&mut c, 5, "g", Some(&[("t", &[0])]));
    assert_eq!(rows, vec![("t".into(), 0, 7, "m".into(), 0)]);
    assert_eq!(delete_group(&mut c, "g"), 0);
    assert_eq!(delete_group(&mut c, "g"), code(ErrorCode::GroupIdNotFound));
    let (_, rows) = fetch_offsets(&mut c, 5, "g", Some(&[("t", &[0])]));
    assert_eq!(rows, vec![("t".into(), 0, -1, "".into(), 0)]);
}

#[test]
fn second_member_triggers_a_rebalance_that_both_complete() {
    let (b, mut c) = started();
    let (a_id, generation) = join_alone(&mut c, "g2");
    assert_eq!(sync(&mut c, "g2", &a_id, generation, b"all").error_code, 0);

    // Member B's JoinGroup waits until A rejoins.
    let addr = b.bootstrap();
    let joiner = std::thread::spawn(move || {
        let mut c2 = KafkaConnection::connect(&addr).unwrap();
        let first = join(&mut c2, 9, "g2", "");
        assert_eq!(first.error_code, code(ErrorCode::MemberIdRequired));
        let r = join(&mut c2, 9, "g2", &first.member_id);
        assert_eq!(r.error_code, 0);
        assert!(r.members.is_empty(), "only the leader gets the members");
        let assignment = sync(&mut c2, "g2", &r.member_id, r.generation_id, b"ignored");
        (r.member_id.to_string(), r.generation_id, assignment)
    });
    assert!(strom_test_utils::wait_until(
        std::time::Duration::from_secs(10),
        || heartbeat(&mut c, "g2", &a_id, generation) == code(ErrorCode::RebalanceInProgress)
    ));
    let r = join(&mut c, 9, "g2", &a_id);
    assert_eq!(r.error_code, 0);
    assert_eq!(r.generation_id, generation + 1);
    assert_eq!(r.leader.as_str(), a_id, "the old leader stays leader");
    assert_eq!(r.members.len(), 2);
    let b_id = r
        .members
        .iter()
        .map(|m| m.member_id.to_string())
        .find(|m| *m != a_id)
        .unwrap();
    // The leader's assignment covers both members.
    let req = SyncGroupRequest::default()
        .with_group_id(gid("g2"))
        .with_member_id(s(&a_id))
        .with_generation_id(r.generation_id)
        .with_assignments(vec![
            SyncGroupRequestAssignment::default()
                .with_member_id(s(&a_id))
                .with_assignment(Bytes::from_static(b"for-a")),
            SyncGroupRequestAssignment::default()
                .with_member_id(s(&b_id))
                .with_assignment(Bytes::from_static(b"for-b")),
        ]);
    let mine = c.send(ApiKey::SyncGroup, 3, &req).unwrap();
    assert_eq!(&mine.assignment[..], b"for-a");
    let (joined_id, joined_generation, theirs) = joiner.join().unwrap();
    assert_eq!(joined_id, b_id);
    assert_eq!(joined_generation, generation + 1);
    assert_eq!(theirs.error_code, 0);
    assert_eq!(&theirs.assignment[..], b"for-b");
    assert_eq!(describe(&mut c, 5, "g2").members.len(), 2);
}

#[test]
fn offset_commit_and_fetch_validate_and_answer_every_version() {
    let (_b, mut c) = started();
    // A group that only stores offsets (generation −1).
    let big = "x".repeat(4097);
    let errors = commit(
        &mut c,
        9,
        "simple",
        -1,
        "",
        &[
            ("t", 0, 5, "meta"),
            ("t", 1, 6, &big),
            ("missing", 0, 1, ""),
            ("t", 9, 1, ""),
        ],
    );
    assert_eq!(
        errors,
        vec![
            0,
            code(ErrorCode::OffsetMetadataTooLarge),
            code(ErrorCode::UnknownTopicOrPartition),
            code(ErrorCode::UnknownTopicOrPartition)
        ]
    );
    for v in 2..=9 {
        assert_eq!(
            commit(
                &mut c,
                v,
                "simple",
                -1,
                "",
                &[("t", 1, 10 + i64::from(v), "")]
            ),
            vec![0],
            "v{v}"
        );
    }
    for v in 1..=7 {
        let (top, rows) = fetch_offsets(
            &mut c,
            v,
            "simple",
            Some(&[("t", &[0, 1]), ("other", &[3])]),
        );
        assert_eq!(top, 0);
        assert_eq!(
            rows,
            vec![
                ("t".into(), 0, 5, "meta".into(), 0),
                ("t".into(), 1, 19, "".into(), 0),
                ("other".into(), 3, -1, "".into(), 0)
            ],
            "v{v}"
        );
    }
    // Leader epochs round-trip (committed from v6, fetched from v5).
    let mut req = commit_request("epochs", -1, "", &[("t", 0, 3, "with-epoch")]);
    req.topics[0].partitions[0].committed_leader_epoch = 4;
    let r = c.send(ApiKey::OffsetCommit, 9, &req).unwrap();
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    let fetch_epoch = |c: &mut KafkaConnection, v: i16| {
        let req = OffsetFetchRequest::default()
            .with_group_id(gid("epochs"))
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(name("t"))
                .with_partition_indexes(vec![0])]));
        let r = c.send(ApiKey::OffsetFetch, v, &req).unwrap();
        let p = &r.topics[0].partitions[0];
        (
            p.committed_offset,
            p.committed_leader_epoch,
            p.metadata.clone(),
        )
    };
    assert_eq!(fetch_epoch(&mut c, 7), (3, 4, Some(s("with-epoch"))));
    assert_eq!(fetch_epoch(&mut c, 4).0, 3);

    // Null topics (v2+): every committed offset.
    let (_, rows) = fetch_offsets(&mut c, 7, "simple", None);
    assert_eq!(rows.len(), 2);
    // v8+: several groups at once, each with its own error.
    let req = OffsetFetchRequest::default().with_groups(vec![
        OffsetFetchRequestGroup::default()
            .with_group_id(gid("simple"))
            .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                .with_name(name("t"))
                .with_partition_indexes(vec![0])])),
        OffsetFetchRequestGroup::default()
            .with_group_id(gid("simple"))
            .with_topics(None),
        OffsetFetchRequestGroup::default()
            .with_group_id(gid(""))
            .with_topics(None),
    ]);
    for v in 8..=9 {
        let r = c.send(ApiKey::OffsetFetch, v, &req).unwrap();
        assert_eq!(r.groups.len(), 3);
        assert_eq!(r.groups[0].topics[0].partitions[0].committed_offset, 5);
        assert_eq!(r.groups[1].topics[0].partitions.len(), 2);
        assert_eq!(r.groups[2].error_code, code(ErrorCode::InvalidGroupId));
    }
    // Group-level errors: top level from v2, on every partition in v1.
    assert_eq!(
        fetch_offsets(&mut c, 2, "", None).0,
        code(ErrorCode::InvalidGroupId)
    );
    let (_, rows) = fetch_offsets(&mut c, 1, "", Some(&[("t", &[0])]));
    assert_eq!(rows[0].4, code(ErrorCode::InvalidGroupId));
    assert_eq!(
        commit(&mut c, 9, "", -1, "", &[("t", 0, 1, "")]),
        vec![code(ErrorCode::InvalidGroupId)]
    );

    // A generation for a group that does not exist.
    assert_eq!(
        commit(&mut c, 8, "ghost", 3, "m", &[("t", 0, 1, "")]),
        vec![code(ErrorCode::IllegalGeneration)]
    );
    assert_eq!(
        commit(&mut c, 9, "ghost", 3, "m", &[("t", 0, 1, "")]),
        vec![code(ErrorCode::GroupIdNotFound)]
    );

    // OffsetDelete removes offsets of an empty group.
    let req = OffsetDeleteRequest::default()
        .with_group_id(gid("simple"))
        .with_topics(vec![
            OffsetDeleteRequestTopic::default()
                .with_name(name("t"))
                .with_partitions(vec![
                    OffsetDeleteRequestPartition::default().with_partition_index(0)
                ]),
            OffsetDeleteRequestTopic::default()
                .with_name(name("missing"))
                .with_partitions(vec![
                    OffsetDeleteRequestPartition::default().with_partition_index(0)
                ]),
        ]);
    let r = c.send(ApiKey::OffsetDelete, 0, &req).unwrap();
    assert_eq!(r.error_code, 0);
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    assert_eq!(
        r.topics[1].partitions[0].error_code,
        code(ErrorCode::UnknownTopicOrPartition)
    );
    let (_, rows) = fetch_offsets(&mut c, 7, "simple", None);
    assert_eq!(rows, vec![("t".into(), 1, 19, "".into(), 0)]);
    let r = c
        .send(
            ApiKey::OffsetDelete,
            0,
            &req.clone().with_group_id(gid("ghost")),
        )
        .unwrap();
    assert_eq!(r.error_code, code(ErrorCode::GroupIdNotFound));
}

#[test]
fn list_and_describe_groups_at_every_version() {
    let (_b, mut c) = started();
    let (member, generation) = join_alone(&mut c, "listed");
    assert_eq!(
        sync(&mut c, "listed", &member, generation, b"a").error_code,
        0
    );
    assert_eq!(
        commit(&mut c, 9, "offsets-only", -1, "", &[("t", 0, 1, "")]),
        vec![0]
    );
    for v in 0..=5 {
        let r = c
            .send(ApiKey::ListGroups, v, &ListGroupsRequest::default())
            .unwrap();
        assert_eq!(r.error_code, 0, "v{v}");
        let mut groups: Vec<_> = r
            .groups
            .iter()
            .map(|g| (g.group_id.0.to_string(), g.protocol_type.to_string()))
            .collect();
        groups.sort();
        assert_eq!(
            groups,
            vec![
                ("listed".into(), "consumer".into()),
                ("offsets-only".into(), "".into())
            ],
            "v{v}"
        );
    }
    let filtered = |c: &mut KafkaConnection, states: &[&str], types: &[&str]| -> Vec<String> {
        let req = ListGroupsRequest::default()
            .with_states_filter(states.iter().map(|x| s(x)).collect())
            .with_types_filter(types.iter().map(|x| s(x)).collect());
        let r = c.send(ApiKey::ListGroups, 5, &req).unwrap();
        let mut ids: Vec<String> = r.groups.iter().map(|g| g.group_id.0.to_string()).collect();
        ids.sort();
        ids
    };
    assert_eq!(
        filtered(&mut c, &["stable"], &[]),
        vec!["listed".to_string()]
    );
    assert_eq!(
        filtered(&mut c, &["Empty"], &["Classic"]),
        vec!["offsets-only".to_string()]
    );
    assert!(filtered(&mut c, &[], &["consumer"]).is_empty());

    for v in 0..=6 {
        let d = describe(&mut c, v, "listed");
        assert_eq!(
            (d.error_code, d.group_state.as_str()),
            (0, "Stable"),
            "v{v}"
        );
        assert_eq!(d.members.len(), 1, "v{v}");
        let missing = describe(&mut c, v, "no-such-group");
        let expected = if v >= 6 {
            code(ErrorCode::GroupIdNotFound)
        } else {
            0
        };
        assert_eq!(
            (missing.error_code, missing.group_state.as_str()),
            (expected, "Dead"),
            "v{v}"
        );
    }
    assert_eq!(
        describe(&mut c, 5, "").error_code,
        code(ErrorCode::InvalidGroupId)
    );
}

#[test]
fn every_join_group_version_gets_a_generation() {
    let (_b, mut c) = started();
    for v in 0..=9 {
        let group = format!("v{v}");
        let mut r = join(&mut c, v, &group, "");
        if v >= 4 {
            assert_eq!(r.error_code, code(ErrorCode::MemberIdRequired), "v{v}");
            r = join(&mut c, v, &group, &r.member_id.to_string());
        }
        assert_eq!((r.error_code, r.generation_id), (0, 1), "v{v}");
        assert_eq!(r.protocol_name.as_deref(), Some("range"), "v{v}");
        assert_eq!(r.members.len(), 1, "v{v}");
        let r = sync(&mut c, &group, &r.member_id.to_string(), 1, b"a");
        assert_eq!(r.error_code, 0, "v{v}");
    }
}

#[test]
fn groups_and_offsets_survive_kill_9() {
    let (mut b, mut c) = started();
    let (member, generation) = join_alone(&mut c, "durable");
    assert_eq!(
        sync(&mut c, "durable", &member, generation, b"a").error_code,
        0
    );
    assert_eq!(
        commit(
            &mut c,
            9,
            "durable",
            generation,
            &member,
            &[("t", 0, 42, "meta"), ("t", 1, 7, "")]
        ),
        vec![0, 0]
    );
    // More history than the coordinator reads at once (4 MiB): the last
    // commit wins after the reload.
    let metadata = "m".repeat(4000);
    for offset in 0..1200 {
        assert_eq!(
            commit(&mut c, 9, "history", -1, "", &[("t", 1, offset, &metadata)]),
            vec![0]
        );
    }
    b.kill();
    b.spawn().unwrap();
    b.wait_ready(std::time::Duration::from_secs(30)).unwrap();
    let mut c = connect(&b);
    coordinator_ready(&mut c);
    let (_, rows) = fetch_offsets(&mut c, 7, "durable", None);
    assert_eq!(
        rows,
        vec![
            ("t".into(), 0, 42, "meta".into(), 0),
            ("t".into(), 1, 7, "".into(), 0)
        ]
    );
    let (_, rows) = fetch_offsets(&mut c, 7, "history", None);
    let last: Vec<_> = rows
        .iter()
        .map(|(t, p, o, m, e)| (t.as_str(), *p, *o, *m == metadata, *e))
        .collect();
    assert_eq!(last, vec![("t", 1, 1199, true, 0)]);
    // The member is remembered with its generation until its session ends.
    let d = describe(&mut c, 5, "durable");
    assert_eq!(d.group_state.as_str(), "Stable");
    assert_eq!(d.members[0].member_id.as_str(), member);
    assert_eq!(heartbeat(&mut c, "durable", &member, generation), 0);
}
