//! The broker's Prometheus metrics, served on `/metrics` by [`crate::http`].
//!
//! Counters and histograms are updated where things happen (a request is
//! handled, a connection opens, an ISR changes). Values that are a view of
//! state (partition health, the quorum, log sizes) are read from the broker
//! when scraped, by [`BrokerMetrics::refresh`], so they cannot drift from
//! the state they describe. Every name starts with `strom_` and follows
//! Prometheus' conventions: `_total` for counters, base units (`_seconds`,
//! `_bytes`) in the name. README.md lists them.

use kafka_protocol::messages::ApiKey;
use parking_lot::Mutex;
use prometheus::core::Collector;
use prometheus::{
    CounterVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};
use strom_protocol::ErrorCode;

use crate::state::BrokerState;

/// Request latency buckets, in seconds: from half a millisecond to the
/// longest a request may wait (fetch long polls, acks=all timeouts).
const REQUEST_SECONDS_BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Every metric of one broker process.
#[derive(Debug)]
pub struct BrokerMetrics {
    registry: Registry,
    /// One scrape at a time: a refresh resets the per-partition gauges
    /// before setting them again.
    scrape: Mutex<()>,
    requests: IntCounterVec,
    request_seconds: HistogramVec,
    request_errors: IntCounterVec,
    bytes_in: IntCounterVec,
    records_in: IntCounterVec,
    bytes_out: IntCounterVec,
    records_out: IntCounterVec,
    replication_bytes_out: IntCounter,
    connections: IntGaugeVec,
    connections_accepted: IntCounterVec,
    connections_refused: IntCounterVec,
    connections_throttled: IntCounterVec,
    connection_accept_throttle_seconds: CounterVec,
    connections_idle_closed: IntCounterVec,
    http_connections_closed: IntCounterVec,
    purgatory: IntGaugeVec,
    request_queue_bytes: IntGauge,
    request_queue_requests: IntGauge,
    request_queue_waits: IntCounter,
    fetch_response_queue_bytes: IntGauge,
    fetch_response_queue_shortfalls: IntCounter,
    fetch_response_evictions: IntCounter,
    isr_shrinks: IntCounter,
    isr_expands: IntCounter,
    under_replicated: IntGauge,
    offline: IntGauge,
    under_min_isr: IntGauge,
    at_min_isr: IntGauge,
    controller_active: IntGauge,
    raft_term: IntGauge,
    raft_commit_index: IntGauge,
    metadata_applied_offset: IntGauge,
    broker_fenced: IntGauge,
    log_size: IntGaugeVec,
    log_segments: IntGaugeVec,
    log_end_offset: IntGaugeVec,
    log_start_offset: IntGaugeVec,
    high_watermark: IntGaugeVec,
}

