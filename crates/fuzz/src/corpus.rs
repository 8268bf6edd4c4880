//! Where a campaign's seeds come from: the corpus files in the repository
//! (`crates/fuzz/corpus/<target>/`: frames captured from real clients,
//! files from a real broker's data directory, and every input that ever
//! broke a target, named `crash-*`), plus seeds generated here from the
//! code's own encoders (a default request of every served API and
//! version, batches of every codec, `__consumer_offsets` records, quorum
//! RPC frames).

use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use strom_controller::quorum_election::PreVoteRequest;
use strom_controller::rpc::{RpcEnvelope, RpcRequest, RpcResponse, RPC_API_KEY};
use strom_controller::snapshot::SnapshotContents;
use strom_coordinator::offsets_topic::{OffsetCommitValue, OffsetsRecord};
use strom_metadata::MetadataImage;
use strom_protocol::batch::records_payload;
use strom_protocol::batch_builder::{BatchBuilder, RecordSpec};

use crate::targets::registry;

/// The corpus folder of `target` in the repository.
pub fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target)
}

/// The corpus files of `target`, by name.
pub fn corpus_files(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(corpus_dir(target)) else {
        return Vec::new();
    };
    let mut files: Vec<(PathBuf, Vec<u8>)> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter_map(|p| std::fs::read(&p).ok().map(|bytes| (p, bytes)))
        .collect();
    files.sort();
    files
}

/// Every seed of `target`: its corpus files and its generated seeds.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = corpus_files(target).into_iter().map(|(_, b)| b).collect();
    seeds.extend(generated(target));
    if seeds.is_empty() {
        seeds.push(Vec::new());
    }
    seeds
}

/// The seeds generated from the code's encoders for `target`.
pub fn generated(target: &str) -> Vec<Vec<u8>> {
    match target {
        "request" => request_frames(),
        "frame" => request_frames()
            .chunks(2)
            .map(|pair| {
                let mut bytes = Vec::new();
                for body in pair {
                    bytes.extend_from_slice(&(body.len() as i32).to_be_bytes());
                    bytes.extend_from_slice(body);
                }
                bytes
            })
            .collect(),
        "record_batch" | "validate" => batches().into_iter().map(|(_, b)| b).collect(),
        "gzip" => codec_payloads(Compression::Gzip),
        "snappy" => codec_payloads(Compression::Snappy),
        "lz4" => codec_payloads(Compression::Lz4),
        "zstd" => codec_payloads(Compression::Zstd),
        "offsets_record" => offsets_batches(),
        "quorum_rpc" => rpc_frames(),
        "controller_snapshot" => controller_snapshots(),
        _ => Vec::new(),
    }
}

/// A request frame's body (header and request) for every served API and
/// version, each request at its defaults.
pub fn request_frames() -> Vec<Vec<u8>> {
    registry()
        .default_requests()
        .into_iter()
        .filter_map(|(key, version, body)| {
            let api = ApiKey::try_from(key).ok()?;
            let header = RequestHeader::default()
                .with_request_api_key(key)
                .with_request_api_version(version)
                .with_correlation_id(1)
                .with_client_id(Some(StrBytes::from_static_str("strom-fuzz")));
            let mut out = BytesMut::new();
            header
                .encode(&mut out, api.request_header_version(version))
                .ok()?;
            out.extend_from_slice(&body);
            Some(out.to_vec())
        })
        .collect()
}

fn sample_records() -> Vec<Record> {
    (0..3)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i,
            sequence: i as i32 - 1,
            timestamp: 1_700_000_000_000 + i,
            key: (i != 1).then(|| Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(format!("value {i} ").repeat(20))),
            headers: Default::default(),
        })
        .collect()
}

