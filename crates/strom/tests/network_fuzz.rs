//! Mutated frames of every served API and version, from many connections
//! at once, against a live broker (`strom_fuzz::net`): it must stay up,
//! log no panic, keep answering a well-behaved client, and keep its memory
//! within its request budget plus a stated overhead. A short campaign runs
//! here; the README has the figures of a long one
//! (`strom-fuzz net --frames 10000000`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::time::Duration;

use common::*;
use kafka_protocol::messages::*;
use strom_fuzz::net::{self, NetConfig};

/// How long the campaign runs.
const CAMPAIGN: Duration = Duration::from_secs(20);
/// The broker's request budget in this test.
const REQUEST_BUDGET_BYTES: u64 = 16 << 20;
/// What the broker may use beyond its idle size and request budget while
/// it serves the campaign: response buffers of the connections in flight,
/// the topics' indexes and the allocator's slack.
const OVERHEAD_BYTES: u64 = 160 << 20;

#[test]
fn mutated_frames_from_many_connections_leave_the_broker_up_and_within_budget() {
    let mut b = broker(&[
        "auto.create.topics.enable=false",
        "socket.request.max.bytes=1048576",
        &format!("queued.max.request.bytes={REQUEST_BUDGET_BYTES}"),
    ]);
    let mut good = connect(&b);
    // The topics the captured client frames name, so mutated produces and
    // fetches reach real partitions.
    for topic in ["kcat-topic", "ck-topic", "kp-topic"] {
        create_topic(&mut good, topic, 2, &[]);
    }
    let pid = b.pid().unwrap();
    let idle_kib = status_kib(pid, "VmRSS");
    let report = net::run(&NetConfig {
        address: b.bootstrap(),
        connections: 16,
        frames: u64::MAX,
        max_duration: CAMPAIGN,
        seed: std::env::var("STROM_FUZZ_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1),
    })
    .unwrap();
    eprintln!("{report:?}");
    assert!(report.frames_sent > 10_000, "too few frames: {report:?}");
    assert!(
        report.answered > 1_000,
        "hardly any frame decoded: {report:?}"
    );
    assert!(b.is_running(), "the broker died:\n{}", b.log());
    let peak_kib = status_kib(pid, "VmHWM");
    let log = b.log();
    assert!(!log.contains("panicked"), "the broker panicked:\n{log}");
    let r = good
        .send(ApiKey::Metadata, 12, &MetadataRequest::default())
        .unwrap();
    assert_eq!(r.brokers.len(), 1);
    let limit_kib = idle_kib + (REQUEST_BUDGET_BYTES + OVERHEAD_BYTES) / 1024;
    eprintln!("RSS idle {idle_kib} KiB, peak {peak_kib} KiB, limit {limit_kib} KiB");
    assert!(
        peak_kib <= limit_kib,
        "peak RSS {peak_kib} KiB over idle {idle_kib} KiB + budget + overhead"
    );
}
