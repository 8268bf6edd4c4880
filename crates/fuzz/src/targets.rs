//! The fuzz targets: one function per decoder of input Strom does not
//! control, each taking raw bytes. A target must never panic, abort or
//! hang, whatever the bytes; where a decoder promises more (a frame never
//! larger than the limit, a decompressed batch never larger than its
//! bound) the target checks that too, with an assertion a campaign reports
//! like a panic.
//!
//! | target | decoder | input |
//! | --- | --- | --- |
//! | `frame` | `strom_protocol::frame::split_frame` | bytes as they arrive on a connection |
//! | `request` | `decode_request_header`, then the served handler's request decoder at that version (`HandlerRegistry::decode_only`: every served API and version, Kafka 3.9's schemas included) | a frame's body |
//! | `record_batch` | batch header view, CRC check, `BatchIter`, `validate_records`, `RecordIter` | a produce's records |
//! | `validate` | `storage::validate::validate_client_records` (Kafka's LogValidator, decompression included) | a produce's records |
//! | `gzip`, `snappy`, `lz4`, `zstd` | `compression::decompressing_reader` | a batch's compressed payload |
//! | `offsets_record` | `kafka-protocol`'s `RecordBatchDecoder`, then `OffsetsRecord::decode` on each record | a `__consumer_offsets` batch |
//! | `metadata_record` | `MetadataRecord::from_json` | a metadata record value |
//! | `raft_entry` | `raft_log::decode_entry` | a metadata log batch |
//! | `controller_snapshot` | `controller::snapshot::decode` | a metadata snapshot file |
//! | `producer_snapshot` | `ProducerStateManager::decode_snapshot` | a `.snapshot` file |
//! | `offset_checkpoint` | `storage::checkpoint::read_checkpoint` | a recovery-point or log-start checkpoint file |
//! | `leader_epoch_checkpoint` | `LeaderEpochCache::load` | a `leader-epoch-checkpoint` file |
//! | `meta_properties` | `MetaProperties::read` | a `meta.properties` file |
//! | `partition_metadata` | `read_partition_metadata` | a `partition.metadata` file |
//! | `quorum_state` | `QuorumStateFile::open` | a `quorum-state` file |
//! | `quorum_rpc` | `controller::rpc::read_request`/`read_response`, then the JSON envelope and answer | bytes on the controller listener |

use std::cell::RefCell;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{Compression, RecordBatchDecoder};
use strom_config::TopicConfig;
use strom_controller::quorum_state::QuorumStateFile;
use strom_controller::rpc::{self, RpcEnvelope, RpcResponse};
use strom_coordinator::offsets_topic::OffsetsRecord;
use strom_metadata::MetadataRecord;
use strom_protocol::batch::{check_batch, records_payload, BatchHeader, BatchIter};
use strom_protocol::compression::{decompressing_reader, MAX_DECOMPRESSED_BATCH_BYTES};
use strom_protocol::frame::{split_frame, FrameStatus};
use strom_protocol::header::decode_request_header;
use strom_protocol::records::{validate_records, RecordIter};
use strom_server::registry::HandlerRegistry;
use strom_storage::leader_epoch::{LeaderEpochCache, LEADER_EPOCH_CHECKPOINT_FILE};
use strom_storage::log::{read_partition_metadata, PARTITION_METADATA_FILE};
use strom_storage::meta_properties::{MetaProperties, META_PROPERTIES_FILE};
use strom_storage::producer_state::ProducerStateManager;

/// One fuzz target.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Its name: the corpus folder and the command-line name.
    pub name: &'static str,
    /// Runs the decoder on one input.
    pub run: fn(&[u8]),
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "frame",
        run: frame,
    },
    Target {
        name: "request",
        run: request,
    },
    Target {
        name: "record_batch",
        run: record_batch,
    },
    Target {
        name: "validate",
        run: validate,
    },
    Target {
        name: "gzip",
        run: gzip,
    },
    Target {
        name: "snappy",
        run: snappy,
    },
    Target {
        name: "lz4",
        run: lz4,
    },
    Target {
        name: "zstd",
        run: zstd,
    },
    Target {
        name: "offsets_record",
        run: offsets_record,
    },
    Target {
        name: "metadata_record",
        run: metadata_record,
    },
    Target {
        name: "raft_entry",
        run: raft_entry,
    },
    Target {
        name: "controller_snapshot",
        run: controller_snapshot,
    },
    Target {
        name: "producer_snapshot",
        run: producer_snapshot,
    },
    Target {
        name: "offset_checkpoint",
        run: offset_checkpoint,
    },
    Target {
        name: "leader_epoch_checkpoint",
        run: leader_epoch_checkpoint,
    },
    Target {
        name: "meta_properties",
        run: meta_properties,
    },
    Target {
        name: "partition_metadata",
        run: partition_metadata,
    },
    Target {
        name: "quorum_state",
        run: quorum_state,
    },
    Target {
        name: "quorum_rpc",
        run: quorum_rpc,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|t| t.name == name).copied()
}

