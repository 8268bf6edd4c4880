//! The broker-wide fetch response budget (`queued.max.fetch.response.bytes`)
//! against a real broker process: many connections each asking a 55 MB
//! fetch of a 48 MB log and never reading their sockets cannot make the
//! broker hold more than the budget; once they go, the budget is given back
//! and a consumer reads every record.
//!
//! Memory is the broker's, read from `/proc/<pid>/status`: `VmRSS` at idle,
//! then `VmHWM` (the peak, reset through `/proc/<pid>/clear_refs` after the
//! idle reading) while the hostile clients hold their responses. The same
//! clients against a broker without the budget must push the peak far past
//! the bound, or the bound would prove nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::time::Duration;

use common::*;
use kafka_protocol::messages::*;
use strom_test_utils::{metric_value, wait_until, BrokerProcess, KafkaConnection};

const MIB: u64 = 1 << 20;
/// `queued.max.fetch.response.bytes` of the budgeted broker.
const BUDGET_BYTES: u64 = 32 * MIB;
/// The log: this many batches of one record of `VALUE_BYTES`.
const BATCHES: usize = 48;
const VALUE_BYTES: usize = 1_000_000;
/// What each hostile fetch asks for: Kafka's default fetch.max.bytes.
const FETCH_MAX_BYTES: i32 = 55 * 1024 * 1024;
const HOSTILE_CONNECTIONS: usize = 24;
/// What the broker may hold beyond the budget while the hostile clients
/// run: a response's records exist twice while it is encoded (the read and
/// the connection's buffer; at most one response per worker thread, each at
/// most the budget), plus the connection tasks and allocator slack.
/// Measured (debug build, 2026-12): see the figures the test prints.
const OVERHEAD_BYTES: u64 = 2 * BUDGET_BYTES + 24 * MIB;
const DEADLINE: Duration = Duration::from_secs(60);

fn metric(b: &BrokerProcess, series: &str) -> f64 {
    let (_, text) = b.http_get("/metrics").unwrap();
    metric_value(&text, series).unwrap_or_else(|| panic!("no {series} in:\n{text}"))
}

/// The value of batch `i`: its index in every byte of a 1 MB pattern.
fn value(i: usize) -> Vec<u8> {
    (0..VALUE_BYTES)
        .map(|j| (i as u8).wrapping_mul(31).wrapping_add(j as u8))
        .collect()
}

/// A broker with `overrides` and the 48 MB log in `big-0`.
fn loaded_broker(overrides: &[&str]) -> BrokerProcess {
    let b = broker(overrides);
    let mut c = connect(&b);
    assert_eq!(create_topic_rf(&mut c, "big", 1, 1), 0);
    for i in 0..BATCHES {
        let (code, offset) = produce(&mut c, "big", 0, &[&value(i)]);
        assert_eq!((code, offset), (0, i as i64));
    }
    b
}

/// Sends a 55 MB fetch from `offset` on a new connection and returns the
/// connection, its response never read.
fn hostile_fetch(b: &BrokerProcess, offset: i64) -> KafkaConnection {
    let mut c = connect(b);
    let request = fetch_request("big", 0, offset, FETCH_MAX_BYTES)
        .with_max_bytes(FETCH_MAX_BYTES)
        .with_max_wait_ms(500)
        .with_min_bytes(1);
    let (_, frame) = c.encode_request(ApiKey::Fetch, 12, &request).unwrap();
    c.send_raw(&frame).unwrap();
    c
}

/// Figures of one run, in MiB.
#[derive(Debug)]
struct Figures {
    idle_rss: f64,
    held_peak: f64,
    most_held_by_budget: f64,
}

