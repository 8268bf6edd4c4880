//! `strom-load`: end-to-end load against a real `strom` broker process.
//!
//! Starts a broker (or uses a running one), creates a topic, produces
//! `--records` records of `--record-bytes` bytes in batches of about
//! `--batch-bytes` with up to `--inflight` requests in flight per
//! connection, then consumes them all back, and prints records/s, MB/s,
//! produce latency percentiles, and the broker's CPU seconds and peak RSS
//! read from /proc. Client and broker share the machine, as in the README's
//! figures.
//!
//! ```text
//! cargo build --release -p strom -p strom-bench
//! target/release/strom-load --strom target/release/strom --records 20000000
//! ```
//!
//! With `--brokers 3 --replication-factor 3` it starts a three-node cluster
//! on loopback ports and produces to the partition leader (one partition);
//! `--rate-mb 20` paces produce at a fixed rate instead of saturation.
//! `--tls` gives the started broker an SSL listener with a certificate made
//! for the run (a CA and a certificate for 127.0.0.1) and produces and
//! consumes over TLS (rustls on both ends), for comparison with the same
//! run in plaintext.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use bytes::{Buf, Bytes, BytesMut};
use clap::Parser;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreateTopicsRequest, FetchRequest, FetchResponse, ProduceRequest,
    ProduceResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use rustls_pki_types::ServerName;
use strom_protocol::batch::BatchIter;
use strom_protocol::batch_builder::BatchBuilder;
use strom_test_utils::{free_port, BrokerProcess, Cluster, KafkaConnection};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::TlsConnector;

/// End-to-end produce and consume load.
#[derive(Debug, Parser)]
#[command(name = "strom-load", version, about)]
struct Args {
    /// strom binary to start for the run (a release build).
    #[arg(long, conflicts_with = "bootstrap")]
    strom: Option<PathBuf>,
    /// A running broker instead, host:port.
    #[arg(long)]
    bootstrap: Option<String>,
    /// Process id of the running broker, for CPU and memory figures.
    #[arg(long)]
    broker_pid: Option<u32>,
    /// Extra KEY=VALUE settings for the started broker.
    #[arg(long = "broker-config")]
    broker_config: Vec<String>,
    /// Topic name.
    #[arg(long, default_value = "load")]
    topic: String,
    /// Partitions of the topic.
    #[arg(long, default_value_t = 1)]
    partitions: i32,
    /// Bytes of each record's value.
    #[arg(long, default_value_t = 100)]
    record_bytes: usize,
    /// Records to produce.
    #[arg(long, default_value_t = 10_000_000)]
    records: u64,
    /// acks: -1 (all), 0 or 1.
    #[arg(long, default_value_t = 1, allow_hyphen_values = true)]
    acks: i16,
    /// Approximate bytes per record batch (one batch per produce request).
    #[arg(long, default_value_t = 1_000_000)]
    batch_bytes: usize,
    /// Produce requests in flight per connection.
    #[arg(long, default_value_t = 8)]
    inflight: usize,
    /// Producer connections.
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Fetch max bytes per request.
    #[arg(long, default_value_t = 16 << 20)]
    fetch_max_bytes: i32,
    /// Skip the consume phase.
    #[arg(long)]
    skip_consume: bool,
    /// Check every fetched batch's CRC32C (as the Java consumer does).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    verify_crc: bool,
    /// Brokers to start (combined nodes of one cluster) with --strom.
    #[arg(long, default_value_t = 1)]
    brokers: usize,
    /// Replication factor of the topic (-1: the broker default).
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    replication_factor: i16,
    /// Produce at this many MB/s per connection instead of as fast as
    /// possible.
    #[arg(long)]
    rate_mb: Option<f64>,
    /// Produce and consume over TLS (one started broker only).
    #[arg(long)]
    tls: bool,
}

/// A connection's halves, plaintext or TLS.
type ReadHalf = Box<dyn AsyncRead + Unpin + Send>;
type WriteHalf = Box<dyn AsyncWrite + Unpin + Send>;

