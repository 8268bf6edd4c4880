//! The broker-wide request budget (`queued.max.request.bytes`,
//! `queued.max.requests`) against a real broker process: many connections
//! each sending a large request and holding back its last byte cannot make
//! the broker hold more than the budget; a well-behaved client is still
//! answered while they hold it; once they finish their requests, all of them
//! are served, a budget's worth at a time.
//!
//! Memory is the broker's, read from `/proc/<pid>/status`: `VmRSS` at idle,
//! then `VmHWM` (the peak, reset through `/proc/<pid>/clear_refs` after the
//! idle reading) while the hostile clients run. The same clients against a
//! broker without a bytes budget (Kafka's default, -1) must push the peak far
//! past the bound, or the bound would prove nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use strom_test_utils::{api_versions_request, metric_value, wait_until, BrokerProcess};

const MIB: u64 = 1 << 20;
/// `queued.max.request.bytes` of the budgeted broker.
const BUDGET_BYTES: u64 = 8 * MIB;
/// `socket.request.max.bytes`: Kafka requires the budget to be at least it.
const MAX_FRAME_BYTES: u64 = 8 * MIB;
/// Each hostile request: an ApiVersions whose client software name is this
/// long, so two fit the budget with room to spare for small requests.
const HOSTILE_NAME_BYTES: usize = 3 * MIB as usize;
const HOSTILE_CONNECTIONS: usize = 64;
/// What the broker may hold beyond the budget while the hostile clients
/// run: the 64 connection tasks and their 4-byte size prefixes, the
/// response being built, allocator slack. Measured (debug build, 2026-12):
/// idle 19.8 MiB; +6.2 MiB while two frames hold the budget; +18 MiB at the
/// peak of the whole run, once frames are served two at a time (glibc keeps
/// freed multi-MiB chunks in its per-thread arenas). Without the budget the
/// same clients add 192 MiB.
const OVERHEAD_BYTES: u64 = 24 * MIB;
const DEADLINE: Duration = Duration::from_secs(60);

/// Kibibytes of a `/proc/<pid>/status` field.
fn metric(b: &BrokerProcess, series: &str) -> f64 {
    let (_, text) = b.http_get("/metrics").unwrap();
    metric_value(&text, series).unwrap_or_else(|| panic!("no {series} in:\n{text}"))
}

/// One hostile connection's progress, shared with the test.
#[derive(Default)]
struct Progress {
    /// Wrote all but the last byte, or found the broker not reading.
    stalled: AtomicUsize,
    /// Got the response to its request.
    answered: AtomicUsize,
}

/// Sends `frame` on a new connection: all of it but the last byte, then,
/// once `finish` is set, the last byte, and reads the response.
fn hostile(address: String, frame: Arc<Vec<u8>>, finish: Arc<AtomicBool>, p: Arc<Progress>) {
    let mut s = TcpStream::connect(address).unwrap();
    s.set_write_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut sent = 0;
    let mut counted_stall = false;
    while sent < frame.len() {
        let end = if finish.load(Ordering::SeqCst) {
            frame.len()
        } else {
            frame.len() - 1
        };
        if sent == end {
            if !counted_stall {
                counted_stall = true;
                p.stalled.fetch_add(1, Ordering::SeqCst);
            }
            // Waiting for the test to let the request finish.
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        match s.write(&frame[sent..end.min(sent + 64 * 1024)]) {
            Ok(n) => sent += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if !counted_stall {
                    counted_stall = true;
                    p.stalled.fetch_add(1, Ordering::SeqCst);
                }
            }
            Err(e) => panic!("hostile write: {e}"),
        }
    }
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut size = [0u8; 4];
    s.read_exact(&mut size).unwrap();
    let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
    s.read_exact(&mut body).unwrap();
    // Correlation id, then ApiVersions' error code (v3: header v0).
    assert_eq!(&body[..4], &frame[8..12], "correlation id");
    assert_eq!(&body[4..6], &[0, 0], "ApiVersions error code");
    p.answered.fetch_add(1, Ordering::SeqCst);
}

/// Figures of one run, in MiB.
#[derive(Debug)]
struct Figures {
    idle_rss: f64,
    held_peak: f64,
    peak_after_all_served: f64,
}