fn run(overrides: &[&str], budgeted: bool) -> Figures {
    let b = loaded_broker(overrides);
    let pid = b.pid().unwrap();
    // Warm up: one whole read served, so the idle reading includes what
    // any first fetch costs.
    let mut good = connect(&b);
    assert_eq!(
        fetch(&mut good, "big", 0, 0, 2 * VALUE_BYTES as i32).error_code,
        0
    );
    let idle_rss = status_kib(pid, "VmRSS");
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();

    let hostile: Vec<KafkaConnection> = (0..HOSTILE_CONNECTIONS)
        .map(|i| hostile_fetch(&b, (i % 8) as i64))
        .collect();
    let mut most_held: f64 = 0.0;
    if budgeted {
        // The budget fills (less than one batch of room left) and stays
        // within its bound; the fetches left over wait for room.
        let full = (BUDGET_BYTES - VALUE_BYTES as u64 - 1024) as f64;
        assert!(wait_until(DEADLINE, || {
            let held = metric(&b, "strom_fetch_response_queue_bytes");
            most_held = most_held.max(held);
            held >= full && metric(&b, "strom_fetch_response_queue_shortfalls_total") > 0.0
        }));
        for _ in 0..20 {
            let held = metric(&b, "strom_fetch_response_queue_bytes");
            most_held = most_held.max(held);
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            most_held <= BUDGET_BYTES as f64,
            "held {most_held} bytes, over the budget"
        );
    } else {
        // Without a budget every hostile response is read and kept: wait
        // for most of them to be in memory.
        let expected_kib = HOSTILE_CONNECTIONS as u64 * (BATCHES * VALUE_BYTES) as u64 / 1024;
        wait_until(DEADLINE, || {
            status_kib(pid, "VmRSS") >= idle_rss + expected_kib * 8 / 10
        });
    }
    let held_peak = status_kib(pid, "VmHWM");

    // The hostile clients go: their responses' room is given back, and a
    // consumer reads every record, in order, with its payload.
    drop(hostile);
    if budgeted {
        assert!(wait_until(DEADLINE, || metric(
            &b,
            "strom_fetch_response_queue_bytes"
        ) == 0.0));
    }
    let mut offset = 0;
    while offset < BATCHES as i64 {
        let p = fetch(&mut good, "big", 0, offset, 8 * VALUE_BYTES as i32);
        assert_eq!(p.error_code, 0);
        let records = decode_records(p.records.as_ref().unwrap());
        assert!(!records.is_empty(), "no progress at {offset}");
        for (o, v) in records {
            assert_eq!(o, offset);
            assert!(v == value(o as usize), "payload of offset {o}");
            offset += 1;
        }
    }
    let mib = |kib: u64| kib as f64 / 1024.0;
    let figures = Figures {
        idle_rss: mib(idle_rss),
        held_peak: mib(held_peak),
        most_held_by_budget: most_held / MIB as f64,
    };
    eprintln!(
        "{}: {HOSTILE_CONNECTIONS} connections leaving a {} MB fetch unread: {figures:?}",
        if budgeted {
            "queued.max.fetch.response.bytes=32MiB"
        } else {
            "no fetch response budget (-1)"
        },
        BATCHES
    );
    figures
}

fn bound_mib(idle_rss_mib: f64) -> f64 {
    idle_rss_mib + (BUDGET_BYTES + OVERHEAD_BYTES) as f64 / MIB as f64
}

#[test]
fn consumers_that_never_read_cannot_make_the_broker_hold_more_than_the_budget() {
    let f = run(&["queued.max.fetch.response.bytes=33554432"], true);
    let bound = bound_mib(f.idle_rss);
    assert!(
        f.held_peak <= bound,
        "peak {:.1} MiB > bound {bound:.1} MiB ({f:?})",
        f.held_peak
    );
    assert!(
        f.most_held_by_budget <= (BUDGET_BYTES / MIB) as f64,
        "{f:?}"
    );
}