/// The frame limit the `frame` target splits with.
pub const FRAME_TARGET_MAX_BYTES: usize = 64 << 10;

/// How much of a decompressed payload the codec targets read: enough to
/// cross every codec's block boundaries, small enough for many executions
/// per second (the bound itself is checked by `validate`).
pub const CODEC_TARGET_READ_BYTES: u64 = 1 << 20;

/// The served APIs, as the broker registers them.
pub fn registry() -> &'static HandlerRegistry {
    static REGISTRY: OnceLock<HandlerRegistry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut registry = HandlerRegistry::new();
        strom_server::handlers::register_all(&mut registry);
        registry
    })
}

fn frame(input: &[u8]) {
    let mut buf = BytesMut::from(input);
    loop {
        match split_frame(&mut buf, FRAME_TARGET_MAX_BYTES) {
            Ok(FrameStatus::Frame(f)) => {
                assert!(f.len() <= FRAME_TARGET_MAX_BYTES, "frame over the limit")
            }
            Ok(FrameStatus::NeedBytes(n)) => {
                assert!(n > buf.len(), "asks for bytes it already has");
                return;
            }
            Err(_) => return,
        }
    }
}

fn request(input: &[u8]) {
    let mut frame = Bytes::copy_from_slice(input);
    if let Ok((api, header)) = decode_request_header(&mut frame) {
        let _ = registry().decode_only(api, header.request_api_version, frame);
    }
}

/// `input` with the CRC of the batch at its front recomputed, when it is
/// long enough to hold one.
fn with_batch_crc(input: &[u8]) -> Option<Vec<u8>> {
    let length = i32::from_be_bytes(input.get(8..12)?.try_into().ok()?);
    let end = (12 + usize::try_from(length).ok()?).min(input.len());
    let batch = input.get(..end).filter(|b| b.len() >= 21)?;
    let crc = strom_protocol::batch::compute_crc(batch);
    let mut fixed = input.to_vec();
    fixed.get_mut(17..21)?.copy_from_slice(&crc.to_be_bytes());
    Some(fixed)
}

/// Runs `decode` on `input` and on `input` with its batch CRC made right.
fn as_is_and_crc_fixed(input: &[u8], decode: impl Fn(&[u8])) {
    decode(input);
    if let Some(fixed) = with_batch_crc(input) {
        decode(&fixed);
    }
}

fn record_batch(input: &[u8]) {
    as_is_and_crc_fixed(input, walk_batches)
}

fn walk_batches(input: &[u8]) {
    let _ = BatchHeader::parse(input);
    let _ = check_batch(input);
    for item in BatchIter::new(input) {
        let Ok((position, header)) = item else { return };
        let batch = input
            .get(position..position + header.size_bytes())
            .unwrap_or_else(|| panic!("BatchIter yielded a batch past the buffer"));
        let payload = records_payload(batch);
        let _ = validate_records(payload, &header);
        for record in RecordIter::new(payload).take(100_000) {
            if record.is_err() {
                break;
            }
        }
    }
}

fn validate(input: &[u8]) {
    as_is_and_crc_fixed(input, |input| {
        static CONFIG: OnceLock<TopicConfig> = OnceLock::new();
        let config = CONFIG.get_or_init(TopicConfig::kafka_defaults);
        let records = Bytes::copy_from_slice(input);
        if let Ok(batch) = strom_storage::validate::validate_client_records(&records, config, 9, 0)
        {
            assert!(
                check_batch(&batch).is_ok(),
                "validation passed a corrupt batch"
            );
        }
    })
}

fn decompress(compression: Compression, input: &[u8]) {
    if let Ok(reader) = decompressing_reader(compression, input) {
        let _ = std::io::copy(
            &mut reader.take(CODEC_TARGET_READ_BYTES),
            &mut std::io::sink(),
        );
    }
    // The whole stream, for small inputs: the bound must hold.
    if input.len() <= 256 {
        if let Ok(reader) = decompressing_reader(compression, input) {
            let mut reader = reader.take(MAX_DECOMPRESSED_BATCH_BYTES + 1);
            if let Ok(n) = std::io::copy(&mut reader, &mut std::io::sink()) {
                assert!(
                    n <= MAX_DECOMPRESSED_BATCH_BYTES,
                    "decompressed past the bound"
                );
            }
        }
    }
}

fn gzip(input: &[u8]) {
    decompress(Compression::Gzip, input)
}

