//! The HTTP endpoint of real broker processes: `/metrics` counts the
//! requests, records, bytes and errors clients cause and shows the state of
//! the logs and the quorum; `/livez` answers from the start; `/readyz`
//! turns true only once a restarted broker is back in the ISR of its
//! partitions, and its controlled shutdown hands its leadership away.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::time::Duration;

use common::*;
use strom_test_utils::{metric_value, wait_until, BrokerProcess, Cluster};

const DEADLINE: Duration = Duration::from_secs(30);

fn metrics(b: &BrokerProcess) -> String {
    let (status, body) = b.http_get("/metrics").unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

fn value(text: &str, series: &str) -> f64 {
    metric_value(text, series).unwrap_or_else(|| panic!("no {series} in:\n{text}"))
}

#[test]
fn metrics_count_what_clients_do_and_show_the_logs() {
    let b = broker(&[]);
    assert_eq!(b.http_get("/livez").unwrap(), (200, "ok\n".to_string()));
    assert!(
        wait_until(DEADLINE, || b.is_ready()),
        "{:?}",
        b.http_get("/readyz")
    );
    assert_eq!(b.http_get("/nowhere").unwrap().0, 404);

    let mut c = connect(&b);
    assert_eq!(create_topic(&mut c, "m", 1, &[]).topics[0].error_code, 0);
    let batch = values_batch(&[b"a", b"bb", b"ccc"]);
    let r = produce_raw(&mut c, 9, "m", 0, batch.clone(), -1);
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    // A partition that does not exist: an error in the response.
    let r = produce_raw(&mut c, 9, "m", 7, values_batch(&[b"x"]), -1);
    assert_eq!(r.responses[0].partition_responses[0].error_code, 3);
    let fetched = fetch(&mut c, "m", 0, 0, 1 << 20);
    assert_eq!(decode_records(fetched.records.as_ref().unwrap()).len(), 3);

    let text = metrics(&b);
    assert_eq!(
        value(&text, r#"strom_requests_total{api="Produce",version="9"}"#),
        2.0
    );
    assert_eq!(
        value(
            &text,
            r#"strom_request_duration_seconds_count{api="Produce",version="9"}"#
        ),
        2.0
    );
    assert_eq!(
        value(
            &text,
            r#"strom_request_errors_total{api="Produce",error="UNKNOWN_TOPIC_OR_PARTITION"}"#
        ),
        1.0
    );
    assert_eq!(
        value(&text, r#"strom_topic_records_in_total{topic="m"}"#),
        3.0
    );
    assert_eq!(
        value(&text, r#"strom_topic_bytes_in_total{topic="m"}"#),
        batch.len() as f64
    );
    assert_eq!(
        value(&text, r#"strom_topic_records_out_total{topic="m"}"#),
        3.0
    );
    assert_eq!(
        value(&text, r#"strom_topic_bytes_out_total{topic="m"}"#),
        batch.len() as f64
    );
    let partition = r#"{partition="0",topic="m"}"#;
    assert_eq!(
        value(&text, &format!("strom_log_end_offset{partition}")),
        3.0
    );
    assert_eq!(
        value(&text, &format!("strom_high_watermark{partition}")),
        3.0
    );
    assert_eq!(value(&text, &format!("strom_log_segments{partition}")), 1.0);
    assert_eq!(
        value(&text, &format!("strom_log_size_bytes{partition}")),
        batch.len() as f64
    );
    assert_eq!(
        value(&text, r#"strom_connections{listener="PLAINTEXT"}"#),
        1.0
    );
    assert_eq!(value(&text, "strom_controller_active"), 1.0);
    assert!(value(&text, "strom_raft_term") >= 1.0);
    assert!(value(&text, "strom_raft_commit_index") >= 1.0);
    assert_eq!(value(&text, "strom_under_replicated_partitions"), 0.0);
    assert_eq!(value(&text, "strom_offline_partitions"), 0.0);
    assert_eq!(value(&text, "strom_broker_fenced"), 0.0);
    assert_eq!(
        value(&text, r#"strom_purgatory_requests{purgatory="produce"}"#),
        0.0
    );
    drop(c);
    assert!(wait_until(DEADLINE, || metric_value(
        &metrics(&b),
        r#"strom_connections{listener="PLAINTEXT"}"#
    ) == Some(0.0)));
}

/// Leaders of every partition of `topic` as `node` sees them.
fn leaders(node: &BrokerProcess, topic: &str) -> Vec<i32> {
    let mut c = connect(node);
    partition_leaders(&topic_metadata(&mut c, topic))
        .into_values()
        .collect()
}

/// ISRs of every partition of `topic` as `node` sees them.
fn isrs(node: &BrokerProcess, topic: &str) -> Vec<Vec<i32>> {
    let mut c = connect(node);
    topic_metadata(&mut c, topic).topics[0]
        .partitions
        .iter()
        .map(|p| p.isr_nodes.iter().map(|b| b.0).collect())
        .collect()
}

fn under_replicated(cluster: &Cluster) -> f64 {
    cluster
        .nodes
        .iter()
        .filter_map(|n| metric_value(&metrics(n), "strom_under_replicated_partitions"))
        .sum()
}

#[test]
fn a_restarted_broker_is_ready_only_back_in_the_isr() {
    let mut cluster = Cluster::start(BIN, 3, &["replica.lag.time.max.ms=2000"]).unwrap();
    for n in &cluster.nodes {
        assert!(
            wait_until(DEADLINE, || n.is_ready()),
            "{:?}",
            n.http_get("/readyz")
        );
    }
    let mut c = connect(&cluster.nodes[0]);
    assert_eq!(create_topic_rf(&mut c, "r", 3, 3), 0);
    assert!(wait_until(DEADLINE, || isrs(&cluster.nodes[0], "r")
        .iter()
        .all(|isr| isr.len() == 3)));
    assert!(leaders(&cluster.nodes[0], "r").contains(&3));

    // Controlled shutdown, as the chart's preStop hook asks for it: node 3
    // leads nothing and is out of every ISR, and stays fenced (its
    // heartbeats must not get it unfenced) until it is stopped.
    let (status, body) = cluster.nodes[2].http_post("/controlled-shutdown").unwrap();
    assert_eq!(status, 200, "{body}");
    // Once node 1 has applied the change.
    assert!(
        wait_until(DEADLINE, || {
            let l = leaders(&cluster.nodes[0], "r");
            !l.contains(&3)
                && !l.contains(&-1)
                && isrs(&cluster.nodes[0], "r")
                    .iter()
                    .all(|isr| !isr.contains(&3))
        }),
        "{:?}",
        isrs(&cluster.nodes[0], "r")
    );
    assert_eq!(cluster.nodes[2].http_get("/readyz").unwrap().0, 503);
    // Ten heartbeat intervals (200 ms in these clusters).
    let watched = std::time::Instant::now() + Duration::from_secs(2);
    while std::time::Instant::now() < watched {
        assert_eq!(
            value(&metrics(&cluster.nodes[2]), "strom_broker_fenced"),
            1.0
        );
        assert!(!leaders(&cluster.nodes[0], "r").contains(&3));
        let isrs = isrs(&cluster.nodes[0], "r");
        assert!(isrs.iter().all(|isr| !isr.contains(&3)), "{isrs:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(cluster.node(3).terminate().unwrap(), Some(0));
    assert!(
        cluster.nodes[2]
            .log()
            .contains("controlled shutdown: the controller moved"),
        "{}",
        cluster.nodes[2].log()
    );
    // The others see their partitions under-replicated until it is back.
    assert!(wait_until(DEADLINE, || under_replicated_of(
        &cluster,
        &[0, 1]
    ) == 3.0));
    for p in 0..3 {
        let leader = leaders(&cluster.nodes[0], "r")[p as usize];
        let node = &cluster.nodes[leader as usize - 1];
        let mut c = connect(node);
        let values: Vec<Vec<u8>> = (0..200).map(|i| vec![b'v'; 1000 + i]).collect();
        let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
        assert_eq!(produce(&mut c, "r", p, &refs).0, 0);
    }

    cluster.node(3).launch().unwrap();
    // Not ready until every partition has it in the ISR again.
    assert!(wait_until(Duration::from_secs(60), || cluster.nodes[2].is_ready()));
    // As node 3 itself saw it when it turned ready.
    for isr in isrs(&cluster.nodes[2], "r") {
        assert!(isr.contains(&3), "ready before rejoining the ISR: {isr:?}");
    }
    assert!(wait_until(DEADLINE, || under_replicated(&cluster) == 0.0));
    // Each partition's leader took node 3 back into its ISR.
    let expands: f64 = cluster
        .nodes
        .iter()
        .map(|n| value(&metrics(n), "strom_isr_expands_total"))
        .sum();
    assert!(expands >= 3.0, "{expands}");
}

fn under_replicated_of(cluster: &Cluster, nodes: &[usize]) -> f64 {
    nodes
        .iter()
        .filter_map(|i| {
            metric_value(
                &metrics(&cluster.nodes[*i]),
                "strom_under_replicated_partitions",
            )
        })
        .sum()
}