/// Consumers that read are not starved for long by ones that hold the
/// budget without reading: while fetches find no room, the connections
/// whose sockets took nothing for two seconds are closed, and the room
/// goes to the consumer that reads.
#[test]
fn connections_that_hold_the_budget_without_reading_are_closed_for_consumers_that_read() {
    let b = loaded_broker(&["queued.max.fetch.response.bytes=33554432"]);
    let _hostile: Vec<KafkaConnection> = (0..HOSTILE_CONNECTIONS)
        .map(|i| hostile_fetch(&b, (i % 8) as i64))
        .collect();
    assert!(wait_until(DEADLINE, || metric(
        &b,
        "strom_fetch_response_queue_bytes"
    ) >= (BUDGET_BYTES - VALUE_BYTES as u64 - 1024)
        as f64));
    let mut good = connect(&b);
    let request = fetch_request("big", 0, 40, 4 * VALUE_BYTES as i32)
        .with_max_wait_ms(500)
        .with_min_bytes(1);
    let mut served = None;
    assert!(wait_until(DEADLINE, || {
        let r = good.send(ApiKey::Fetch, 12, &request).unwrap();
        assert_eq!(r.error_code, 0);
        let p = &r.responses[0].partitions[0];
        assert_eq!(p.error_code, 0);
        let records = decode_records(p.records.as_ref().unwrap());
        if records.is_empty() {
            return false;
        }
        served = Some(records);
        true
    }));
    let records = served.unwrap();
    assert_eq!(records[0].0, 40);
    assert!(records[0].1 == value(40));
    assert!(metric(&b, "strom_fetch_response_evictions_total") >= 1.0);
    assert!(b
        .log()
        .contains("queued.max.fetch.response.bytes turns other fetches away"));
}

/// The same clients without the budget: the peak goes far past the bound
/// the budgeted broker keeps, so that bound means something.
#[test]
fn without_a_budget_the_same_consumers_push_the_broker_past_that_bound() {
    let f = run(&["queued.max.fetch.response.bytes=-1"], false);
    let bound = bound_mib(f.idle_rss);
    assert!(
        f.held_peak > bound + 256.0,
        "peak {:.1} MiB without a budget is not far past {bound:.1} MiB ({f:?})",
        f.held_peak
    );
}

/// A consumer whose `min_bytes` the budget cannot hold while another
/// connection sits on its room waits without spinning (the broker's CPU
/// stays low) and is answered as soon as the room comes back (the holder
/// is evicted), long before its `max_wait_ms`.
#[test]
fn a_fetch_short_of_room_waits_quietly_and_wakes_when_room_comes_back() {
    let b = loaded_broker(&["queued.max.fetch.response.bytes=4194304"]);
    let pid = b.pid().unwrap();
    // Three of the four MiB, held unread.
    let mut holder = connect(&b);
    let request = fetch_request("big", 0, 0, 3 * VALUE_BYTES as i32 + 1000)
        .with_max_bytes(3 * VALUE_BYTES as i32 + 1000)
        .with_max_wait_ms(0);
    let (_, frame) = holder.encode_request(ApiKey::Fetch, 12, &request).unwrap();
    holder.send_raw(&frame).unwrap();
    assert!(wait_until(DEADLINE, || metric(
        &b,
        "strom_fetch_response_queue_bytes"
    ) >= 3.0 * VALUE_BYTES as f64));
    // The consumer wants two batches: one fits now, two only once the
    // holder is gone.
    let mut consumer = connect(&b);
    let wants = fetch_request("big", 0, 10, 4 * VALUE_BYTES as i32)
        .with_max_wait_ms(30_000)
        .with_min_bytes(2 * VALUE_BYTES as i32);
    let cpu_before = strom_test_utils::proc_cpu_seconds(pid).unwrap();
    let started = std::time::Instant::now();
    let r = consumer.send(ApiKey::Fetch, 12, &wants).unwrap();
    let waited = started.elapsed();
    let cpu = strom_test_utils::proc_cpu_seconds(pid).unwrap() - cpu_before;
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    let records = decode_records(p.records.as_ref().unwrap());
    assert!(records.len() >= 2, "{} records", records.len());
    assert_eq!(records[0].0, 10);
    assert!(records[1].1 == value(11));
    // Evicted after two seconds without reading, then answered at once.
    assert!(metric(&b, "strom_fetch_response_evictions_total") >= 1.0);
    assert!(waited < Duration::from_secs(15), "waited {waited:?}");
    // Spinning through read passes while waiting would take about a core.
    assert!(
        cpu < waited.as_secs_f64() / 4.0,
        "the broker used {cpu:.2} CPU s while the fetch waited {waited:?}"
    );
}