/// Connects to `addr`, over TLS when `tls` is given.
async fn connect(addr: &str, tls: Option<&TlsConnector>) -> Result<(ReadHalf, WriteHalf)> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(match tls {
        None => {
            let (r, w) = stream.into_split();
            (Box::new(r), Box::new(w))
        }
        Some(connector) => {
            let name = ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
            let stream = connector.connect(name, stream).await?;
            let (r, w) = tokio::io::split(stream);
            (Box::new(r), Box::new(w))
        }
    })
}

/// A CA and a certificate for 127.0.0.1 it signed, written as a PEM key
/// store into `dir`; the client's connector trusting the CA.
fn tls_material(dir: &std::path::Path) -> Result<(PathBuf, TlsConnector)> {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate()?;
    let ca = ca_params.self_signed(&ca_key)?;
    let key = rcgen::KeyPair::generate()?;
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])?
        .signed_by(&key, &ca, &ca_key)?;
    let store = dir.join("broker.pem");
    std::fs::write(&store, format!("{}{}", cert.pem(), key.serialize_pem()))?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone())?;
    // ring, as the broker (see strom-security).
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok((store, TlsConnector::from(Arc::new(config))))
}

/// CPU seconds (user + system) and peak RSS of a process.
#[derive(Debug, Clone, Copy, Default)]
struct ProcStats {
    cpu_seconds: f64,
    peak_rss_bytes: u64,
}

fn proc_stats(pid: Option<u32>) -> Option<ProcStats> {
    let pid = pid?;
    let hwm_kb = strom_test_utils::proc_status_kib(pid, "VmHWM")?;
    Some(ProcStats {
        cpu_seconds: strom_test_utils::proc_cpu_seconds(pid)?,
        peak_rss_bytes: hwm_kb * 1024,
    })
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn encode_frame<M: Encodable>(api: ApiKey, version: i16, correlation_id: i32, body: &M) -> Bytes {
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("strom-load")));
    let mut buf = BytesMut::with_capacity(body.compute_size(version).unwrap_or(0) + 64);
    buf.extend_from_slice(&[0; 4]);
    header
        .encode(&mut buf, api.request_header_version(version))
        .unwrap();
    body.encode(&mut buf, version).unwrap();
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    buf.freeze()
}

async fn read_frame(stream: &mut ReadHalf) -> Result<Bytes> {
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).await?;
    let size = i32::from_be_bytes(size) as usize;
    let mut body = BytesMut::zeroed(size);
    stream.read_exact(&mut body).await?;
    Ok(body.freeze())
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

const PRODUCE_VERSION: i16 = 9;
const FETCH_VERSION: i16 = 12;

/// What one producer connection sends: `batches` copies of `batch`, to
/// partitions `first_partition, first_partition + 1, ...` modulo `partitions`.
#[derive(Clone)]
struct ProducerPlan {
    addr: String,
    topic: String,
    partitions: i32,
    first_partition: i32,
    batch: Bytes,
    batches: u64,
    acks: i16,
    inflight: usize,
    /// Seconds between two batches, when paced.
    interval: Option<f64>,
    /// TLS, when the run is over TLS.
    tls: Option<TlsConnector>,
}

/// The batches of connection `c` out of `total` spread over `connections`.
fn share(total: u64, connections: usize, c: usize) -> u64 {
    total / connections as u64 + u64::from((c as u64) < total % connections as u64)
}