/// Registers a metric and hands it back.
fn register<M: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: M,
) -> prometheus::Result<M> {
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

fn counter(r: &Registry, name: &str, help: &str) -> prometheus::Result<IntCounter> {
    register(r, IntCounter::new(name, help)?)
}

fn counter_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntCounterVec> {
    register(r, IntCounterVec::new(Opts::new(name, help), labels)?)
}

fn gauge(r: &Registry, name: &str, help: &str) -> prometheus::Result<IntGauge> {
    register(r, IntGauge::new(name, help)?)
}

fn gauge_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntGaugeVec> {
    register(r, IntGaugeVec::new(Opts::new(name, help), labels)?)
}

const PARTITION: &[&str] = &["topic", "partition"];

impl BrokerMetrics {
    /// Every metric, registered and at zero.
    pub fn new() -> prometheus::Result<Self> {
        let r = Registry::new();
        let metrics = Self {
            requests: counter_vec(
                &r,
                "strom_requests_total",
                "Kafka requests handled, by API and version.",
                &["api", "version"],
            )?,
            request_seconds: register(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "strom_request_duration_seconds",
                        "Time from a request's arrival to its response, by API and version.",
                    )
                    .buckets(REQUEST_SECONDS_BUCKETS.to_vec()),
                    &["api", "version"],
                )?,
            )?,
            request_errors: counter_vec(
                &r,
                "strom_request_errors_total",
                "Error codes in responses (per partition, group or topic they concern), by API \
                 and Kafka error name.",
                &["api", "error"],
            )?,
            bytes_in: counter_vec(
                &r,
                "strom_topic_bytes_in_total",
                "Record batch bytes appended by producers, by topic.",
                &["topic"],
            )?,
            records_in: counter_vec(
                &r,
                "strom_topic_records_in_total",
                "Records appended by producers, by topic.",
                &["topic"],
            )?,
            bytes_out: counter_vec(
                &r,
                "strom_topic_bytes_out_total",
                "Record batch bytes sent to consumers, by topic.",
                &["topic"],
            )?,
            records_out: counter_vec(
                &r,
                "strom_topic_records_out_total",
                "Records sent to consumers, by topic.",
                &["topic"],
            )?,
            replication_bytes_out: counter(
                &r,
                "strom_replication_bytes_out_total",
                "Record batch bytes sent to follower replicas.",
            )?,
            connections: gauge_vec(
                &r,
                "strom_connections",
                "Open client connections, by listener.",
                &["listener"],
            )?,
            connections_accepted: counter_vec(
                &r,
                "strom_connections_accepted_total",
                "Client connections accepted, by listener.",
                &["listener"],
            )?,
            connections_refused: counter_vec(
                &r,
                "strom_connections_refused_total",
                "Client connections closed as they were accepted, by listener and the limit \
                 reached (max.connections, max.connections.per.ip).",
                &["listener", "limit"],
            )?,
            connections_throttled: counter_vec(
                &r,
                "strom_connections_throttled_total",
                "Client connections whose accept max.connection.creation.rate delayed, by \
                 listener.",
                &["listener"],
            )?,
            connection_accept_throttle_seconds: register(
                &r,
                CounterVec::new(
                    Opts::new(
                        "strom_connection_accept_throttle_seconds_total",
                        "Time accepting was delayed by max.connection.creation.rate, by listener.",
                    ),
                    &["listener"],
                )?,
            )?,
            connections_idle_closed: counter_vec(
                &r,
                "strom_connections_idle_closed_total",
                "Client connections closed by connections.max.idle.ms: no complete request \
                 arrived and no response was written (or the client did not read its \
                 responses) for that long, by listener.",
                &["listener"],
            )?,
            http_connections_closed: counter_vec(
                &r,
                "strom_http_connections_closed_total",
                "HTTP connections the endpoint closed early, by reason: header_timeout (the \
                 request head took too long), evicted (the oldest idle connection, closed to \
                 make room at the connection cap), full (every connection busy), too_long \
                 (open past the connection lifetime).",
                &["reason"],
            )?,
            purgatory: gauge_vec(
                &r,
                "strom_purgatory_requests",
                "Requests waiting: acks=all produce requests for the in-sync replicas \
                 (produce), fetch requests for data (fetch), at the moment of the scrape.",
                &["purgatory"],
            )?,
            request_queue_bytes: gauge(
                &r,
                "strom_request_queue_bytes",
                "Request bytes read (or being read) from client connections and not yet handled, \
                 held against queued.max.request.bytes.",
            )?,
            request_queue_requests: gauge(
                &r,
                "strom_request_queue_requests",
                "Requests read (or being read) from client connections and not yet handled, held \
                 against queued.max.requests.",
            )?,
            request_queue_waits: counter(
                &r,
                "strom_request_queue_waits_total",
                "Times a client connection stopped reading because queued.max.requests or \
                 queued.max.request.bytes was reached.",
            )?,
            fetch_response_queue_bytes: gauge(
                &r,
                "strom_fetch_response_queue_bytes",
                "Fetched record bytes held in memory for consumers, from their read until the \
                 response is written to the client's socket, against \
                 queued.max.fetch.response.bytes.",
            )?,
            fetch_response_queue_shortfalls: counter(
                &r,
                "strom_fetch_response_queue_shortfalls_total",
                "Partition reads for consumers that found data but no room under \
                 queued.max.fetch.response.bytes (the fetch waited for room or answered \
                 with less).",
            )?,
            fetch_response_evictions: counter(
                &r,
                "strom_fetch_response_evictions_total",
                "Client connections closed because their unread fetch responses held \
                 queued.max.fetch.response.bytes room while other fetches found none.",
            )?,
            isr_shrinks: counter(
                &r,
                "strom_isr_shrinks_total",
                "ISR shrinks of partitions this broker leads.",
            )?,
            isr_expands: counter(
                &r,
                "strom_isr_expands_total",
                "ISR expansions of partitions this broker leads.",
            )?,
            under_replicated: gauge(
                &r,
                "strom_under_replicated_partitions",
                "Partitions this broker leads whose ISR lacks some replica.",
            )?,
            offline: gauge(
                &r,
                "strom_offline_partitions",
                "Partitions of the cluster without a live leader.",
            )?,
            under_min_isr: gauge(
                &r,
                "strom_under_min_isr_partitions",
                "Partitions this broker leads with fewer in-sync replicas than \
                 min.insync.replicas.",
            )?,
            at_min_isr: gauge(
                &r,
                "strom_at_min_isr_partitions",
                "Partitions this broker leads with exactly min.insync.replicas in-sync replicas.",
            )?,
            controller_active: gauge(
                &r,
                "strom_controller_active",
                "1 when this node is the active controller (leads the metadata quorum).",
            )?,
            raft_term: gauge(
                &r,
                "strom_raft_term",
                "The metadata quorum's current term (KRaft's epoch) as this node knows it.",
            )?,
            raft_commit_index: gauge(
                &r,
                "strom_raft_commit_index",
                "The last metadata log index this node has committed and applied.",
            )?,
            metadata_applied_offset: gauge(
                &r,
                "strom_metadata_applied_offset",
                "The last metadata log offset this broker's partitions reflect.",
            )?,
            broker_fenced: gauge(
                &r,
                "strom_broker_fenced",
                "1 while this broker is fenced (starting, lost its session, shutting down).",
            )?,
            log_size: gauge_vec(
                &r,
                "strom_log_size_bytes",
                "Bytes of a partition's log segments on disk.",
                PARTITION,
            )?,
            log_segments: gauge_vec(
                &r,
                "strom_log_segments",
                "Segments of a partition's log.",
                PARTITION,
            )?,
            log_end_offset: gauge_vec(
                &r,
                "strom_log_end_offset",
                "A partition's log end offset.",
                PARTITION,
            )?,
            log_start_offset: gauge_vec(
                &r,
                "strom_log_start_offset",
                "A partition's log start offset.",
                PARTITION,
            )?,
            high_watermark: gauge_vec(
                &r,
                "strom_high_watermark",
                "A partition's high watermark.",
                PARTITION,
            )?,
            registry: r,
            scrape: Mutex::new(()),
        };
        // Fenced until the broker is up and the controller unfences it.
        metrics.broker_fenced.set(1);
        Ok(metrics)
    }

    /// Counts one handled request and how long it took.
    pub fn observe_request(&self, api: ApiKey, version: i16, seconds: f64) {
        let (api, version) = (api_label(api), version.to_string());
        let labels = [api.as_str(), version.as_str()];
        self.requests.with_label_values(&labels).inc();
        self.request_seconds
            .with_label_values(&labels)
            .observe(seconds);
    }

    /// Counts a non-zero error code in a response of `api`.
    pub fn count_error(&self, api: ApiKey, code: i16) {
        if code == 0 {
            return;
        }
        let name = error_name(code);
        self.request_errors
            .with_label_values(&[api_label(api).as_str(), name.as_str()])
            .inc();
    }

    /// Counts records a producer appended to `topic`.
    pub fn count_in(&self, topic: &str, bytes: u64, records: u64) {
        self.bytes_in.with_label_values(&[topic]).inc_by(bytes);
        self.records_in.with_label_values(&[topic]).inc_by(records);
    }

    /// Counts records sent to a consumer from `topic`.
    pub fn count_out(&self, topic: &str, bytes: u64, records: u64) {
        self.bytes_out.with_label_values(&[topic]).inc_by(bytes);
        self.records_out.with_label_values(&[topic]).inc_by(records);
    }

    /// Counts bytes sent to a follower.
    pub fn count_replication_out(&self, bytes: u64) {
        self.replication_bytes_out.inc_by(bytes);
    }

    /// Counts an ISR change this broker made as leader.
    pub fn count_isr_change(&self, from: usize, to: usize) {
        if to < from {
            self.isr_shrinks.inc();
        } else if to > from {
            self.isr_expands.inc();
        }
    }

    /// The metrics of the broker-wide request budget.
    pub fn request_budget(&self) -> crate::request_budget::RequestBudgetMetrics {
        crate::request_budget::RequestBudgetMetrics {
            bytes: self.request_queue_bytes.clone(),
            requests: self.request_queue_requests.clone(),
            waits: self.request_queue_waits.clone(),
        }
    }

    /// Counts connections closed to reclaim fetch response room.
    pub fn fetch_response_evictions(&self) -> IntCounter {
        self.fetch_response_evictions.clone()
    }

    /// The metrics of the connection quotas.
    pub fn connection_quotas(&self) -> crate::connection_quotas::ConnectionQuotaMetrics {
        crate::connection_quotas::ConnectionQuotaMetrics {
            refused: self.connections_refused.clone(),
            throttled: self.connections_throttled.clone(),
            throttle_seconds: self.connection_accept_throttle_seconds.clone(),
        }
    }

    /// Counts a connection closed by `connections.max.idle.ms`.
    pub fn connection_idle_closed(&self, listener: &str) {
        self.connections_idle_closed
            .with_label_values(&[listener])
            .inc();
    }

    /// Counts an HTTP connection the endpoint closed early, by `reason`.
    pub fn http_connection_closed(&self, reason: &str) {
        self.http_connections_closed
            .with_label_values(&[reason])
            .inc();
    }

    /// Counts a connection as open until the guard drops.
    pub fn connection_opened(&self, listener: &str) -> GaugeGuard {
        self.connections_accepted
            .with_label_values(&[listener])
            .inc();
        GaugeGuard::inc(self.connections.with_label_values(&[listener]))
    }

    /// Reads the values that are a view of state from `state` (when the
    /// broker is up) and renders every metric in Prometheus' text format.
    pub fn render(&self, state: Option<&BrokerState>) -> String {
        let _one_at_a_time = self.scrape.lock();
        if let Some(state) = state {
            self.refresh(state);
        }
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_else(|e| format!("# cannot encode metrics: {e}\n"))
    }

    /// Sets the gauges that describe state from `state`.
    pub fn refresh(&self, state: &BrokerState) {
        let image = state.image();
        let health = state.replica_manager.partition_health(&image);
        self.under_replicated.set(as_i64(health.under_replicated));
        self.offline.set(as_i64(health.offline));
        self.under_min_isr.set(as_i64(health.under_min_isr));
        self.at_min_isr.set(as_i64(health.at_min_isr));
        let quorum = state.controller.quorum();
        self.controller_active.set(i64::from(quorum.is_leader()));
        self.raft_term.set(as_i64(quorum.term()));
        self.raft_commit_index
            .set(quorum.applied_index().map_or(-1, as_i64));
        self.metadata_applied_offset.set(image.offset);
        self.broker_fenced.set(i64::from(
            state.config.is_broker() && state.lifecycle.is_fenced(),
        ));
        let rm = &state.replica_manager;
        self.purgatory
            .with_label_values(&["produce"])
            .set(as_i64(rm.delayed_produces()));
        self.purgatory
            .with_label_values(&["fetch"])
            .set(as_i64(rm.delayed_fetches()));
        if let Some(budget) = rm.fetch_response_budget() {
            self.fetch_response_queue_bytes
                .set(as_i64(budget.held_bytes()));
            let counted = self.fetch_response_queue_shortfalls.get();
            self.fetch_response_queue_shortfalls
                .inc_by(budget.shortfalls().saturating_sub(counted));
        }
        // A deleted topic's series go with it.
        for vec in [
            &self.bytes_in,
            &self.records_in,
            &self.bytes_out,
            &self.records_out,
        ] {
            for family in vec.collect() {
                for m in family.get_metric() {
                    let topic = m.get_label().iter().find(|l| l.name() == "topic");
                    if let Some(topic) = topic.map(|l| l.value()) {
                        if image.topic(topic).is_none() {
                            let _ = vec.remove_label_values(&[topic]);
                        }
                    }
                }
            }
        }
        // Partitions come and go: start from none so that a deleted or
        // moved partition's series disappear.
        for vec in [
            &self.log_size,
            &self.log_segments,
            &self.log_end_offset,
            &self.log_start_offset,
            &self.high_watermark,
        ] {
            vec.reset();
        }
        for p in state.replica_manager.all_partitions() {
            let tp = p.topic_partition();
            let partition = tp.partition.to_string();
            let labels = [tp.topic.as_str(), partition.as_str()];
            let log = p.log();
            let offsets = log.offsets();
            let set = |vec: &IntGaugeVec, value: i64| vec.with_label_values(&labels).set(value);
            set(&self.log_size, as_i64(log.size_bytes()));
            set(&self.log_segments, as_i64(log.segment_count()));
            set(&self.log_end_offset, offsets.log_end_offset);
            set(&self.log_start_offset, offsets.log_start_offset);
            set(&self.high_watermark, offsets.high_watermark);
        }
    }
}