fn snappy(input: &[u8]) {
    decompress(Compression::Snappy, input)
}

fn lz4(input: &[u8]) {
    decompress(Compression::Lz4, input)
}

fn zstd(input: &[u8]) {
    decompress(Compression::Zstd, input)
}

fn offsets_record(input: &[u8]) {
    // As the group coordinator replays its partition.
    as_is_and_crc_fixed(input, |input| {
        let mut batch = Bytes::copy_from_slice(input);
        if let Ok(set) = RecordBatchDecoder::decode(&mut batch) {
            for r in set.records {
                if let Some(key) = r.key.as_deref() {
                    let _ = OffsetsRecord::decode(key, r.value.as_deref());
                }
            }
        }
    });
    // And one record on its own: [key length][key][value].
    if let Some((&key_len, rest)) = input.split_first() {
        let (key, value) = rest.split_at((key_len as usize).min(rest.len()));
        let _ = OffsetsRecord::decode(key, Some(value));
        let _ = OffsetsRecord::decode(key, None);
    }
}

fn metadata_record(input: &[u8]) {
    let _ = MetadataRecord::from_json(input);
}

fn raft_entry(input: &[u8]) {
    as_is_and_crc_fixed(input, |input| {
        if let Ok(header) = BatchHeader::parse(input) {
            let _ =
                strom_controller::raft_log::decode_entry(&header, Bytes::copy_from_slice(input));
        }
    })
}

fn controller_snapshot(input: &[u8]) {
    let _ = strom_controller::snapshot::decode(input);
    // The input as the JSON body under a header that matches it.
    let mut framed = format!(
        "strom-metadata-snapshot 1 {} {:08x}\n",
        input.len(),
        crc32c::crc32c(input)
    )
    .into_bytes();
    framed.extend_from_slice(input);
    let _ = strom_controller::snapshot::decode(&framed);
}

fn producer_snapshot(input: &[u8]) {
    let _ = ProducerStateManager::decode_snapshot(input);
    // Version, then the CRC of what follows it.
    if let Some(body) = input.get(6..) {
        let mut fixed = input.to_vec();
        if let Some(slot) = fixed.get_mut(2..6) {
            slot.copy_from_slice(&crc32c::crc32c(body).to_be_bytes());
            let _ = ProducerStateManager::decode_snapshot(&fixed);
        }
    }
}

thread_local! {
    static SCRATCH: RefCell<Option<tempfile::TempDir>> = const { RefCell::new(None) };
}

/// Writes `input` as `file_name` in this thread's scratch directory and
/// runs `read` on that directory.
fn with_file(file_name: &str, input: &[u8], read: impl FnOnce(&Path)) {
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        if scratch.is_none() {
            *scratch = tempfile::tempdir().ok();
        }
        let Some(dir) = scratch.as_ref().map(|d| d.path().to_path_buf()) else {
            return;
        };
        // A previous input may have left other files behind.
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        let path: PathBuf = dir.join(file_name);
        if std::fs::write(&path, input).is_ok() {
            read(&dir);
        }
    })
}

fn offset_checkpoint(input: &[u8]) {
    with_file("recovery-point-offset-checkpoint", input, |dir| {
        let _ = strom_storage::checkpoint::read_checkpoint(
            &dir.join("recovery-point-offset-checkpoint"),
        );
    })
}

fn leader_epoch_checkpoint(input: &[u8]) {
    with_file(LEADER_EPOCH_CHECKPOINT_FILE, input, |dir| {
        let _ = LeaderEpochCache::load(dir);
    })
}

fn meta_properties(input: &[u8]) {
    with_file(META_PROPERTIES_FILE, input, |dir| {
        let _ = MetaProperties::read(dir);
    })
}

fn partition_metadata(input: &[u8]) {
    with_file(PARTITION_METADATA_FILE, input, |dir| {
        let _ = read_partition_metadata(dir);
    })
}

fn quorum_state(input: &[u8]) {
    with_file(
        strom_controller::quorum_state::QUORUM_STATE_FILE,
        input,
        |dir| {
            let _ = QuorumStateFile::open(dir);
        },
    )
}

thread_local! {
    static RUNTIME: Option<tokio::runtime::Runtime> = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .ok();
}

fn quorum_rpc(input: &[u8]) {
    RUNTIME.with(|rt| {
        let Some(rt) = rt else { return };
        rt.block_on(async {
            let mut request = input;
            if let Ok((_, body)) = rpc::read_request(&mut request).await {
                let _ = serde_json::from_slice::<RpcEnvelope>(&body);
            }
            let mut response = input;
            if let Ok((_, body)) = rpc::read_response(&mut response).await {
                let _ = serde_json::from_slice::<RpcResponse>(&body);
            }
        })
    })
}
