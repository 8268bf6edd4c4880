//! The Kafka wire protocol against a real broker process: ApiVersions and
//! KIP-511, framing limits, bad input that must close one connection and
//! leave the broker serving everybody else, and pipelining.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;
use kafka_protocol::messages::*;
use strom_protocol::ErrorCode;
use strom_test_utils::{api_versions_request, KafkaConnection};

#[test]
fn api_versions_every_version_and_no_default_tagged_fields() {
    let b = broker(&[]);
    let mut c = connect(&b);
    for v in 0..=4 {
        let r = c
            .send(ApiKey::ApiVersions, v, &api_versions_request())
            .unwrap();
        assert_eq!(r.error_code, 0, "v{v}");
        let keys: Vec<i16> = r.api_keys.iter().map(|k| k.api_key).collect();
        for key in [0, 1, 2, 3, 18, 19, 20, 32, 37, 60] {
            assert!(keys.contains(&key), "v{v} lacks api key {key}: {keys:?}");
        }
        let produce = r.api_keys.iter().find(|k| k.api_key == 0).unwrap();
        assert_eq!((produce.min_version, produce.max_version), (0, 13));
        assert!(r.supported_features.is_empty() && r.finalized_features.is_empty());
    }
    // A v3 response must end with an empty tagged-field section: librdkafka
    // 2.0 cannot read features written at their defaults.
    let (cid, frame) = c
        .encode_request(ApiKey::ApiVersions, 3, &api_versions_request())
        .unwrap();
    c.send_raw(&frame).unwrap();
    let raw = c.recv_frame().unwrap().unwrap();
    assert_eq!(&raw[..4], &cid.to_be_bytes());
    assert_eq!(
        *raw.last().unwrap(),
        0,
        "tagged fields of the ApiVersions v3 body must be empty"
    );
}

#[test]
fn kip_511_unknown_api_versions_version_gets_a_v0_answer() {
    let b = broker(&[]);
    let mut c = connect(&b);
    // As kafka-python 3 does: a version newer than the broker knows.
    // The body is v4's; the header says v5 (the broker must not parse it).
    let (cid, mut frame) = c
        .encode_request(ApiKey::ApiVersions, 4, &api_versions_request())
        .unwrap();
    frame[6..8].copy_from_slice(&5i16.to_be_bytes());
    c.send_raw(&frame).unwrap();
    let raw = c.recv_frame().unwrap().unwrap();
    let r: ApiVersionsResponse =
        KafkaConnection::decode_response(ApiKey::ApiVersions, 0, cid, raw).unwrap();
    assert_eq!(r.error_code, ErrorCode::UnsupportedVersion.code());
    assert_eq!(r.api_keys.len(), 1);
    assert_eq!((r.api_keys[0].api_key, r.api_keys[0].max_version), (18, 4));
    // The connection stays usable for the retry.
    assert_eq!(
        c.send(ApiKey::ApiVersions, 3, &api_versions_request())
            .unwrap()
            .error_code,
        0
    );
}

#[test]
fn invalid_client_software_name_is_invalid_request() {
    let b = broker(&[]);
    let mut c = connect(&b);
    let req = ApiVersionsRequest::default()
        .with_client_software_name("bad name!".into())
        .with_client_software_version("1".into());
    let r = c.send(ApiKey::ApiVersions, 3, &req).unwrap();
    assert_eq!(r.error_code, ErrorCode::InvalidRequest.code());
}

/// Sends `bytes` on a new connection and asserts the broker closes it,
/// then that another client is still served.
fn assert_closes_and_survives(b: &strom_test_utils::BrokerProcess, bytes: &[u8], what: &str) {
    let mut bad = connect(b);
    bad.send_raw(bytes).unwrap();
    assert!(
        bad.is_closed_by_peer(),
        "{what}: the connection should be closed"
    );
    let mut good = connect(b);
    let r = good
        .send(ApiKey::Metadata, 12, &MetadataRequest::default())
        .unwrap();
    assert_eq!(r.brokers.len(), 1, "{what}: broker must keep serving");
}