fn as_i64<T: TryInto<i64>>(value: T) -> i64 {
    value.try_into().unwrap_or(i64::MAX)
}

/// The `api` label: Kafka's name of the API (`Produce`, `ApiVersions`), as
/// in the `request` tag of its request metrics.
fn api_label(api: ApiKey) -> String {
    format!("{api:?}")
}

/// Kafka's name of an error code, as in `Errors.java`
/// (`NOT_LEADER_OR_FOLLOWER`).
pub fn error_name(code: i16) -> String {
    match ErrorCode::try_from_code(code) {
        None => "NONE".into(),
        Some(ErrorCode::Unknown(c)) => format!("UNKNOWN_{c}"),
        Some(e) => screaming_snake(&format!("{e:?}")),
    }
}

/// `NotLeaderOrFollower` → `NOT_LEADER_OR_FOLLOWER`.
fn screaming_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// A gauge raised while something lasts, lowered when the guard drops.
#[derive(Debug)]
pub struct GaugeGuard(IntGauge);

impl GaugeGuard {
    fn inc(gauge: IntGauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_are_kafkas() {
        assert_eq!(error_name(6), "NOT_LEADER_OR_FOLLOWER");
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(19), "NOT_ENOUGH_REPLICAS");
        assert_eq!(error_name(0), "NONE");
    }