/// Sends one connection's plan, returning request latencies (µs).
async fn produce_connection(plan: ProducerPlan) -> Result<Vec<u64>> {
    let ProducerPlan {
        addr,
        topic,
        partitions,
        first_partition,
        batch,
        batches,
        acks,
        inflight,
        interval,
        tls,
    } = plan;
    let (mut rd, mut wr) = connect(&addr, tls.as_ref()).await?;
    let permits = Arc::new(Semaphore::new(inflight));
    let (tx, mut rx) = mpsc::unbounded_channel::<(i32, Instant)>();
    let writer = {
        let permits = Arc::clone(&permits);
        tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            for i in 0..batches {
                if let Some(every) = interval {
                    let due = started + std::time::Duration::from_secs_f64(every * i as f64);
                    tokio::time::sleep_until(due).await;
                }
                let permit = permits.acquire().await.unwrap();
                permit.forget();
                let partition = (first_partition + i as i32) % partitions;
                let req = ProduceRequest::default()
                    .with_acks(acks)
                    .with_timeout_ms(30_000)
                    .with_topic_data(vec![TopicProduceData::default()
                        .with_name(name(&topic))
                        .with_partition_data(vec![PartitionProduceData::default()
                            .with_index(partition)
                            .with_records(Some(batch.clone()))])]);
                let cid = i as i32;
                let frame = encode_frame(ApiKey::Produce, PRODUCE_VERSION, cid, &req);
                let sent = Instant::now();
                wr.write_all(&frame).await?;
                if acks == 0 {
                    permits.add_permits(1);
                } else {
                    tx.send((cid, sent)).ok();
                }
            }
            wr.flush().await?;
            anyhow::Ok(wr)
        })
    };
    let mut latencies = Vec::with_capacity(batches as usize);
    if acks != 0 {
        for _ in 0..batches {
            let mut frame = read_frame(&mut rd).await?;
            let (cid, sent) = rx.recv().await.context("writer ended early")?;
            latencies.push(sent.elapsed().as_micros() as u64);
            let header = ResponseHeader::decode(
                &mut frame,
                ApiKey::Produce.response_header_version(PRODUCE_VERSION),
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            if header.correlation_id != cid {
                bail!(
                    "response {} where {cid} was expected",
                    header.correlation_id
                );
            }
            let r = ProduceResponse::decode(&mut frame, PRODUCE_VERSION)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let p = &r.responses[0].partition_responses[0];
            if p.error_code != 0 {
                bail!("produce error {}", p.error_code);
            }
            permits.add_permits(1);
        }
    }
    let _wr = writer.await??;
    Ok(latencies)
}

/// Reads one partition from offset 0 to `end`; returns (records, bytes).
async fn consume_partition(
    addr: String,
    topic: String,
    partition: i32,
    end: i64,
    max_bytes: i32,
    verify: bool,
    tls: Option<TlsConnector>,
) -> Result<(u64, u64)> {
    let (mut rd, mut wr) = connect(&addr, tls.as_ref()).await?;
    let (mut offset, mut records, mut bytes, mut cid) = (0i64, 0u64, 0u64, 0i32);
    while offset < end {
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(500)
            .with_min_bytes(1)
            .with_max_bytes(max_bytes)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(name(&topic))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(max_bytes)])]);
        cid += 1;
        wr.write_all(&encode_frame(ApiKey::Fetch, FETCH_VERSION, cid, &req))
            .await?;
        let mut frame = read_frame(&mut rd).await?;
        ResponseHeader::decode(
            &mut frame,
            ApiKey::Fetch.response_header_version(FETCH_VERSION),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let r =
            FetchResponse::decode(&mut frame, FETCH_VERSION).map_err(|e| anyhow::anyhow!("{e}"))?;
        let p = &r.responses[0].partitions[0];
        if p.error_code != 0 {
            bail!("fetch error {}", p.error_code);
        }
        let data = p.records.clone().unwrap_or_default();
        bytes += data.remaining() as u64;
        for item in BatchIter::new(&data) {
            let (pos, h) = item?;
            if verify {
                strom_protocol::batch::check_batch(&data[pos..pos + h.size_bytes()])?;
            }
            if h.last_offset() >= offset {
                records += (h.next_offset() - offset.max(h.base_offset)) as u64;
                offset = h.next_offset();
            }
        }
    }
    Ok((records, bytes))
}