/// Runs the hostile clients against a broker with `overrides`; `budgeted`
/// says whether to expect the budget to hold them back.
fn run(overrides: &[&str], budgeted: bool) -> Figures {
    let b = broker(overrides);
    let pid = b.pid().unwrap();
    let mut good = connect(&b);
    let name = "a".repeat(HOSTILE_NAME_BYTES);
    let big = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_string(name))
        .with_client_software_version(StrBytes::from_string("1".into()));
    let (_, frame) = good.encode_request(ApiKey::ApiVersions, 3, &big).unwrap();
    assert!(frame.len() as u64 <= MAX_FRAME_BYTES);
    // Warm up: a first request served, so the idle reading includes what
    // any first request costs.
    let r = good
        .send(ApiKey::ApiVersions, 3, &api_versions_request())
        .unwrap();
    assert_eq!(r.error_code, 0);
    let frame = Arc::new(frame);
    wait_until(DEADLINE, || metric(&b, "strom_request_queue_bytes") == 0.0);
    let idle_rss = status_kib(pid, "VmRSS");
    // Resets VmHWM to the current RSS.
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();

    let finish = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(Progress::default());
    let clients: Vec<_> = (0..HOSTILE_CONNECTIONS)
        .map(|_| {
            let (address, frame, finish, p) = (
                b.bootstrap(),
                Arc::clone(&frame),
                Arc::clone(&finish),
                Arc::clone(&progress),
            );
            std::thread::spawn(move || hostile(address, frame, finish, p))
        })
        .collect();
    // Every hostile client has sent what it can: all but its last byte, or
    // as much as the broker (and the kernel's buffers) would take.
    assert!(wait_until(DEADLINE, || progress
        .stalled
        .load(Ordering::SeqCst)
        == HOSTILE_CONNECTIONS));
    let frame_bytes = frame.len() as f64;
    if budgeted {
        // Two frames hold the budget; everybody else waits, not reading.
        assert!(wait_until(DEADLINE, || {
            metric(&b, "strom_request_queue_bytes") == 2.0 * frame_bytes
                && metric(&b, "strom_request_queue_waits_total") >= (HOSTILE_CONNECTIONS - 2) as f64
        }));
        // The bytes of the two admitted frames (all but one) are in.
        assert!(wait_until(DEADLINE, || {
            status_kib(pid, "VmRSS") >= idle_rss + (2 * HOSTILE_NAME_BYTES as u64) / 1024
        }));
        assert_eq!(metric(&b, "strom_request_queue_requests"), 2.0);
        // A well-behaved client on another connection is served meanwhile.
        let mut other = connect(&b);
        let r = other
            .send(ApiKey::ApiVersions, 3, &api_versions_request())
            .unwrap();
        assert_eq!(r.error_code, 0);
        let m = other
            .send(ApiKey::Metadata, 12, &MetadataRequest::default())
            .unwrap();
        assert_eq!(m.brokers.len(), 1);
    } else {
        // Without a bytes budget the broker reads every frame (all but its
        // last byte): wait for most of them to be in memory.
        let expected_kib = HOSTILE_CONNECTIONS as u64 * HOSTILE_NAME_BYTES as u64 / 1024;
        wait_until(DEADLINE, || {
            status_kib(pid, "VmRSS") >= idle_rss + expected_kib * 9 / 10
        });
    }
    let held_peak = status_kib(pid, "VmHWM");

    // The hostile clients finish their requests: every one is answered.
    finish.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }
    assert_eq!(
        progress.answered.load(Ordering::SeqCst),
        HOSTILE_CONNECTIONS
    );
    assert!(wait_until(DEADLINE, || metric(
        &b,
        "strom_request_queue_bytes"
    ) == 0.0
        && metric(&b, "strom_request_queue_requests") == 0.0));
    let peak_after_all_served = status_kib(pid, "VmHWM");
    let mib = |kib: u64| kib as f64 / 1024.0;
    let figures = Figures {
        idle_rss: mib(idle_rss),
        held_peak: mib(held_peak),
        peak_after_all_served: mib(peak_after_all_served),
    };
    eprintln!(
        "{} {HOSTILE_CONNECTIONS} connections x {} MiB frames: {figures:?}",
        if budgeted {
            "queued.max.request.bytes=8MiB"
        } else {
            "no bytes budget (-1)"
        },
        frame_bytes / MIB as f64
    );
    figures
}