    #[test]
    fn renders_counters_histograms_and_guards() {
        let m = BrokerMetrics::new().unwrap();
        m.observe_request(ApiKey::Produce, 9, 0.003);
        m.count_error(ApiKey::Produce, 6);
        m.count_error(ApiKey::Produce, 0);
        m.count_in("orders", 120, 3);
        let conn = m.connection_opened("PLAINTEXT");
        let text = m.render(None);
        assert!(text.contains(r#"strom_requests_total{api="Produce",version="9"} 1"#));
        assert!(text.contains(
            r#"strom_request_duration_seconds_bucket{api="Produce",version="9",le="0.005"} 1"#
        ));
        assert!(text.contains(
            r#"strom_request_errors_total{api="Produce",error="NOT_LEADER_OR_FOLLOWER"} 1"#
        ));
        assert!(!text.contains(r#"error="NONE""#));
        assert!(text.contains(r#"strom_topic_bytes_in_total{topic="orders"} 120"#));
        assert!(text.contains(r#"strom_topic_records_in_total{topic="orders"} 3"#));
        assert!(text.contains(r#"strom_connections{listener="PLAINTEXT"} 1"#));
        drop(conn);
        let text = m.render(None);
        assert!(text.contains("strom_broker_fenced 1"));
        assert!(text.contains(r#"strom_connections{listener="PLAINTEXT"} 0"#));
        assert!(text.contains(r#"strom_connections_accepted_total{listener="PLAINTEXT"} 1"#));
    }
}