/// Record batches as producers send them: uncompressed with keys, values
/// and headers, and one per codec.
pub fn batches() -> Vec<(Compression, Vec<u8>)> {
    let mut builder = BatchBuilder::of_values(1_700_000_000_000, &[b"a", b"", b"ccc"]);
    if let Some(r) = builder.records.first_mut() {
        r.headers = vec![("h".into(), Some(b"v".to_vec())), ("n".into(), None)];
    }
    builder.records.push(RecordSpec {
        key: Some(Bytes::from_static(b"k")),
        value: None,
        timestamp_delta: 3,
        ..Default::default()
    });
    let mut out = vec![(Compression::None, builder.build())];
    for compression in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression,
        };
        if RecordBatchEncoder::encode(&mut buf, &sample_records(), &options).is_ok() {
            out.push((compression, buf.to_vec()));
        }
    }
    out
}

fn codec_payloads(codec: Compression) -> Vec<Vec<u8>> {
    batches()
        .into_iter()
        .filter(|(c, _)| *c == codec)
        .map(|(_, b)| records_payload(&b).to_vec())
        .collect()
}

fn offsets_batches() -> Vec<Vec<u8>> {
    let records = [
        OffsetsRecord::Offset {
            group: "group".into(),
            topic: "topic".into(),
            partition: 3,
            value: Some(OffsetCommitValue {
                offset: 42,
                leader_epoch: 1,
                metadata: "meta".into(),
                commit_timestamp: 1_700_000_000_000,
            }),
        },
        OffsetsRecord::Offset {
            group: "group".into(),
            topic: "topic".into(),
            partition: 4,
            value: None,
        },
        OffsetsRecord::Group {
            group: "group".into(),
            value: None,
        },
    ];
    let batch = BatchBuilder::of_records(
        1_700_000_000_000,
        records
            .iter()
            .map(|r| (Some(r.encode_key()), r.encode_value())),
    )
    .build();
    let single = records
        .iter()
        .map(|r| {
            let key = r.encode_key();
            let mut one = vec![key.len().min(255) as u8];
            one.extend_from_slice(&key);
            one.extend_from_slice(&r.encode_value().unwrap_or_default());
            one
        })
        .collect::<Vec<_>>();
    std::iter::once(batch).chain(single).collect()
}

fn rpc_frame(prefix: &[u8], body: &[u8]) -> Vec<u8> {
    let mut frame = ((prefix.len() + body.len()) as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(prefix);
    frame.extend_from_slice(body);
    frame
}

fn rpc_frames() -> Vec<Vec<u8>> {
    let mut request_prefix = RPC_API_KEY.to_be_bytes().to_vec();
    request_prefix.extend_from_slice(&0i16.to_be_bytes());
    request_prefix.extend_from_slice(&7i32.to_be_bytes());
    let requests = [
        RpcRequest::ElectNow,
        RpcRequest::ObserverLink,
        RpcRequest::PreVote(PreVoteRequest {
            candidate: 2,
            term: 5,
            last_log_id: None,
        }),
    ];
    let mut frames: Vec<Vec<u8>> = requests
        .into_iter()
        .filter_map(|request| {
            serde_json::to_vec(&RpcEnvelope {
                cluster_id: "MkU3OEVBNTcwNTJENDM2Qk".into(),
                from: 1,
                request,
            })
            .ok()
        })
        .map(|body| rpc_frame(&request_prefix, &body))
        .collect();
    let responses = [
        RpcResponse::ElectNow(true),
        RpcResponse::ObserverLink,
        RpcResponse::Refused("another cluster".into()),
    ];
    frames.extend(
        responses
            .iter()
            .filter_map(|r| serde_json::to_vec(r).ok())
            .map(|body| rpc_frame(&7i32.to_be_bytes(), &body)),
    );
    frames
}

/// A snapshot file's JSON body (the target frames it) and a whole file, of
/// an empty image.
fn controller_snapshots() -> Vec<Vec<u8>> {
    let contents = SnapshotContents {
        meta: Default::default(),
        image: MetadataImage::default().to_snapshot(),
    };
    let mut seeds: Vec<Vec<u8>> = serde_json::to_vec(&contents).ok().into_iter().collect();
    seeds.extend(strom_controller::snapshot::encode(&contents).ok());
    seeds
}