fn bound_mib(idle_rss_mib: f64) -> f64 {
    idle_rss_mib + (BUDGET_BYTES + OVERHEAD_BYTES) as f64 / MIB as f64
}

#[test]
fn hostile_connections_cannot_make_the_broker_hold_more_than_the_budget() {
    let f = run(
        &[
            "queued.max.request.bytes=8388608",
            "socket.request.max.bytes=8388608",
        ],
        true,
    );
    let bound = bound_mib(f.idle_rss);
    assert!(
        f.held_peak <= bound,
        "peak {:.1} MiB while held > bound {bound:.1} MiB ({f:?})",
        f.held_peak
    );
    assert!(
        f.peak_after_all_served <= bound,
        "peak {:.1} MiB serving all > bound {bound:.1} MiB ({f:?})",
        f.peak_after_all_served
    );
}

/// The same clients without a bytes budget: the peak goes far past the
/// bound the budgeted broker keeps, so that bound means something.
#[test]
fn without_a_budget_the_same_clients_push_the_broker_past_that_bound() {
    let f = run(&["socket.request.max.bytes=8388608"], false);
    let bound = bound_mib(f.idle_rss);
    assert!(
        f.held_peak > bound + 64.0,
        "peak {:.1} MiB without a budget is not far past {bound:.1} MiB ({f:?})",
        f.held_peak
    );
}

/// `queued.max.requests` counts requests being read or handled, broker-wide:
/// with one allowed, a request whose body is still arriving makes another
/// connection wait, not read; both are answered once it is in. A request
/// parked in a purgatory (a fetch's long poll) gives its place back, so the
/// produce it waits for is read at once, not after the poll's deadline.
#[test]
fn queued_max_requests_bounds_requests_in_hand_but_not_parked_ones() {
    let b = broker(&["queued.max.requests=1"]);
    let mut admin = connect(&b);
    assert_eq!(
        create_topic(&mut admin, "parked", 1, &[]).topics[0].error_code,
        0
    );

    // A request whose last byte is held back holds the only place.
    let mut slow = connect(&b);
    let (_, frame) = slow
        .encode_request(ApiKey::ApiVersions, 3, &api_versions_request())
        .unwrap();
    slow.send_raw(&frame[..frame.len() - 1]).unwrap();
    assert!(wait_until(DEADLINE, || metric(
        &b,
        "strom_request_queue_requests"
    ) == 1.0));
    let waits_before = metric(&b, "strom_request_queue_waits_total");
    let mut queued = connect(&b);
    let (_, frame2) = queued
        .encode_request(ApiKey::ApiVersions, 3, &api_versions_request())
        .unwrap();
    queued.send_raw(&frame2).unwrap();
    assert!(wait_until(DEADLINE, || metric(
        &b,
        "strom_request_queue_waits_total"
    ) > waits_before));
    slow.send_raw(&frame[frame.len() - 1..]).unwrap();
    assert!(slow.recv_frame().unwrap().is_some());
    assert!(queued.recv_frame().unwrap().is_some());

    // A long poll parks and gives its place back.
    let long_poll_ms = 20_000;
    let mut consumer = connect(&b);
    let poll = fetch_request("parked", 0, 0, 1 << 20)
        .with_max_wait_ms(long_poll_ms)
        .with_min_bytes(1);
    let (cid, frame) = consumer.encode_request(ApiKey::Fetch, 12, &poll).unwrap();
    let started = std::time::Instant::now();
    consumer.send_raw(&frame).unwrap();
    assert!(wait_until(DEADLINE, || {
        metric(&b, r#"strom_purgatory_requests{purgatory="fetch"}"#) == 1.0
            && metric(&b, "strom_request_queue_requests") == 0.0
    }));
    let mut producer = connect(&b);
    assert_eq!(produce(&mut producer, "parked", 0, &[b"v"]), (0, 0));
    let raw = consumer.recv_frame().unwrap().unwrap();
    let r: FetchResponse =
        strom_test_utils::KafkaConnection::decode_response(ApiKey::Fetch, 12, cid, raw).unwrap();
    let records = r.responses[0].partitions[0].records.clone().unwrap();
    assert_eq!(decode_records(&records), vec![(0, b"v".to_vec())]);
    assert!(
        started.elapsed() < Duration::from_millis(long_poll_ms as u64 / 2),
        "the produce waited for the long poll's deadline: {:?}",
        started.elapsed()
    );
}