fn main() -> Result<()> {
    let args = Args::parse();
    let mut broker = None;
    let mut cluster = None;
    if args.tls && (args.strom.is_none() || args.brokers > 1) {
        bail!("--tls starts its own broker: give --strom, with one broker");
    }
    let tls_dir = tempfile::tempdir()?;
    // The SSL listener's address and the connector for it.
    let mut tls: Option<(String, TlsConnector)> = None;
    let (addr, pid) = match (&args.strom, &args.bootstrap) {
        (Some(bin), _) if args.brokers > 1 => {
            let overrides: Vec<&str> = args.broker_config.iter().map(String::as_str).collect();
            let c = Cluster::start(bin, args.brokers, &overrides)?;
            let out = (c.nodes[0].bootstrap(), c.nodes[0].pid());
            cluster = Some(c);
            out
        }
        (Some(bin), _) if args.tls => {
            let (store, connector) = tls_material(tls_dir.path())?;
            let (port, ssl_port) = (free_port(), free_port());
            let mut overrides: Vec<String> = args.broker_config.clone();
            overrides.push(format!(
                "listeners=PLAINTEXT://127.0.0.1:{port},SSL://127.0.0.1:{ssl_port}"
            ));
            overrides.push(format!("ssl.keystore.location={}", store.display()));
            let refs: Vec<&str> = overrides.iter().map(String::as_str).collect();
            let mut b = BrokerProcess::prepare(bin, port, &refs, "warn")?;
            b.spawn()?;
            let out = (b.bootstrap(), b.pid());
            tls = Some((format!("127.0.0.1:{ssl_port}"), connector));
            broker = Some(b);
            out
        }
        (Some(bin), _) => {
            let overrides: Vec<&str> = args.broker_config.iter().map(String::as_str).collect();
            let b = BrokerProcess::start_with_log(bin, &overrides, "warn")?;
            let out = (b.bootstrap(), b.pid());
            broker = Some(b);
            out
        }
        (None, Some(addr)) => (addr.clone(), args.broker_pid),
        (None, None) => bail!("give --strom BINARY or --bootstrap HOST:PORT"),
    };
    // Topic.
    let mut admin = KafkaConnection::connect(&addr)?;
    let r = admin.send(
        ApiKey::CreateTopics,
        7,
        &CreateTopicsRequest::default()
            .with_topics(vec![CreatableTopic::default()
                .with_name(name(&args.topic))
                .with_num_partitions(args.partitions)
                .with_replication_factor(args.replication_factor)])
            .with_timeout_ms(30_000),
    )?;
    let code = r.topics[0].error_code;
    if code != 0 && code != 36 {
        bail!("cannot create topic: error {code}");
    }
    // In a cluster, produce and consume at partition 0's leader (the broker
    // measured for CPU too).
    let (addr, pid) = match &cluster {
        Some(c) => {
            let leader = partition_leader(&mut admin, &args.topic)?;
            let node = c
                .nodes
                .get(usize::try_from(leader - 1)?)
                .context("no such node")?;
            (node.bootstrap(), node.pid())
        }
        None => (addr, pid),
    };
    // Over TLS, the data goes to the SSL listener.
    let (addr, connector) = match tls {
        Some((ssl_addr, connector)) => (ssl_addr, Some(connector)),
        None => (addr, None),
    };
    // One batch, sent over and over: the broker's work, not the client's
    // encoding, is measured.
    let per_batch = (args.batch_bytes / (args.record_bytes + 8)).max(1);
    let value = vec![b'x'; args.record_bytes];
    let values: Vec<&[u8]> = (0..per_batch).map(|_| value.as_slice()).collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let batch = Bytes::from(BatchBuilder::of_values(now, &values).build());
    let batches_total = args.records.div_ceil(per_batch as u64);
    let records_total = batches_total * per_batch as u64;
    println!(
        "strom-load: {records_total} records of {} B, {per_batch} records ({} B) per batch, acks={}, {} partition(s), {} connection(s), {} in flight each",
        args.record_bytes,
        batch.len(),
        args.acks,
        args.partitions,
        args.connections,
        args.inflight
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;

    let before = proc_stats(pid);
    let started = Instant::now();
    let mut latencies: Vec<u64> = runtime.block_on(async {
        let mut tasks = Vec::new();
        for c in 0..args.connections {
            tasks.push(tokio::spawn(produce_connection(ProducerPlan {
                addr: addr.clone(),
                topic: args.topic.clone(),
                partitions: args.partitions,
                first_partition: c as i32,
                batch: batch.clone(),
                batches: share(batches_total, args.connections, c),
                acks: args.acks,
                inflight: args.inflight,
                interval: args.rate_mb.map(|mb| batch.len() as f64 / (mb * 1e6)),
                tls: connector.clone(),
            })));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await??);
        }
        anyhow::Ok(all)
    })?;
    let elapsed = started.elapsed();
    let after = proc_stats(pid);
    latencies.sort_unstable();
    let secs = elapsed.as_secs_f64();
    let mb = (batches_total * batch.len() as u64) as f64 / 1e6;
    println!(
        "produce: {:.0} records/s, {:.1} MB/s ({records_total} records, {mb:.0} MB in {secs:.2} s)",
        records_total as f64 / secs,
        mb / secs
    );
    if !latencies.is_empty() {
        println!(
            "produce latency per request (ms): p50 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            percentile(&latencies, 0.999),
            percentile(&latencies, 1.0)
        );
    }
    if let (Some(b), Some(a)) = (before, after) {
        println!(
            "broker during produce: {:.2} CPU s ({:.0}% of one core), peak RSS {:.0} MiB",
            a.cpu_seconds - b.cpu_seconds,
            100.0 * (a.cpu_seconds - b.cpu_seconds) / secs,
            a.peak_rss_bytes as f64 / (1 << 20) as f64
        );
    }

    if !args.skip_consume {
        // Records each partition received: connection c sent its i-th batch
        // to partition (c + i) % partitions.
        let mut produced_per_partition = vec![0i64; args.partitions as usize];
        for c in 0..args.connections {
            for i in 0..share(batches_total, args.connections, c) {
                let p = (c as u64 + i) % args.partitions as u64;
                produced_per_partition[p as usize] += per_batch as i64;
            }
        }
        let before = proc_stats(pid);
        let started = Instant::now();
        let consumed = Arc::new(AtomicU64::new(0));
        let (records, bytes) = runtime.block_on(async {
            let mut tasks = Vec::new();
            for (p, end) in produced_per_partition.iter().enumerate() {
                tasks.push(tokio::spawn(consume_partition(
                    addr.clone(),
                    args.topic.clone(),
                    p as i32,
                    *end,
                    args.fetch_max_bytes,
                    args.verify_crc,
                    connector.clone(),
                )));
            }
            let (mut r, mut b) = (0, 0);
            for t in tasks {
                let (x, y) = t.await??;
                r += x;
                b += y;
            }
            consumed.store(r, Ordering::Relaxed);
            anyhow::Ok((r, b))
        })?;
        let secs = started.elapsed().as_secs_f64();
        let after = proc_stats(pid);
        if records != records_total {
            bail!("consumed {records} records, produced {records_total}");
        }
        println!(
            "consume: {:.0} records/s, {:.1} MB/s ({records} records in {secs:.2} s, CRC checked: {})",
            records as f64 / secs,
            bytes as f64 / 1e6 / secs,
            args.verify_crc
        );
        if let (Some(b), Some(a)) = (before, after) {
            println!(
                "broker during consume: {:.2} CPU s ({:.0}% of one core), peak RSS {:.0} MiB",
                a.cpu_seconds - b.cpu_seconds,
                100.0 * (a.cpu_seconds - b.cpu_seconds) / secs,
                a.peak_rss_bytes as f64 / (1 << 20) as f64
            );
        }
    }
    drop(broker);
    drop(cluster);
    Ok(())
}

/// The leader of `topic`'s partition 0, once it has one.
fn partition_leader(admin: &mut KafkaConnection, topic: &str) -> Result<i32> {
    use kafka_protocol::messages::{metadata_request::MetadataRequestTopic, MetadataRequest};
    for _ in 0..300 {
        let r = admin.send(
            ApiKey::Metadata,
            12,
            &MetadataRequest::default().with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(name(topic)))
            ])),
        )?;
        if let Some(p) = r.topics.first().and_then(|t| t.partitions.first()) {
            if p.leader_id.0 >= 0 {
                return Ok(p.leader_id.0);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    bail!("partition 0 of {topic} has no leader")
}