#[test]
fn bad_frames_close_only_their_connection() {
    let b = broker(&["socket.request.max.bytes=1048576"]);
    // A client that stays connected throughout.
    let mut bystander = connect(&b);
    let frame = |body: &[u8]| {
        let mut f = (body.len() as i32).to_be_bytes().to_vec();
        f.extend_from_slice(body);
        f
    };
    assert_closes_and_survives(&b, &(-5i32).to_be_bytes(), "negative size");
    assert_closes_and_survives(&b, &(2_000_000i32).to_be_bytes(), "oversize frame");
    assert_closes_and_survives(&b, &(i32::MAX).to_be_bytes(), "2 GiB frame");
    assert_closes_and_survives(&b, &frame(&[1, 2, 3]), "frame smaller than a header");
    assert_closes_and_survives(
        &b,
        &frame(&[0x27, 0x0f, 0, 0, 0, 0, 0, 1, 0, 0]),
        "unknown api key 9999",
    );
    // Metadata v99: a version nobody knows.
    assert_closes_and_survives(
        &b,
        &frame(&[0, 3, 0, 99, 0, 0, 0, 1, 0, 0]),
        "unsupported version",
    );
    // Produce v2: advertised for librdkafka's feature checks, never served.
    assert_closes_and_survives(
        &b,
        &frame(&[0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 1]),
        "produce v2",
    );
    // A Metadata v9 header whose body is cut short.
    assert_closes_and_survives(
        &b,
        &frame(&[0, 3, 0, 9, 0, 0, 0, 1, 0, 1, b'x', 0, 5]),
        "truncated body",
    );
    // Array counts claiming billions of elements (the decoder reserves
    // capacity from them): Metadata v0 with 2^31-1 topics, and Metadata v12
    // with a compact count of 2^32-2.
    assert_closes_and_survives(
        &b,
        &frame(&[0, 3, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff]),
        "array count bomb",
    );
    assert_closes_and_survives(
        &b,
        &frame(&[
            0, 3, 0, 12, 0, 0, 0, 1, 0xff, 0xff, 0, 0xff, 0xff, 0xff, 0xff, 0x0f,
        ]),
        "compact array count bomb",
    );
    let mut garbage = vec![0u8; 4096];
    for (i, x) in garbage.iter_mut().enumerate() {
        *x = (i * 7919 % 251) as u8;
    }
    assert_closes_and_survives(&b, &frame(&garbage), "garbage body");
    let r = bystander
        .send(ApiKey::ApiVersions, 3, &api_versions_request())
        .unwrap();
    assert_eq!(r.error_code, 0);
}

/// Array counts claiming billions of elements in frames of a few bytes, of
/// every array shape the decoders have: a top-level array (Metadata v0), a
/// compact one (Metadata v12), one nested in another (Produce v3's
/// partitions), and arrays of the Kafka 3.9 schemas kept for versions
/// Kafka 4 removed (CreateTopics v0, DescribeConfigs v0). The broker runs
/// under a 4 GiB address-space limit, as on a host that does not overcommit
/// memory: a decoder that reserved capacity from the count would ask for
/// tens of gigabytes and abort the process. Each request must only close
/// its own connection.
#[test]
fn count_bombs_fail_to_decode_under_an_address_space_limit() {
    const ADDRESS_SPACE_LIMIT_BYTES: u64 = 4 << 30;
    let mut b = strom_test_utils::BrokerProcess::prepare(
        BIN,
        strom_test_utils::free_port(),
        &[],
        "info,strom_server=debug",
    )
    .unwrap();
    b.address_space_limit_bytes = Some(ADDRESS_SPACE_LIMIT_BYTES);
    b.spawn().unwrap();
    let frame = |body: &[u8]| {
        let mut f = (body.len() as i32).to_be_bytes().to_vec();
        f.extend_from_slice(body);
        f
    };
    // Header v1: api key, version, correlation id 1, null client id.
    let header = |api: u8, version: u8| vec![0, api, 0, version, 0, 0, 0, 1, 0xff, 0xff];
    let billions = [0x7f, 0xff, 0xff, 0xff];
    let mut metadata_v0 = header(3, 0);
    metadata_v0.extend_from_slice(&billions);
    // Header v2 adds empty tagged fields; 2^32 - 2 as a compact count.
    let mut metadata_v12 = header(3, 12);
    metadata_v12.extend_from_slice(&[0, 0xff, 0xff, 0xff, 0xff, 0x0f]);
    // Null transactional id, acks 1, timeout 1 s, one topic "x" with
    // billions of partitions.
    let mut produce_v3 = header(0, 3);
    produce_v3.extend_from_slice(&[0xff, 0xff, 0, 1, 0, 0, 0x03, 0xe8, 0, 0, 0, 1, 0, 1, b'x']);
    produce_v3.extend_from_slice(&billions);
    let mut create_topics_v0 = header(19, 0);
    create_topics_v0.extend_from_slice(&billions);
    let mut describe_configs_v0 = header(32, 0);
    describe_configs_v0.extend_from_slice(&billions);
    for (body, what) in [
        (metadata_v0, "Metadata v0"),
        (metadata_v12, "Metadata v12 (compact)"),
        (produce_v3, "Produce v3 (nested)"),
        (create_topics_v0, "CreateTopics v0 (Kafka 3.9 schema)"),
        (describe_configs_v0, "DescribeConfigs v0 (Kafka 3.9 schema)"),
    ] {
        assert_closes_and_survives(&b, &frame(&body), what);
        assert!(b.is_running(), "{what}: the broker died:\n{}", b.log());
    }
    assert!(
        !b.log().contains("memory allocation"),
        "an allocation failed:\n{}",
        b.log()
    );
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let b = broker(&[]);
    let mut c = connect(&b);
    let mut all = Vec::new();
    let mut ids = Vec::new();
    for i in 0..50 {
        let (cid, f) = if i % 2 == 0 {
            c.encode_request(ApiKey::ApiVersions, 3, &api_versions_request())
                .unwrap()
        } else {
            c.encode_request(ApiKey::Metadata, 12, &MetadataRequest::default())
                .unwrap()
        };
        ids.push(cid);
        all.extend_from_slice(&f);
    }
    c.send_raw(&all).unwrap();
    for cid in ids {
        let raw = c.recv_frame().unwrap().unwrap();
        // Both response headers start with the correlation id.
        assert_eq!(&raw[..4], &cid.to_be_bytes());
    }
}
